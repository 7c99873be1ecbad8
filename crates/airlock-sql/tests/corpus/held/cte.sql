-- class: write
WITH d AS (DELETE FROM app.orders RETURNING *) SELECT count(*) FROM d
-- next
-- class: write
WITH i AS (INSERT INTO app.accounts (name) VALUES ('x') RETURNING id) SELECT * FROM i
-- next
-- class: write
WITH u AS (UPDATE app.accounts SET balance = 0 RETURNING id) SELECT 1
-- next
-- class: write
WITH a AS (SELECT 1), d AS (DELETE FROM app.orders WHERE id IN (SELECT * FROM a) RETURNING id) SELECT * FROM a
-- next
-- class: write
WITH outer_cte AS (WITH inner_cte AS (DELETE FROM app.orders RETURNING id) SELECT * FROM inner_cte) SELECT * FROM outer_cte
-- next
-- class: write
SELECT * FROM (WITH d AS (DELETE FROM app.orders RETURNING id) SELECT * FROM d) s
-- next
-- class: write
SELECT (WITH d AS (DELETE FROM app.orders RETURNING id) SELECT count(*) FROM d)
-- next
-- class: write
WITH x AS (SELECT 1) DELETE FROM app.orders WHERE id IN (SELECT * FROM x)
-- next
-- class: write
WITH x AS (SELECT 1) UPDATE app.accounts SET balance = 1
-- next
-- class: write
WITH x AS (SELECT 1) INSERT INTO app.accounts (name) SELECT 'a' FROM x
-- next
-- class: write
WITH RECURSIVE r AS (SELECT 1 AS n), d AS MATERIALIZED (DELETE FROM app.orders RETURNING 1) SELECT * FROM r
-- next
-- class: write
WITH d AS (DELETE FROM app.orders RETURNING *) INSERT INTO app.accounts (name) SELECT 'x' FROM d
-- next
-- class: write
with D as (delete from APP.ORDERS returning *) select 1
