-- Two real shapes of SELECT STREAM DISTINCT in a subquery, grouped again outside.
-- 1. The KDA reference's exact distinct count (COUNT_DISTINCT_ITEMS_TUMBLING page): the
--    outer GROUP BY steps the subquery's window_time, a selected ROWTIME.
CREATE OR REPLACE STREAM "UNIQUE_PRICES" (ticker_symbol VARCHAR(4), unique_count BIGINT);
CREATE OR REPLACE PUMP "UNIQUE_PUMP" AS INSERT INTO "UNIQUE_PRICES"
SELECT STREAM TICKER_SYMBOL, COUNT(distinct_stream.price) AS unique_count
  FROM (
    SELECT STREAM DISTINCT rowtime as window_time,
      TICKER_SYMBOL,
      CHANGE,
      PRICE,
      STEP((SOURCE_SQL_STREAM_001.rowtime) BY INTERVAL '5' SECOND)
      FROM SOURCE_SQL_STREAM_001) as distinct_stream
  GROUP BY TICKER_SYMBOL,
      STEP((distinct_stream.window_time) BY INTERVAL '5' SECOND);

-- 2. The AWS web-analytics solution's visitor counter: the outer GROUP BY is the
--    subquery's MONOTONIC event-time bucket.
CREATE OR REPLACE STREAM "VISITORS" (event_minute BIGINT, visitor_count BIGINT);
CREATE OR REPLACE PUMP "VISITOR_COUNTER_PUMP" AS INSERT INTO "VISITORS"
SELECT STREAM UNIX_TIMESTAMP(weblogs.window_time), COUNT(weblogs.clientid) FROM (
    SELECT STREAM DISTINCT
        monotonic (STEP (CHAR_TO_TIMESTAMP('dd/MMM/yyyy:HH:mm:ss', "SOURCE_SQL_STREAM_001"."datetime") by INTERVAL '60' SECOND)) AS window_time,
        STEP ("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
        "SOURCE_SQL_STREAM_001"."clientid" as clientid
    FROM "SOURCE_SQL_STREAM_001") as weblogs
    GROUP BY window_time;
