-- class: write
EXPLAIN ANALYZE DELETE FROM app.orders
-- next
-- class: write
EXPLAIN (ANALYZE true) UPDATE app.accounts SET balance = 0
-- next
-- class: write
EXPLAIN (ANALYZE, BUFFERS) INSERT INTO app.accounts (name) VALUES ('x')
-- next
-- class: write
EXPLAIN (ANALYZE on, FORMAT json) DELETE FROM app.orders
-- next
-- class: write
EXPLAIN (ANALYZE 1) DELETE FROM app.orders
-- next
-- class: write
EXPLAIN (ANALYSE) DELETE FROM app.orders
-- next
-- class: write
EXPLAIN ANALYZE VERBOSE DELETE FROM app.orders
-- next
-- class: write
EXPLAIN ANALYZE SELECT nextval('app.seq1')
-- next
-- class: write
EXPLAIN ANALYZE WITH d AS (DELETE FROM app.orders RETURNING 1) SELECT * FROM d
-- next
-- class: ddl
EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1
-- next
-- class: write
PREPARE p AS DELETE FROM app.orders WHERE id = $1
-- next
-- class: write
PREPARE p (int) AS UPDATE app.accounts SET balance = $1
-- next
-- class: write
PREPARE p AS SELECT nextval('app.seq1')
-- next
-- class: write
PREPARE p AS WITH d AS (DELETE FROM app.orders RETURNING 1) SELECT * FROM d
-- next
-- class: write
PREPARE p AS SELECT * FROM app.accounts FOR UPDATE
-- next
-- class: write
EXECUTE p(nextval('app.seq1'))
-- next
-- class: write
DECLARE c CURSOR FOR SELECT nextval('app.seq1')
-- next
-- class: write
COPY (SELECT nextval('app.seq1')) TO STDOUT
-- next
-- class: write
COPY (DELETE FROM app.orders RETURNING *) TO STDOUT
-- next
-- class: write
EXPLAIN ANALYSE DELETE FROM app.orders
-- next
-- class: unknown
DESCRIBE app.accounts
-- next
-- Plain EXPLAIN keeps every finding of its inner statement: planning
-- evaluates STABLE/IMMUTABLE functions (issue 7).
EXPLAIN DELETE FROM app.accounts
-- next
EXPLAIN (COSTS off, FORMAT json) UPDATE app.accounts SET balance = 0
-- next
EXPLAIN (ANALYZE false) DELETE FROM app.accounts
-- next
EXPLAIN SELECT nextval('app.seq1')
-- next
EXPLAIN SELECT * FROM app.accounts WHERE id = stable_bump()
-- next
EXPLAIN (COSTS off) SELECT * FROM app.accounts WHERE id = public.stable_bump()
-- next
EXPLAIN EXECUTE p(set_config('default_transaction_read_only', 'off', false))
-- next
EXPLAIN EXECUTE p(pg_terminate_backend(42))
