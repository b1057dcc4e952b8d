-- Event-time windows over the built-in ride-events generator (Flink-style window
-- table functions; see src/planner/window_tvf.rs). The input's ROWTIME is the ride's
-- EVENT_TIME (sluice.toml, [inputs.event_time]), so rows arrive in event-time order
-- behind a 5-second watermark, and DESCRIPTOR(ROWTIME) windows are event-time windows.

-- Rides and fares per city and minute, with early partial results every 10 seconds
-- (IS_PARTIAL true) and one final result per window at its end.
CREATE OR REPLACE STREAM "RIDES_PER_MINUTE" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, CITY VARCHAR(16), IS_PARTIAL BOOLEAN,
  RIDES BIGINT, FARES DOUBLE);
CREATE OR REPLACE PUMP "RIDES_PUMP" AS INSERT INTO "RIDES_PER_MINUTE"
  SELECT STREAM window_start, window_end, city, is_partial, COUNT(*), SUM(fare)
  FROM TABLE(TUMBLE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '1' MINUTE,
                    EARLY_FIRE => INTERVAL '10' SECOND))
  GROUP BY window_start, window_end, city, is_partial;

-- Cancellations over the last 5 minutes, every minute.
CREATE OR REPLACE STREAM "CANCELLATIONS_5MIN" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, CANCELLATIONS BIGINT);
CREATE OR REPLACE PUMP "CANCELLATIONS_PUMP" AS INSERT INTO "CANCELLATIONS_5MIN"
  SELECT STREAM window_start, window_end, COUNT(*)
  FROM TABLE(HOP(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))
  WHERE event_type = 'CANCELLATION'
  GROUP BY window_start, window_end;

-- Fares per city since the start of the hour, every 10 minutes.
CREATE OR REPLACE STREAM "FARES_THIS_HOUR" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, CITY VARCHAR(16), FARES DOUBLE);
CREATE OR REPLACE PUMP "FARES_PUMP" AS INSERT INTO "FARES_THIS_HOUR"
  SELECT STREAM window_start, window_end, city, SUM(fare)
  FROM TABLE(CUMULATE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '10' MINUTE, INTERVAL '1' HOUR))
  GROUP BY window_start, window_end, city;

-- Driver shifts: a driver's session ends after 2 minutes without an event.
CREATE OR REPLACE STREAM "DRIVER_SESSIONS" (
  WINDOW_START TIMESTAMP, WINDOW_END TIMESTAMP, DRIVER_ID INTEGER, EVENTS BIGINT, FARES DOUBLE);
CREATE OR REPLACE PUMP "DRIVER_PUMP" AS INSERT INTO "DRIVER_SESSIONS"
  SELECT STREAM window_start, window_end, driver_id, COUNT(*), SUM(fare)
  FROM TABLE(SESSION(TABLE "SOURCE_SQL_STREAM_001" PARTITION BY driver_id, DESCRIPTOR(ROWTIME),
                     INTERVAL '2' MINUTE))
  GROUP BY window_start, window_end, driver_id;
