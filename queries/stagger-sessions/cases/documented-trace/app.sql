-- The developer guide's stagger-window concept trace (spec §3.3): the same ticker counts
-- per event minute, once with a stagger window and once with the tumbling query the guide
-- compares it with (ROWTIME minute + event minute, which splits a minute into partials).
CREATE OR REPLACE STREAM "STAGGER_COUNTS" (
    ticker_symbol VARCHAR(4),
    event_minute  TIMESTAMP,
    ticker_count  INTEGER);

CREATE OR REPLACE PUMP "STAGGER_PUMP" AS
  INSERT INTO "STAGGER_COUNTS"
    SELECT STREAM TICKER_SYMBOL,
           FLOOR(EVENT_TIME TO MINUTE),
           COUNT(TICKER_SYMBOL) AS TICKER_COUNT
    FROM "SOURCE_SQL_STREAM_001"
    WINDOWED BY STAGGER (
        PARTITION BY FLOOR(EVENT_TIME TO MINUTE), TICKER_SYMBOL
        RANGE INTERVAL '1' MINUTE);

CREATE OR REPLACE STREAM "TUMBLING_COUNTS" (
    ticker_symbol VARCHAR(4),
    event_minute  TIMESTAMP,
    ticker_count  INTEGER);

CREATE OR REPLACE PUMP "TUMBLING_PUMP" AS
  INSERT INTO "TUMBLING_COUNTS"
    SELECT STREAM TICKER_SYMBOL,
           FLOOR(EVENT_TIME TO MINUTE),
           COUNT(TICKER_SYMBOL) AS TICKER_COUNT
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY TICKER_SYMBOL,
             FLOOR(EVENT_TIME TO MINUTE),
             STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);
