-- The envelope columns are selected like any other column, unquoted or quoted.
CREATE OR REPLACE STREAM "ENVELOPE" (
    ticker      VARCHAR(4),
    pkey        VARCHAR(256),
    seq         VARCHAR(128),
    shard       VARCHAR(128));

CREATE OR REPLACE PUMP "ENVELOPE_PUMP" AS
  INSERT INTO "ENVELOPE"
    SELECT STREAM ticker, partition_key, "SEQUENCE_NUMBER", s.shard_id
    FROM "SOURCE_SQL_STREAM_001" AS s;

-- SELECT STREAM * into a stream of the declared columns only keeps working.
CREATE OR REPLACE STREAM "TICKS_COPY" (ticker VARCHAR(4), price DOUBLE);

CREATE OR REPLACE PUMP "COPY_PUMP" AS
  INSERT INTO "TICKS_COPY"
    SELECT STREAM * FROM "SOURCE_SQL_STREAM_001";

-- Grouping by shard, per minute.
CREATE OR REPLACE STREAM "PER_SHARD" (shard VARCHAR(128), n BIGINT, total DOUBLE);

CREATE OR REPLACE PUMP "PER_SHARD_PUMP" AS
  INSERT INTO "PER_SHARD"
    SELECT STREAM shard_id, COUNT(*), SUM(price)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY shard_id, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);

-- The declared PARTITION_KEY (a payload field) wins over the envelope's; the
-- envelope's other fields are still there. SELECT * keeps the declared one.
CREATE OR REPLACE STREAM "CLICK_KEYS" (pkey VARCHAR(16), page VARCHAR(16), shard VARCHAR(128));

CREATE OR REPLACE PUMP "CLICK_KEYS_PUMP" AS
  INSERT INTO "CLICK_KEYS"
    SELECT STREAM partition_key, page, shard_id FROM "CLICKS_001";

CREATE OR REPLACE STREAM "CLICKS_COPY" (pkey VARCHAR(16), page VARCHAR(16));

CREATE OR REPLACE PUMP "CLICKS_COPY_PUMP" AS
  INSERT INTO "CLICKS_COPY"
    SELECT STREAM * FROM "CLICKS_001";
