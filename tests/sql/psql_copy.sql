-- Run by tests/pg_psql.rs with `psql -X -A -f -` in a scratch directory that
-- holds input.txt and bad.txt; relative \copy paths land there.
SELECT current_database(), current_user;
CREATE TABLE c (id int PRIMARY KEY, name text, price numeric, ts timestamptz, b bytea, note text);
INSERT INTO c
SELECT g, 'name ' || g || ' ünï ✓', g * 1.5,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour',
       decode(md5(g::text), 'hex'),
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 10 = 0 THEN E'tab\there\nnewline \\ backslash'
            ELSE 'plain' END
FROM generate_series(1, 5000) AS g;
\copy c to 'c.txt'
\copy c to 'c.csv' with (format csv, header)
\copy c to 'c.bin' with (format binary)
\copy (SELECT id, name FROM c WHERE id <= 10 ORDER BY id) to 'q.txt'
CREATE TABLE c2 (LIKE c);
\copy c2 from 'c.txt'
CREATE TABLE c3 (LIKE c);
\copy c3 from 'c.csv' with (format csv, header)
CREATE TABLE c4 (LIKE c);
\copy c4 from 'c.bin' with (format binary)
CREATE TABLE ext (id int PRIMARY KEY, v text);
\copy ext from 'input.txt'
SELECT (SELECT count(*) FROM c2) AS c2, (SELECT count(*) FROM c3) AS c3,
       (SELECT count(*) FROM c4) AS c4, (SELECT count(*) FROM ext) AS ext;
SELECT (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM c2) d) AS missing_c2,
       (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM c3) d) AS missing_c3,
       (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM c4) d) AS missing_c4;
-- COPY FROM STDIN with the data inline in the script
COPY ext FROM STDIN;
9001	inline one
9002	inline two
\.
SELECT count(*) AS ext_rows, max(length(v)) AS big_len, count(*) FILTER (WHERE v IS NULL) AS nulls FROM ext;
\copy ext to 'ext.txt'
COPY (SELECT * FROM ext WHERE id > 9000 ORDER BY id) TO STDOUT;
COPY (SELECT id, name, b FROM c WHERE id <= 20 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *);
-- a COPY that fails at line 700 of its input: nothing of it is kept
\copy ext from 'bad.txt'
SELECT count(*) AS after_bad FROM ext;
