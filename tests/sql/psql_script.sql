-- Run by tests/pg_psql.rs with `psql -X -A -f`, directly and through airlock.
-- <LARGE> is replaced by a 2 MB literal before the run. ON_ERROR_STOP is off:
-- errors are part of the expected output.
\set VERBOSITY verbose
\pset null '(null)'
SELECT current_database(), current_user;
CREATE TABLE items (
    id int PRIMARY KEY,
    name text NOT NULL,
    price numeric(10,2),
    tags text[],
    created timestamptz DEFAULT '2024-05-01 12:00:00+00',
    data jsonb,
    blob bytea
);
CREATE INDEX items_name_idx ON items (name);
COMMENT ON TABLE items IS 'things we sell';
INSERT INTO items (id, name, price, tags, data, blob) VALUES
  (1, 'apple', 1.25, '{red,fruit}', '{"a": 1}', '\x00ff10'),
  (2, 'pear', NULL, NULL, NULL, NULL),
  (3, 'crème brûlée ✓ 日本語 🎉', 9.99, '{"with space","quote\"d"}', '{"nested": {"k": [1, 2, null]}}', '\xdeadbeef');
SELECT * FROM items ORDER BY id;
UPDATE items SET price = price * 2 WHERE price IS NOT NULL;
DELETE FROM items WHERE id = 2 RETURNING id, name;
-- unique violation: ERROR with DETAIL
INSERT INTO items (id, name) VALUES (1, 'duplicate');
SELECT 1/0;
SELECT * FROM no_such_table;
-- error with HINT and position
SELECT nme FROM items;
SELECT g AS n, g * g AS sq, md5(g::text) AS h, CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe
  FROM generate_series(1, 2000) AS g;
DO $$
BEGIN
  RAISE NOTICE 'notice from DO: %', 42;
  RAISE WARNING 'warning with detail' USING DETAIL = 'some detail', HINT = 'some hint';
END
$$;
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 1';
SELECT add_one(41);
CREATE TABLE big (id int, v text);
INSERT INTO big VALUES (1, '<LARGE>');
SELECT id, octet_length(v) >= 2000000 AS big_enough, md5(v) FROM big;
SELECT id, length(v) FROM big;
SELECT v FROM big;
SELECT repeat('xyz', 1000000) AS server_side_large;
SELECT NULL::text AS n1, '' AS empty, 'null' AS literal_null;
\x on
SELECT * FROM items WHERE id = 3;
\x off
SELECT 'a'::text, 1::int2, 2::int8, 1.5::float8, 1e300::float8, true, '2024-01-01'::date,
       interval '1 day 2 hours', '10.0.0.1/8'::inet, '(1,2)'::point, '[1,5)'::int4range,
       'a b c'::tsvector, 'NaN'::numeric, '-infinity'::timestamp;
-- a transaction that fails half-way
BEGIN;
INSERT INTO items (id, name) VALUES (10, 'ten');
SELECT no_such_column FROM items;
INSERT INTO items (id, name) VALUES (11, 'eleven');
COMMIT;
SELECT count(*) AS after_failed_tx FROM items;
-- psql-side features
SELECT 'SELECT ''gexec '' || ' || g FROM generate_series(1, 3) AS g \gexec
SELECT 7 AS seven, 'eight' AS eight \gset
\echo seven=:seven eight=:eight
SELECT pg_notify('chan', 'payload'), 'notified' AS what;
LISTEN chan;
NOTIFY chan, 'hello';
UNLISTEN *;
SET application_name = 'changed-by-script';
SHOW application_name;
RESET application_name;
SET datestyle = 'SQL, DMY';
SELECT '2024-03-04 05:06:07'::timestamp;
RESET datestyle;
SET TIME ZONE 'America/New_York';
SELECT '2024-07-01 12:00:00+00'::timestamptz;
RESET TIME ZONE;
PREPARE q(int) AS SELECT id, name FROM items WHERE id = $1;
EXECUTE q(1);
DEALLOCATE q;
DECLARE nope CURSOR FOR SELECT 1;
BEGIN;
DECLARE cur CURSOR FOR SELECT g FROM generate_series(1, 10) g;
FETCH 3 FROM cur;
FETCH ALL FROM cur;
CLOSE cur;
COMMIT;
