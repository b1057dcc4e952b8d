-- Hot and cold readings in one alert stream: a streaming UNION ALL merges the two
-- filtered streams in ROWTIME order.
CREATE OR REPLACE STREAM "TEMP_ALERTS" (kind VARCHAR(4), sensor VARCHAR(8), temp_c DOUBLE);
CREATE OR REPLACE PUMP "ALERT_PUMP" AS INSERT INTO "TEMP_ALERTS"
  SELECT STREAM 'HOT', sensor, temp_c FROM "SOURCE_SQL_STREAM_001" WHERE temp_c > 30
  UNION ALL
  SELECT STREAM 'COLD', sensor, temp_c FROM "SOURCE_SQL_STREAM_001" WHERE temp_c < 0;
