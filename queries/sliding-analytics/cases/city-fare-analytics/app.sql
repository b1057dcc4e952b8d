-- Per-city fare analytics on ride events with KDA's analytic window functions
-- (spec §3.4, §4.1): the previous fare and the second-newest fare among the city's last
-- five rides, the first fare and the last known driver of the city's last minute, and an
-- exponentially weighted fare with a 10-second half-life (A10). A second pump reports
-- each city's first and last ride of every minute (FIRST_VALUE / LAST_VALUE as streaming
-- GROUP BY aggregates, in arrival order).
CREATE OR REPLACE STREAM "FARE_ANALYTICS" (
  CITY VARCHAR(16),
  RIDE_ID VARCHAR(16),
  FARE REAL,
  PREV_FARE REAL,
  SECOND_LAST_FARE REAL,
  FIRST_FARE_1M REAL,
  LAST_DRIVER_1M INTEGER,
  FARE_EXP_AVG DOUBLE);
CREATE OR REPLACE PUMP "FARE_PUMP" AS INSERT INTO "FARE_ANALYTICS"
  SELECT STREAM CITY, RIDE_ID, FARE,
    LAG(FARE, 1, 0) OVER last5,
    NTH_VALUE(FARE, 2) FROM LAST OVER last5,
    FIRST_VALUE(FARE) OVER last_minute,
    LAST_VALUE(DRIVER_ID) IGNORE NULLS OVER last_minute,
    EXP_AVG(FARE, INTERVAL '10' SECOND) OVER last_minute
  FROM "SOURCE_SQL_STREAM_001"
  WINDOW last5 AS (PARTITION BY CITY ROWS 4 PRECEDING),
         last_minute AS (PARTITION BY CITY RANGE INTERVAL '1' MINUTE PRECEDING);

CREATE OR REPLACE STREAM "CITY_MINUTE" (
  CITY VARCHAR(16),
  FIRST_RIDE VARCHAR(16),
  LAST_RIDE VARCHAR(16),
  RIDES BIGINT);
CREATE OR REPLACE PUMP "MINUTE_PUMP" AS INSERT INTO "CITY_MINUTE"
  SELECT STREAM CITY, FIRST_VALUE(RIDE_ID), LAST_VALUE(RIDE_ID), COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY CITY, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);
