SELECT 1
-- next
select 1;
-- next
SELECT abalance FROM pgbench_accounts WHERE aid = $1
-- next
TABLE app.accounts
-- next
TABLE app.accounts ORDER BY 1 LIMIT 5
-- next
table only app.accounts
-- next
VALUES (1, 'a'), (2, 'b')
-- next
WITH x AS (SELECT 1 AS a) SELECT * FROM x
-- next
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t
-- next
WITH x AS MATERIALIZED (SELECT * FROM app.orders) SELECT count(*) FROM x
-- next
SELECT * FROM app.accounts a JOIN LATERAL (SELECT * FROM app.orders o WHERE o.account_id = a.id LIMIT 1) o ON true
-- next
SELECT * FROM generate_series(1, 10) AS g(i), unnest(ARRAY[1,2,3]) WITH ORDINALITY AS u(x, n)
-- next
SELECT row_number() OVER (PARTITION BY account_id ORDER BY id), rank() OVER w, lag(amount) OVER w, sum(amount) OVER w FROM app.orders WINDOW w AS (ORDER BY id)
-- next
SELECT coalesce(NULL, 1), nullif(1, 2), greatest(1, 2, 3), least(1, 2), CASE WHEN random() > 0.5 THEN 'a' ELSE 'b' END
-- next
SELECT now(), current_timestamp, current_date, current_time, localtimestamp, clock_timestamp(), timeofday(), statement_timestamp(), transaction_timestamp()
-- next
SELECT current_user, session_user, current_role, user, current_catalog, current_schema, current_database(), current_schemas(false)
-- next
SELECT version(), pg_backend_pid(), current_setting('server_version_num'), current_setting('search_path', true)
-- next
SELECT to_char(now(), 'YYYY-MM-DD'), date_trunc('day', now()), extract(epoch FROM now()), age(now(), '2020-01-01'::timestamptz), now() AT TIME ZONE 'UTC', interval '1 day' * 3
-- next
SELECT format('%s-%I-%L', 'a', 'B', 'c'), concat('a', 1), concat_ws(',', 'a', 'b'), lower('A'), upper('b'), initcap('x y'), length('abc'), substring('abcdef' FROM 2 FOR 3), position('c' IN 'abc'), trim(both ' ' FROM ' x '), overlay('abc' PLACING 'x' FROM 2 FOR 1), replace('a', 'a', 'b'), regexp_replace('aaa', 'a', 'b', 'g'), split_part('a,b', ',', 2), left('abc', 1), right('abc', 1), lpad('1', 3, '0'), md5('x'), quote_ident('A'), quote_literal('b')
-- next
SELECT abs(-1), round(1.234, 2), ceil(1.2), floor(1.8), sqrt(4), power(2, 10), mod(7, 3), trunc(1.9), ln(10), log(100), exp(1), pi(), sign(-3), width_bucket(5, 0, 10, 5), 7 / 2, 7 % 2, 2 ^ 3, |/ 16, @ -5
-- next
SELECT count(*), count(DISTINCT account_id), sum(amount), avg(amount), min(amount), max(amount), string_agg(note, ',' ORDER BY id), array_agg(id) FILTER (WHERE amount > 1), bool_and(true), percentile_cont(0.5) WITHIN GROUP (ORDER BY amount), mode() WITHIN GROUP (ORDER BY amount) FROM app.orders GROUP BY account_id HAVING count(*) > 1
-- next
SELECT '{"a":1}'::jsonb -> 'a', '{"a":{"b":2}}'::jsonb #>> '{a,b}', jsonb_build_object('a', 1), json_agg(x), to_jsonb(x), jsonb_path_query('{"a":1}', '$.a'), '{"a":1}'::jsonb @> '{"a":1}', '{"a":1}'::jsonb ? 'a', jsonb_set('{}', '{a}', '1'), jsonb_each_text('{"a":"b"}') FROM (SELECT 1 AS x) x
-- next
SELECT array_to_string(ARRAY[1,2], ','), array_length(ARRAY[1,2], 1), array_upper(ARRAY[1], 1), array_lower(ARRAY[1], 1), ARRAY[1,2] && ARRAY[2], ARRAY[1] <@ ARRAY[1,2], cardinality(ARRAY[1]), array_position(ARRAY[1,2], 2), (ARRAY[1,2,3])[2:3]
-- next
SELECT CAST('1' AS int), '1'::bigint, 'app.accounts'::regclass, 'app.accounts'::regclass::oid, pg_typeof(1), 'now'::timestamptz, '1 day'::interval, '127.0.0.1'::inet << '127.0.0.0/8'::cidr
-- next
SELECT * FROM app.accounts WHERE name ~ '^a' OR name ~* 'B' OR name LIKE 'a%' OR name ILIKE '%b' OR name SIMILAR TO 'x%' OR name !~ 'z' OR id IN (SELECT account_id FROM app.orders) OR EXISTS (SELECT 1 FROM app.orders) OR id = ANY(ARRAY[1,2]) OR id BETWEEN 1 AND 3 OR name IS DISTINCT FROM 'x'
-- next
SELECT pg_sleep(0.1)
-- next
SELECT pg_catalog.set_config('search_path', '', false)
-- next
SELECT set_config('statement_timeout', '5s', true)
-- next
SELECT set_config('work_mem', '64MB', true), set_config('search_path', 'public', false)
-- next
SELECT pg_database_size(current_database()), pg_relation_size('app.accounts'), pg_total_relation_size('app.accounts'), pg_size_pretty(pg_table_size('app.accounts')), pg_indexes_size('app.accounts')
-- next
SELECT has_table_privilege('app.accounts', 'SELECT'), has_schema_privilege('app', 'USAGE'), pg_has_role('postgres', 'MEMBER'), pg_get_userbyid(10), pg_get_constraintdef(1), pg_get_indexdef(1), pg_table_is_visible(1), pg_function_is_visible(1), pg_type_is_visible(1), pg_get_function_result(1), pg_get_function_identity_arguments(1), pg_get_function_arguments(1), pg_is_other_temp_schema(1), pg_postmaster_start_time(), inet_server_addr()
-- next
SELECT pg_stat_get_numscans(1), pg_stat_get_live_tuples(1), pg_stat_get_xact_numscans(1), txid_current_if_assigned(), pg_current_snapshot(), txid_current_snapshot(), currval('app.seq1'), pg_is_in_recovery(), pg_last_xact_replay_timestamp()
-- next
SELECT * FROM app.accounts ORDER BY id DESC NULLS LAST LIMIT 10 OFFSET 5
-- next
SELECT * FROM app.accounts FETCH FIRST 3 ROWS ONLY
-- next
SELECT DISTINCT ON (account_id) * FROM app.orders ORDER BY account_id, id DESC
-- next
SELECT a.id FROM app.accounts a UNION SELECT account_id FROM app.orders INTERSECT SELECT 1 EXCEPT SELECT 2
-- next
SELECT * FROM app.accounts TABLESAMPLE BERNOULLI (10)
-- next
SELECT id FROM app.accounts GROUP BY GROUPING SETS ((id), ()) 
-- next
SELECT xmlforest(1 AS a), xpath('/a', '<a/>'::xml), xmlparse(document '<a/>')
-- next
SELECT generate_series(1, 3), unnest(ARRAY['a']), jsonb_array_elements('[1]')
-- next
SELECT information_schema._pg_expandarray(ARRAY[1,2])
-- next
SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'app' ORDER BY ordinal_position
-- next
SHOW search_path
-- next
SHOW ALL
-- next
SHOW TRANSACTION ISOLATION LEVEL
-- next
show server_version
-- next
SHOW airlock.reason
-- next
SET airlock.reason = 'fix the totals'
-- next
SET airlock.max_rows = 100
-- next
BEGIN
-- next
BEGIN READ ONLY
-- next
BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE
-- next
START TRANSACTION ISOLATION LEVEL REPEATABLE READ
-- next
START TRANSACTION READ ONLY
-- next
BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED
-- next
COMMIT
-- next
COMMIT AND CHAIN
-- next
ROLLBACK
-- next
ABORT
-- next
END
-- next
SAVEPOINT s1
-- next
RELEASE SAVEPOINT s1
-- next
ROLLBACK TO SAVEPOINT s1
-- next
ROLLBACK TO s1
-- next
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE
-- next
SET TRANSACTION READ ONLY
-- next
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE
-- next
SET TRANSACTION SNAPSHOT '00000003-0000001B-1'
-- next
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
-- next
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ
-- next
SET search_path TO public, app
-- next
SET search_path = pg_catalog, public
-- next
SET statement_timeout = '5min'
-- next
SET statement_timeout TO 0
-- next
SET LOCAL lock_timeout = '1s'
-- next
SET client_encoding TO 'UTF8'
-- next
SET NAMES 'UTF8'
-- next
SET DateStyle = ISO, MDY
-- next
SET datestyle TO 'ISO'
-- next
SET extra_float_digits = 3
-- next
SET application_name = 'psql'
-- next
SET TIME ZONE 'UTC'
-- next
SET TimeZone = 'Europe/Paris'
-- next
SET bytea_output = 'hex'
-- next
SET intervalstyle = 'iso_8601'
-- next
SET work_mem = '64MB'
-- next
SET work_mem TO DEFAULT
-- next
SET default_transaction_read_only = on
-- next
SET transaction_read_only = true
-- next
SET default_transaction_deferrable = on
-- next
SET standard_conforming_strings = on
-- next
RESET search_path
-- next
RESET statement_timeout
-- next
RESET work_mem
-- next
EXPLAIN SELECT * FROM app.accounts
-- next
EXPLAIN ANALYZE SELECT * FROM app.accounts
-- next
EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM app.orders
-- next
LISTEN orders_changed
-- next
UNLISTEN *
-- next
UNLISTEN orders_changed
-- next
DISCARD ALL
-- next
DISCARD PLANS
-- next
DISCARD SEQUENCES
-- next
DISCARD TEMP
-- next
LOCK TABLE app.accounts IN ACCESS SHARE MODE
-- next
LOCK app.accounts, app.orders IN ACCESS SHARE MODE NOWAIT
-- next
DECLARE c CURSOR FOR SELECT * FROM app.accounts
-- next
DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT id FROM app.orders
-- next
DECLARE c BINARY NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1
-- next
FETCH 100 FROM c
-- next
FETCH NEXT FROM c
-- next
FETCH ALL IN c
-- next
FETCH BACKWARD 2 FROM c
-- next
MOVE NEXT FROM c
-- next
MOVE FORWARD 5 IN c
-- next
MOVE ABSOLUTE 1 FROM c
-- next
CLOSE c
-- next
CLOSE ALL
-- next
PREPARE p1 AS SELECT * FROM app.accounts WHERE id = $1
-- next
PREPARE p2 (int, text) AS SELECT $1, $2
-- next
EXECUTE p1(1)
-- next
EXECUTE p1
-- next
DEALLOCATE p1
-- next
DEALLOCATE PREPARE p1
-- next
DEALLOCATE ALL
-- next
COPY app.accounts TO STDOUT
-- next
COPY app.accounts (id, name) TO STDOUT WITH (FORMAT csv, HEADER)
-- next
COPY (SELECT * FROM app.orders WHERE amount > 10) TO STDOUT WITH CSV HEADER
-- next
copy app.accounts to stdout
-- next
SELECT 1; SELECT 2
-- next
BEGIN; SELECT * FROM app.accounts; COMMIT
-- next
SET search_path = app; SHOW search_path; SELECT current_schema()
-- next
SELECT 1; -- trailing comment
-- next
/* leading comment */ SELECT 1
-- next
-- line comment
SELECT 1
-- next
SELECT /* inline ; DELETE FROM x */ 1
-- next
SELECT 1 /* /* nested ; DROP TABLE t */ still comment; DELETE FROM t */
-- next
SELECT 'a;b', $$ ; DELETE FROM t; $$, $tag$ ; DROP TABLE x $tag$, E'\'; DELETE FROM t; --', 'it''s; ok'
-- next
SELECT "nextval" FROM (SELECT 1 AS "nextval") s
-- next
SELECT nextval FROM (SELECT 1 AS nextval) s
-- next
select * from APP.ACCOUNTS where ID = 1
-- next
   SELECT
      1
-- next
SELECT 1 -- x
DELETE FROM app.accounts
-- next
/* only a comment */
-- next
-- only a line comment
-- next
;
-- next
EXPLAIN ANALYSE SELECT 1
-- next
SELECT * FROM app.accounts ORDER BY id USING <
-- next
SELECT * FROM app.accounts ORDER BY id USING OPERATOR(pg_catalog.<)
-- next
SELECT int4('1'), text(1), regclass('app.accounts')
-- next
SET SCHEMA 'app'
-- next
SET LOCAL SCHEMA 'app'
-- next
SET CONSTRAINTS ALL DEFERRED
-- next
SET CONSTRAINTS app.orders_account_id_fkey, other IMMEDIATE
-- next
SET XML OPTION DOCUMENT
