-- One-minute windows every 30 seconds over the trade's own timestamp (EVENT_TS), which
-- may lag ROWTIME (the ingest time). A window waits 10 seconds past its end for
-- stragglers; rows later than that go to LATE_TRADES, once per window they missed.
CREATE OR REPLACE STREAM "TRADES_PER_MINUTE" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, TICKER VARCHAR(4), TRADES BIGINT, VOLUME DOUBLE);
CREATE OR REPLACE STREAM "LATE_TRADES" (
  TICKER VARCHAR(4), PRICE DOUBLE, EVENT_TS TIMESTAMP, WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP);
CREATE OR REPLACE PUMP "TRADES_PUMP" AS INSERT INTO "TRADES_PER_MINUTE"
  SELECT STREAM window_start, window_end, ticker, COUNT(*), SUM(price)
  FROM TABLE(HOP(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(EVENT_TS), INTERVAL '30' SECOND, INTERVAL '1' MINUTE,
                 LATENESS => INTERVAL '10' SECOND, LATE_STREAM => 'LATE_TRADES'))
  GROUP BY window_start, window_end, ticker;
