-- class: ddl
CREATE TEMP TABLE t (a int)
-- next
-- class: ddl
CREATE TEMPORARY TABLE t AS SELECT 1
-- next
-- class: ddl
CREATE TABLE t AS SELECT * FROM app.accounts
-- next
-- class: ddl
CREATE TABLE t (a int DEFAULT nextval('app.seq1'))
-- next
-- class: ddl
CREATE TABLE t (a int DEFAULT my_func())
-- next
-- class: ddl
DROP TABLE app.accounts
-- next
-- class: ddl
ALTER TABLE app.accounts ADD COLUMN x int
-- next
-- class: ddl
CREATE INDEX CONCURRENTLY i ON app.accounts (name)
-- next
-- class: ddl
CREATE VIEW v AS SELECT 1
-- next
-- class: ddl
CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'
-- next
-- class: ddl
COMMENT ON TABLE app.accounts IS 'x'
-- next
-- class: ddl
CREATE SEQUENCE s
-- next
-- class: ddl
CREATE SCHEMA s
-- next
-- class: ddl
CREATE EXTENSION dblink
-- next
-- class: ddl
SELECT * INTO newtable FROM app.accounts
-- next
-- class: ddl
SELECT 1 AS a INTO TEMP t2
-- next
-- class: ddl
SELECT INTO t3 FROM app.accounts
-- next
-- class: ddl
SELECT * INTO UNLOGGED t4 FROM app.accounts
-- next
-- class: privilege
GRANT SELECT ON app.accounts TO public
-- next
-- class: privilege
REVOKE ALL ON app.accounts FROM airlock_reader
-- next
-- class: privilege
CREATE ROLE evil LOGIN SUPERUSER
-- next
-- class: privilege
CREATE USER evil PASSWORD 'x'
-- next
-- class: privilege
ALTER ROLE airlock_reader SUPERUSER
-- next
-- class: privilege
ALTER USER postgres PASSWORD 'x'
-- next
-- class: privilege
DROP ROLE airlock_reader
-- next
-- class: privilege
GRANT postgres TO airlock_reader
-- next
-- class: privilege
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO public
-- next
-- class: privilege
ALTER ROLE airlock_reader SET default_transaction_read_only = off
