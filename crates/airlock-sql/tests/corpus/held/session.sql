-- class: privilege
SET default_transaction_read_only = off
-- next
-- class: privilege
SET default_transaction_read_only TO false
-- next
-- class: privilege
SET default_transaction_read_only = 'off'
-- next
-- class: privilege
SET default_transaction_read_only = 0
-- next
-- class: privilege
SET SESSION default_transaction_read_only = no
-- next
-- class: privilege
SET default_transaction_read_only TO DEFAULT
-- next
-- class: privilege
RESET default_transaction_read_only
-- next
-- class: privilege
SET transaction_read_only = off
-- next
-- class: privilege
SET LOCAL transaction_read_only TO off
-- next
-- class: privilege
SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE
-- next
-- class: privilege
SET TRANSACTION READ WRITE
-- next
-- class: privilege
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE
-- next
-- class: privilege
BEGIN READ WRITE
-- next
-- class: privilege
START TRANSACTION READ WRITE
-- next
-- class: privilege
BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE
-- next
-- class: privilege
BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE, DEFERRABLE
-- next
-- class: privilege
SELECT set_config('default_transaction_read_only', 'off', false)
-- next
-- class: privilege
SELECT pg_catalog.set_config('transaction_read_only', 'off', true)
-- next
-- class: privilege
SELECT set_config('role', 'postgres', false)
-- next
-- class: session
SELECT set_config(current_setting('x.y'), 'off', false)
-- next
-- class: privilege
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'default_transaction_read_only'
-- next
-- class: session
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name LIKE 'default_transaction%'
-- next
-- class: session
SELECT set_config('search_path', (SELECT 'public, pg_catalog'), false)
-- next
-- class: session
SELECT set_config('search_path', 'public, pg_catalog', false)
-- next
-- class: privilege
RESET ALL
-- next
-- class: privilege
SET ROLE postgres
-- next
-- class: privilege
SET ROLE NONE
-- next
-- class: privilege
SET LOCAL ROLE admin
-- next
-- class: privilege
RESET ROLE
-- next
-- class: privilege
SET SESSION AUTHORIZATION postgres
-- next
-- class: privilege
SET SESSION AUTHORIZATION DEFAULT
-- next
-- class: privilege
RESET SESSION AUTHORIZATION
-- next
-- class: privilege
SET role = 'postgres'
-- next
-- class: privilege
SET session_authorization = 'postgres'
-- next
-- class: session
SET standard_conforming_strings = off
-- next
-- class: session
SET client_encoding = 'SJIS'
-- next
-- class: session
SET NAMES 'GBK'
-- next
-- class: session
SET search_path = public, pg_catalog
-- next
-- class: admin
SET zero_damaged_pages = on
-- next
-- class: session
SET SCHEMA 'public, pg_catalog'
-- next
-- class: session
SET CONSTRAINTS ALL DEFERRED, nextval('s')
-- next
-- set_config would replace the developer's label upstream (issue 7)
SELECT set_config('application_name', 'airlock:bob:psql', false)
-- next
SELECT set_config('application_name', 'x', false), set_config('work_mem', '64MB', true)
