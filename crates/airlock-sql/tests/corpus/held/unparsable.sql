-- class: unknown
this is not sql
-- next
-- class: unknown
SELECT FROM WHERE
-- next
-- class: unknown
SELECT 1 END; DELETE FROM app.orders
-- next
-- class: unknown
SELECT 1 end
-- next
-- class: unknown
SELECT 'unterminated
-- next
-- class: unknown
SELECT $$ unterminated
-- next
-- class: unknown
SELECT "unterminated
-- next
-- class: unknown
MOVE NEXT FROM c; DO $$ BEGIN END $$
-- next
-- class: unknown
SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))
-- next
-- class: unknown
\x
-- next
-- class: write
INSERT INTO app.accounts VALUES (
-- next
-- class: ddl
CREATE TABLE t (
-- next
-- class: write
DELETE FROM app.orders WHERE note = 'unterminated
-- next
-- class: ddl
DROP TABLE "unterminated
-- next
-- PostgreSQL's grammar reads numeric(...) as a type name: a syntax error
-- there, whatever another parser makes of it.
SELECT int4('1'), text(1), numeric('1.5'), regclass('app.accounts')
