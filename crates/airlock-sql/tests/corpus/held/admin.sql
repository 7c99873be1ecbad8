-- class: admin
VACUUM
-- next
-- class: admin
VACUUM app.accounts
-- next
-- class: admin
VACUUM ANALYZE app.accounts
-- next
-- class: admin
VACUUM (FULL, VERBOSE) app.accounts
-- next
-- class: admin
ANALYZE
-- next
-- class: admin
ANALYZE app.accounts
-- next
-- class: admin
CLUSTER app.accounts USING accounts_pkey
-- next
-- class: admin
REINDEX TABLE app.accounts
-- next
-- class: admin
CHECKPOINT
-- next
-- class: admin
LOAD 'auto_explain'
-- next
-- class: admin
NOTIFY chan
-- next
-- class: admin
NOTIFY chan, 'payload'
-- next
-- class: admin
ALTER SYSTEM SET work_mem = '1GB'
-- next
-- class: admin
LOCK TABLE app.accounts IN EXCLUSIVE MODE
-- next
-- class: admin
LOCK TABLE app.accounts
-- next
-- class: admin
LOCK app.accounts IN ACCESS EXCLUSIVE MODE NOWAIT
-- next
-- class: admin
LOCK TABLE app.accounts IN ROW EXCLUSIVE MODE
-- next
-- class: admin
LOCK TABLE app.accounts IN SHARE MODE
-- next
-- class: unknown
DO $$ BEGIN DELETE FROM app.orders; END $$
-- next
-- class: unknown
DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$
-- next
-- class: unknown
do 'begin null; end'
