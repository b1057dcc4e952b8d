-- Trades and volume per ticker and minute, with early partial results every 20 seconds.
CREATE OR REPLACE STREAM "TICKS_PER_MINUTE" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, TICKER VARCHAR(4), IS_PARTIAL BOOLEAN,
  TRADES BIGINT, VOLUME DOUBLE);
CREATE OR REPLACE PUMP "TICKS_PUMP" AS INSERT INTO "TICKS_PER_MINUTE"
  SELECT STREAM window_start, window_end, ticker, is_partial, COUNT(*), SUM(price)
  FROM TABLE(TUMBLE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '1' MINUTE,
                    EARLY_FIRE => INTERVAL '20' SECOND))
  GROUP BY window_start, window_end, ticker, is_partial;
