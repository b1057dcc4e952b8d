-- The 10-second idiom on instants before 1970 (a negative interval), around the epoch,
-- past the end of nanosecond timestamps (2262-04-11 23:47:16.854) and in 2300.
CREATE OR REPLACE STREAM "TEN_SECOND_COUNTS" (first_row TIMESTAMP, last_row TIMESTAMP, row_count INTEGER);
CREATE OR REPLACE PUMP "TEN_SECOND_PUMP" AS INSERT INTO "TEN_SECOND_COUNTS"
SELECT STREAM MIN(s.ROWTIME), MAX(s.ROWTIME), COUNT(*)
FROM "SOURCE_SQL_STREAM_001" AS s
GROUP BY FLOOR((s.ROWTIME - TIMESTAMP '1970-01-01 00:00:00') SECOND / 10 TO SECOND);

-- DAY: whole days since 2000-01-01, / 7, floored to the day: weeks aligned to that
-- Saturday, for the rows from 2026 on (N >= 6; before 2000 the difference is negative
-- and whole days truncate toward zero, see NOTES.md).
CREATE OR REPLACE STREAM "WEEK_COUNTS" (first_row TIMESTAMP, row_count INTEGER);
CREATE OR REPLACE PUMP "WEEK_PUMP" AS INSERT INTO "WEEK_COUNTS"
SELECT STREAM MIN(s.ROWTIME), COUNT(*)
FROM "SOURCE_SQL_STREAM_001" AS s
WHERE s.N >= 6
GROUP BY FLOOR((s.ROWTIME - TIMESTAMP '2000-01-01 00:00:00') DAY / 7 TO DAY);
