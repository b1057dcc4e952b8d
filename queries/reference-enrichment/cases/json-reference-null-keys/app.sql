-- Enrich ride events with city data from the reference table "Cities" (spec §5.5), loaded
-- once at start from a file. A stream-to-table join needs no window: each ride event is
-- looked up in the table as it arrives and the output keeps the event's ROWTIME.
--   COMPLETED_RIDES  LEFT JOIN: every completed ride, with its city's region and commission;
--                    rides in a city the table does not list (Aveiro has not been onboarded)
--                    keep NULL reference columns, and the commission computed from them is
--                    NULL too.
--   REGION_REQUESTS  JOIN: ride requests in onboarded cities only; requests from cities not
--                    in the table are dropped.
CREATE OR REPLACE STREAM "COMPLETED_RIDES" (
    ride_id        VARCHAR(16),
    city           VARCHAR(16),
    region         VARCHAR(16),
    fare           REAL,
    commission_pct INTEGER,
    commission     DOUBLE);

CREATE OR REPLACE PUMP "COMPLETED_PUMP" AS
  INSERT INTO "COMPLETED_RIDES"
    SELECT STREAM r.ride_id, r.city, c.REGION, r.fare, c.COMMISSION_PCT,
           r.fare * c.COMMISSION_PCT / 100
    FROM "SOURCE_SQL_STREAM_001" AS r
    LEFT JOIN "Cities" AS c
      ON r.city = c.CITY_NAME
    WHERE r.event_type = 'COMPLETED';

CREATE OR REPLACE STREAM "REGION_REQUESTS" (
    ride_id     VARCHAR(16),
    region      VARCHAR(16),
    city        VARCHAR(16),
    driver_id   INTEGER,
    launch_year INTEGER);

CREATE OR REPLACE PUMP "REQUEST_PUMP" AS
  INSERT INTO "REGION_REQUESTS"
    SELECT STREAM r.ride_id, c.REGION, r.city, r.driver_id, c.LAUNCH_YEAR
    FROM "SOURCE_SQL_STREAM_001" AS r
    JOIN "Cities" AS c
      ON r.city = c.CITY_NAME
    WHERE r.event_type = 'REQUESTED';
