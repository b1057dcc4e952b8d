-- An unqualified ROWTIME in a select list is the time of the row being generated
-- (spec §1.2, §3.1): the close of the window in a GROUP BY, the driving row's time in a
-- join. Qualified, or inside an aggregate or a grouped expression, it is the input row's.
CREATE OR REPLACE STREAM "MINUTE_COUNTS" (
    closed_at       TIMESTAMP,
    minute_start    TIMESTAMP,
    ticker          VARCHAR(4),
    trades          INTEGER,
    last_trade      TIMESTAMP,
    closed_at_text  VARCHAR(30));
CREATE OR REPLACE PUMP "MINUTE_PUMP" AS INSERT INTO "MINUTE_COUNTS"
SELECT STREAM ROWTIME, FLOOR(ROWTIME TO MINUTE), ticker, COUNT(*), MAX(ROWTIME), CAST(ROWTIME AS VARCHAR(30))
FROM "SOURCE_SQL_STREAM_001"
GROUP BY ticker, FLOOR(ROWTIME TO MINUTE);

-- A stream self-join: each trade with the same ticker's earlier trades of the last 30 s.
CREATE OR REPLACE STREAM "PRICE_MOVES" (ts TIMESTAMP, ticker VARCHAR(4), price REAL, prev_price REAL, prev_ts TIMESTAMP);
CREATE OR REPLACE PUMP "MOVES_PUMP" AS INSERT INTO "PRICE_MOVES"
SELECT STREAM ROWTIME, a.ticker, a.price, b.price, b.ROWTIME
FROM "SOURCE_SQL_STREAM_001" AS a
JOIN "SOURCE_SQL_STREAM_001" OVER (RANGE INTERVAL '30' SECOND PRECEDING) AS b
  ON a.ticker = b.ticker AND b.ROWTIME < a.ROWTIME;
