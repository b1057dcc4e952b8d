-- Cancellation-spike alert: count ride cancellations per minute and alert on any
-- minute with more than 100. The alert for a minute fires as soon as the minute ends.
CREATE OR REPLACE STREAM "ALERT_STREAM" (window_start TIMESTAMP, cancellations INTEGER);
CREATE OR REPLACE PUMP "ALERT_PUMP" AS INSERT INTO "ALERT_STREAM" SELECT STREAM FLOOR(ROWTIME TO MINUTE) as window_start, COUNT(*) as cancellations FROM "SOURCE_SQL_STREAM_001" WHERE event_type = 'CANCELLATION' GROUP BY FLOOR(ROWTIME TO MINUTE) HAVING COUNT(*) > 100;
