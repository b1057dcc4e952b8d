-- SELECT STREAM DISTINCT: distinct rows per group of a monotonic time item.

-- Distinct visitors per minute, as the AWS Real-Time Web Analytics solution counts them.
CREATE OR REPLACE STREAM "VISITORS" (window_time TIMESTAMP, clientid VARCHAR(16));
CREATE OR REPLACE PUMP "VISITOR_PUMP" AS INSERT INTO "VISITORS"
SELECT STREAM DISTINCT
    MONOTONIC(STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)) AS window_time,
    "SOURCE_SQL_STREAM_001"."clientid" AS clientid
FROM "SOURCE_SQL_STREAM_001";

-- The reference's shape: ROWTIME is selected but takes no part in the duplicate
-- elimination; the FLOOR bucket groups the rows.
CREATE OR REPLACE STREAM "PAGES_PER_MINUTE" (seen_at TIMESTAMP, page VARCHAR(32), minute_start TIMESTAMP);
CREATE OR REPLACE PUMP "PAGE_PUMP" AS INSERT INTO "PAGES_PER_MINUTE"
SELECT STREAM DISTINCT ROWTIME, "page", FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE)
FROM "SOURCE_SQL_STREAM_001"
WHERE "page" <> '/health';

-- The ORDER BY reference's example: ROWTIME is the only monotonic item, so rows are
-- distinct per instant.
CREATE OR REPLACE STREAM "PER_INSTANT" (t TIMESTAMP, clientid VARCHAR(16));
CREATE OR REPLACE PUMP "INSTANT_PUMP" AS INSERT INTO "PER_INSTANT"
SELECT STREAM DISTINCT ROWTIME, "clientid" FROM "SOURCE_SQL_STREAM_001" ORDER BY ROWTIME, "clientid";
