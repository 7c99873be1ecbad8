-- class: write
SELECT nextval('app.seq1')
-- next
-- class: write
SELECT setval('app.seq1', 42)
-- next
-- class: write
SELECT pg_catalog.nextval('app.seq1')
-- next
-- class: write
SELECT "nextval"('app.seq1')
-- next
-- class: write
SELECT PG_CATALOG.NEXTVAL('app.seq1')
-- next
-- class: write
SELECT "pg_catalog"."nextval"('app.seq1')
-- next
-- class: write
SELECT "NEXTVAL"('app.seq1')
-- next
-- class: write
SELECT id, nextval('app.seq1') FROM app.accounts
-- next
-- class: write
SELECT * FROM app.accounts WHERE id = nextval('app.seq1')
-- next
-- class: write
SELECT * FROM app.accounts ORDER BY nextval('app.seq1')
-- next
-- class: write
SELECT * FROM app.accounts GROUP BY id HAVING count(*) > nextval('app.seq1')
-- next
-- class: write
SELECT * FROM app.accounts a JOIN app.orders o ON o.account_id = a.id AND nextval('app.seq1') > 0
-- next
-- class: write
SELECT * FROM nextval('app.seq1')
-- next
-- class: write
SELECT * FROM app.accounts t1, LATERAL my_func(t1.id)
-- next
-- class: write
SELECT * FROM app.accounts t1 CROSS JOIN LATERAL public.my_func(t1.id) f
-- next
-- class: write
SELECT * FROM my_srf()
-- next
-- class: write
VALUES (1), (nextval('app.seq1'))
-- next
-- class: write
SELECT CASE WHEN id > 0 THEN nextval('app.seq1') ELSE 0 END FROM app.accounts
-- next
-- class: write
SELECT sum(nextval('app.seq1')) OVER (ORDER BY id) FROM app.accounts
-- next
-- class: write
SELECT row_number() OVER (ORDER BY nextval('app.seq1')) FROM app.accounts
-- next
-- class: write
SELECT coalesce(NULL, nextval('app.seq1'))
-- next
-- class: write
SELECT ARRAY[nextval('app.seq1')]
-- next
-- class: write
SELECT (SELECT nextval('app.seq1'))
-- next
-- class: write
SELECT * FROM app.accounts WHERE EXISTS (SELECT my_func(id))
-- next
-- class: write
SELECT count(*) FILTER (WHERE my_func(id)) FROM app.accounts
-- next
-- class: write
SELECT my_func()
-- next
-- class: write
SELECT public.my_func()
-- next
-- class: write
SELECT app.add(1, 2)
-- next
-- class: write
SELECT public.lower('A')
-- next
-- class: write
SELECT otherdb.pg_catalog.lower('A')
-- next
-- class: write
SELECT lo_import('/etc/passwd')
-- next
-- class: write
SELECT lo_export(16400, '/tmp/x')
-- next
-- class: write
SELECT lo_unlink(16400)
-- next
-- class: write
SELECT lo_create(0)
-- next
-- class: write
SELECT lo_from_bytea(0, 'x')
-- next
-- class: admin
SELECT pg_terminate_backend(1234)
-- next
-- class: admin
SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'bob'
-- next
-- class: admin
SELECT pg_reload_conf()
-- next
-- class: admin
SELECT pg_advisory_lock(1)
-- next
-- class: admin
SELECT pg_try_advisory_xact_lock(1)
-- next
-- class: admin
SELECT pg_notify('chan', 'payload')
-- next
-- class: admin
SELECT pg_stat_reset()
-- next
-- class: admin
SELECT pg_create_logical_replication_slot('s', 'pgoutput')
-- next
-- class: admin
SELECT pg_switch_wal()
-- next
-- class: admin
SELECT pg_read_file('/etc/passwd')
-- next
-- class: admin
SELECT pg_ls_dir('.')
-- next
-- class: write
SELECT dblink_exec('dbname=x', 'DELETE FROM t')
-- next
-- class: write
SELECT * FROM dblink('dbname=x', 'SELECT 1') AS t(a int)
-- next
-- class: write
SELECT txid_current()
-- next
-- class: write
SELECT pg_current_xact_id()
-- next
-- class: unknown
SELECT query_to_xml('SELECT nextval(''app.seq1'')', true, true, '')
-- next
-- class: unknown
SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')
-- next
-- class: write
SELECT similarity('a', 'b')
-- next
-- class: unknown
SELECT id FROM app.accounts WHERE id OPERATOR(public.===) 1
-- next
-- class: write
SELECT id FROM app.accounts WHERE id OPERATOR(public.=) 1
-- next
-- class: write
SELECT id FROM app.accounts WHERE id OPERATOR(=) 1
-- next
-- class: write
SELECT lower(my_func(name)) FROM app.accounts
-- next
-- class: write
SELECT format('%s', nextval('app.seq1'))
-- next
-- class: write
SELECT 1 WHERE 1 = ANY(ARRAY[my_func()])
-- next
-- class: write
SELECT * FROM app.accounts ORDER BY id USING OPERATOR(public.<)
-- next
-- class: write
SELECT * FROM app.accounts WHERE id = ANY (SELECT nextval('app.seq1'))
-- next
-- class: write
SELECT * FROM app.accounts t1, LATERAL (SELECT nextval('app.seq1')) x
-- next
-- class: write
SELECT my_type('x')
