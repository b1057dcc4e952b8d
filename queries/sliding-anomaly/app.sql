-- Fare trends and fare anomalies per city on sliding windows (spec §3.4). Only completed
-- rides carry a fare; the WHERE runs before the windows, so other events never enter them.
--   FARE_TRENDS  one row per completed ride: statistics of the city's completed rides in
--                the last minute (RANGE, lower bound inclusive, A2) and over the ride and
--                the 4 rides before it in that city (ROWS 4 PRECEDING = 5 rows, A4).
--   FARE_ALERTS  a ride whose fare is more than 1.5 sample standard deviations above the
--                city's average of the last minute, once that minute holds at least 5
--                rides. Window results cannot be used in WHERE directly, so the windowed
--                query is a subquery filtered outside (KDA's throttled-alerts pattern).
CREATE OR REPLACE STREAM "FARE_TRENDS" (
    city           VARCHAR(16),
    ride_id        VARCHAR(16),
    fare           REAL,
    avg_fare_1m    DOUBLE,
    stddev_fare_1m DOUBLE,
    rides_1m       INTEGER,
    avg_fare_last5 DOUBLE,
    max_fare_last5 REAL);

CREATE OR REPLACE PUMP "TRENDS_PUMP" AS
  INSERT INTO "FARE_TRENDS"
    SELECT STREAM city, ride_id, fare,
           AVG(fare) OVER last_minute,
           STDDEV_SAMP(fare) OVER last_minute,
           COUNT(*) OVER last_minute,
           AVG(fare) OVER last_five,
           MAX(fare) OVER last_five
    FROM "SOURCE_SQL_STREAM_001"
    WHERE event_type = 'COMPLETED'
    WINDOW last_minute AS (PARTITION BY city RANGE INTERVAL '1' MINUTE PRECEDING),
           last_five AS (PARTITION BY city ROWS 4 PRECEDING);

CREATE OR REPLACE STREAM "FARE_ALERTS" (
    city        VARCHAR(16),
    ride_id     VARCHAR(16),
    fare        REAL,
    avg_fare    DOUBLE,
    stddev_fare DOUBLE,
    rides       INTEGER);

CREATE OR REPLACE PUMP "ALERT_PUMP" AS
  INSERT INTO "FARE_ALERTS"
    SELECT STREAM city, ride_id, fare, avg_fare, stddev_fare, rides
    FROM (
        SELECT STREAM city, ride_id, fare,
               AVG(fare) OVER W1 AS avg_fare,
               STDDEV_SAMP(fare) OVER W1 AS stddev_fare,
               COUNT(*) OVER W1 AS rides
        FROM "SOURCE_SQL_STREAM_001"
        WHERE event_type = 'COMPLETED'
        WINDOW W1 AS (PARTITION BY city RANGE INTERVAL '1' MINUTE PRECEDING))
    WHERE rides >= 5 AND fare > avg_fare + 1.5 * stddev_fare;
