-- Select lists whose items share a name, which KDA accepts.

-- A typo: both aggregates are called MIN_SPEED. The INSERT maps columns by position.
CREATE OR REPLACE STREAM "SPEEDS" (vehicle VARCHAR(8), max_speed DOUBLE, min_speed DOUBLE);
CREATE OR REPLACE PUMP "SPEED_PUMP" AS INSERT INTO "SPEEDS"
SELECT STREAM vehicle, MAX(speed) AS min_speed, MIN(speed) AS min_speed
FROM "SOURCE_SQL_STREAM_001"
GROUP BY vehicle, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);

-- The same unaliased expression twice (once with a qualified column).
CREATE OR REPLACE STREAM "DOUBLED" (vehicle VARCHAR(8), kmh DOUBLE, kmh_again DOUBLE);
CREATE OR REPLACE PUMP "DOUBLED_PUMP" AS INSERT INTO "DOUBLED"
SELECT STREAM vehicle, speed * 1.609, "SOURCE_SQL_STREAM_001".speed * 1.609
FROM "SOURCE_SQL_STREAM_001";

-- A subquery naming two columns X: fine while the outer query does not read X.
CREATE OR REPLACE STREAM "FAST" (vehicle VARCHAR(8), kmh DOUBLE);
CREATE OR REPLACE PUMP "FAST_PUMP" AS INSERT INTO "FAST"
SELECT STREAM t.vehicle, t.kmh
FROM (SELECT STREAM vehicle, speed AS x, speed * 1.609 AS kmh, speed AS x
      FROM "SOURCE_SQL_STREAM_001" WHERE speed > 100) AS t;
