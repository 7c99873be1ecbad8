-- class: write
SELECT 1; DELETE FROM app.orders
-- next
-- class: write
SELECT 1;DELETE FROM app.orders;
-- next
-- class: ddl
SELECT 1 /* ; */; DROP TABLE app.accounts
-- next
-- class: write
BEGIN; DELETE FROM app.orders; COMMIT
-- next
-- class: privilege
SELECT 1; SET default_transaction_read_only = off; DELETE FROM app.orders
-- next
-- class: ddl
SHOW search_path; CREATE TABLE t (a int)
-- next
-- class: write
SELECT 1;
DELETE FROM app.orders
-- next
-- class: unknown
SELECT 1; DO $$ BEGIN END $$
-- next
-- class: unknown
SELECT 1; this is not sql
-- next
-- class: write
SELECT 1; DELETE FROM app.orders WHERE id IN (SELECT 1 /* ) */)
