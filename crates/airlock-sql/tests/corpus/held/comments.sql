-- class: write
/* read */ DELETE FROM app.orders
-- next
-- class: write
-- read
DELETE FROM app.orders
-- next
-- class: write
/* SELECT 1; */ DELETE FROM app.orders
-- next
-- class: write
/* nested /* comment */ still; SELECT 1 */ DELETE FROM app.orders
-- next
-- class: ddl
SELECT 1 /* ; */; DROP TABLE x
-- next
-- class: write
SELECT 1 -- ; DELETE FROM x
; DELETE FROM app.orders
-- next
-- class: write
SELECT 'x\'; DELETE FROM app.orders; --'
-- next
-- class: write
SELECT $$ $$; DELETE FROM app.orders; SELECT $$ $$
-- next
-- class: unknown
SELECT 1 /* unterminated
-- next
-- class: write
SELECT 1 -- x
;DELETE FROM app.orders
