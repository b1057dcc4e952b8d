-- Stagger windows (spec §3.3): a window per key opens when the key's first row arrives
-- (t0 = that row's ROWTIME), takes the key's rows with ROWTIME < t0 + range, and emits one
-- row with ROWTIME t0 + range. A row of the key arriving later opens a new window.
--   CITY_EVENT_MINUTES  per city and minute of the event's own clock (EVENT_TIME): late
--                       events of a minute still join its window if they arrive within a
--                       minute of the first one; later stragglers reopen the key.
--   DRIVER_ACTIVITY     per driver (and event hour): the driver's activity in the 2 minutes
--                       after their first event; the next event after that starts a new
--                       activity window.
CREATE OR REPLACE STREAM "CITY_EVENT_MINUTES" (
    city          VARCHAR(16),
    event_minute  TIMESTAMP,
    events        INTEGER,
    completed     INTEGER,
    cancellations INTEGER,
    revenue       DOUBLE,
    first_event   TIMESTAMP,
    last_event    TIMESTAMP);

CREATE OR REPLACE PUMP "CITY_MINUTE_PUMP" AS
  INSERT INTO "CITY_EVENT_MINUTES"
    SELECT STREAM city,
           FLOOR(event_time TO MINUTE),
           COUNT(*),
           SUM(CASE WHEN event_type = 'COMPLETED' THEN 1 ELSE 0 END),
           SUM(CASE WHEN event_type = 'CANCELLATION' THEN 1 ELSE 0 END),
           SUM(fare),
           MIN(event_time),
           MAX(event_time)
    FROM "SOURCE_SQL_STREAM_001"
    WINDOWED BY STAGGER (
        PARTITION BY city, FLOOR(event_time TO MINUTE)
        RANGE INTERVAL '1' MINUTE);

CREATE OR REPLACE STREAM "DRIVER_ACTIVITY" (
    driver_id   INTEGER,
    event_hour  TIMESTAMP,
    events      INTEGER,
    completed   INTEGER,
    earnings    DOUBLE,
    first_event TIMESTAMP,
    last_event  TIMESTAMP);

CREATE OR REPLACE PUMP "DRIVER_PUMP" AS
  INSERT INTO "DRIVER_ACTIVITY"
    SELECT STREAM driver_id,
           FLOOR(event_time TO HOUR),
           COUNT(*),
           SUM(CASE WHEN event_type = 'COMPLETED' THEN 1 ELSE 0 END),
           SUM(fare),
           MIN(event_time),
           MAX(event_time)
    FROM "SOURCE_SQL_STREAM_001"
    WINDOWED BY STAGGER (
        PARTITION BY driver_id, FLOOR(event_time TO HOUR)
        RANGE INTERVAL '2' MINUTE);
