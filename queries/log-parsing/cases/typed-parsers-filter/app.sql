-- A mixed log feed: fixed-width application access lines and syslog lines arrive on
-- one stream, tagged by "kind".
--
-- SLOW_REQUESTS: FIXED_COLUMN_LOG_PARSE turns an access line into typed fields (a
-- TIMESTAMP with its own SimpleDateFormat, INTEGERs, VARCHARs) and the pump keeps the
-- slow (>= 100 ms) or failed (5xx) requests, filtering on the parsed fields.
-- AUTH_EVENTS: SYS_LOG_PARSE splits a syslog line into its timestamp and message.
CREATE OR REPLACE STREAM "SLOW_REQUESTS" (
    req_time   TIMESTAMP,
    method     VARCHAR(4),
    status     INTEGER,
    elapsed_ms INTEGER,
    path       VARCHAR(32));

CREATE OR REPLACE STREAM "AUTH_EVENTS" (
    logged_at TIMESTAMP,
    message   VARCHAR(64));

CREATE OR REPLACE PUMP "SLOW_PUMP" AS INSERT INTO "SLOW_REQUESTS"
    SELECT STREAM t.r.REQ_TIME, t.r.METHOD, t.r.STATUS, t.r.ELAPSED_MS, t.r.PATH
    FROM (SELECT STREAM
              FIXED_COLUMN_LOG_PARSE("line",
                  'REQ_TIME TYPE TIMESTAMP ''yyyy-MM-dd HH:mm:ss'' START 0 FOR 19,
                   METHOD TYPE VARCHAR(4) START 20 FOR 4,
                   STATUS TYPE INTEGER NOT NULL START 25 FOR 3,
                   ELAPSED_MS TYPE INTEGER START 29 FOR 5,
                   PATH TYPE VARCHAR(32) START 35') AS r
          FROM "SOURCE_SQL_STREAM_001"
          WHERE "kind" = 'app') AS t
    WHERE t.r.ELAPSED_MS >= 100 OR t.r.STATUS >= 500;

CREATE OR REPLACE PUMP "AUTH_PUMP" AS INSERT INTO "AUTH_EVENTS"
    SELECT STREAM s.r.COLUMN1, s.r.COLUMN2
    FROM (SELECT STREAM SYS_LOG_PARSE("line") AS r
          FROM "SOURCE_SQL_STREAM_001"
          WHERE "kind" = 'syslog') AS s;
