-- A shop's orders; prices were declared DECIMAL without precision or scale.
CREATE OR REPLACE STREAM "PRICED" (
    item             VARCHAR(8),
    price            DECIMAL,
    qty              NUMERIC(4),
    discount         DEC(5,2),
    discount_tenths  DECIMAL(4,1),
    discount_whole   DECIMAL);

CREATE OR REPLACE PUMP "PRICED_PUMP" AS
  INSERT INTO "PRICED"
    SELECT STREAM item, price, qty, discount,
           discount AS discount_tenths,    -- DEC(5,2) into DECIMAL(4,1)
           CAST(discount AS DECIMAL) AS discount_whole  -- DECIMAL(18,0)
    FROM "ORDERS_001";

CREATE OR REPLACE STREAM "TOTALS" (n BIGINT, total_price DECIMAL);

CREATE OR REPLACE PUMP "TOTALS_PUMP" AS
  INSERT INTO "TOTALS"
    SELECT STREAM COUNT(*), SUM(price)
    FROM "ORDERS_001"
    GROUP BY STEP("ORDERS_001".ROWTIME BY INTERVAL '1' MINUTE);

CREATE OR REPLACE STREAM "REFUNDS" (refund DECIMAL, reason VARCHAR(16));

CREATE OR REPLACE PUMP "REFUNDS_PUMP" AS
  INSERT INTO "REFUNDS"
    SELECT STREAM * FROM "RETURNS_001";
