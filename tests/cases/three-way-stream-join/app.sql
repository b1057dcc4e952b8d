-- Purchase funnel: a purchase (p) is matched with the same user's cart event for the
-- same product in the 10 minutes before it (c), and each such pair with the user's
-- views of the product in the 10 minutes before the pair (v) that came no later than
-- the cart event. A three-way self-join, left-deep: (p JOIN c) is a stream whose rows
-- have the purchase's ROWTIME, and it joins v under v's own window.
CREATE OR REPLACE STREAM "FUNNEL" (
  USER_ID VARCHAR(8), PRODUCT VARCHAR(16),
  VIEWED_AT TIMESTAMP, CARTED_AT TIMESTAMP, PURCHASED_AT TIMESTAMP);
CREATE OR REPLACE PUMP "FUNNEL_PUMP" AS INSERT INTO "FUNNEL"
  SELECT STREAM p.USER_ID, p.PRODUCT, v.ROWTIME, c.ROWTIME, p.ROWTIME
  FROM "SOURCE_SQL_STREAM_001" AS p
  JOIN "SOURCE_SQL_STREAM_001" OVER (RANGE INTERVAL '10' MINUTE PRECEDING) AS c
    ON p.USER_ID = c.USER_ID AND p.PRODUCT = c.PRODUCT
  JOIN "SOURCE_SQL_STREAM_001" OVER (RANGE INTERVAL '10' MINUTE PRECEDING) AS v
    ON c.USER_ID = v.USER_ID AND c.PRODUCT = v.PRODUCT AND v.ROWTIME <= c.ROWTIME
  WHERE p.EVENT = 'PURCHASE' AND c.EVENT = 'CART' AND v.EVENT = 'VIEW';
