-- Live ride dashboard, refreshed once a minute.
--   CITY_MINUTE_STATS      per city and 1-minute STEP bucket of ROWTIME: event count and fare
--                          statistics (aggregates skip NULL fares; COUNT(*) does not).
--   EVENT_TYPE_COUNTS      per event type and FLOOR(ROWTIME TO MINUTE): the same bucketing
--                          written with FLOOR.
--   EVENT_MINUTE_PARTIALS  per city and minute of the event's own clock (EVENT_TIME), split by
--                          the ROWTIME minute that carried it: the partial-results pattern.
--                          A late event adds another row for its old event minute; the
--                          consumer sums the partials per (CITY, EVENT_MINUTE).
-- Every result row has the end of its ROWTIME bucket as ROWTIME and appears as soon as the
-- first row (or rowtime bound) of a later minute arrives.
CREATE OR REPLACE STREAM "CITY_MINUTE_STATS" (
    city          VARCHAR(16),
    minute_start  TIMESTAMP,
    events        INTEGER,
    priced_events INTEGER,
    revenue       DOUBLE,
    min_fare      REAL,
    max_fare      REAL);

CREATE OR REPLACE PUMP "CITY_STATS_PUMP" AS
  INSERT INTO "CITY_MINUTE_STATS"
    SELECT STREAM r.city,
           STEP(r.ROWTIME BY INTERVAL '1' MINUTE) AS minute_start,
           COUNT(*),
           COUNT(r.fare),
           SUM(r.fare),
           MIN(r.fare),
           MAX(r.fare)
    FROM "SOURCE_SQL_STREAM_001" AS r
    GROUP BY r.city, STEP(r.ROWTIME BY INTERVAL '1' MINUTE);

CREATE OR REPLACE STREAM "EVENT_TYPE_COUNTS" (
    minute_start TIMESTAMP,
    event_type   VARCHAR(16),
    events       INTEGER);

CREATE OR REPLACE PUMP "EVENT_TYPE_PUMP" AS
  INSERT INTO "EVENT_TYPE_COUNTS"
    SELECT STREAM FLOOR(r.ROWTIME TO MINUTE), r.event_type, COUNT(*)
    FROM "SOURCE_SQL_STREAM_001" AS r
    GROUP BY FLOOR(r.ROWTIME TO MINUTE), r.event_type;

CREATE OR REPLACE STREAM "EVENT_MINUTE_PARTIALS" (
    city          VARCHAR(16),
    event_minute  TIMESTAMP,
    ingest_minute TIMESTAMP,
    events        INTEGER,
    completed     INTEGER);

CREATE OR REPLACE PUMP "PARTIALS_PUMP" AS
  INSERT INTO "EVENT_MINUTE_PARTIALS"
    SELECT STREAM r.city,
           STEP(r.event_time BY INTERVAL '1' MINUTE),
           STEP(r.ROWTIME BY INTERVAL '1' MINUTE),
           COUNT(*),
           SUM(CASE WHEN r.event_type = 'COMPLETED' THEN 1 ELSE 0 END)
    FROM "SOURCE_SQL_STREAM_001" AS r
    GROUP BY r.city,
             STEP(r.ROWTIME BY INTERVAL '1' MINUTE),
             STEP(r.event_time BY INTERVAL '1' MINUTE);
