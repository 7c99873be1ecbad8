\set VERBOSITY verbose
SELECT current_database(), current_user;
\set answer 42
\echo answer is :answer
SELECT :answer + 1 AS next, :'answer' AS quoted;
CREATE TABLE tx_t (id int PRIMARY KEY);
BEGIN;
INSERT INTO tx_t VALUES (1);
SAVEPOINT s1;
INSERT INTO tx_t VALUES (1);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO tx_t VALUES (2);
SELECT 1/0;
SELECT * FROM tx_t;
\echo error state: :ERROR :SQLSTATE
COMMIT;
SELECT count(*) FROM tx_t;
BEGIN;
INSERT INTO tx_t VALUES (3);
COMMIT;
SELECT * FROM tx_t;
BEGIN;
INSERT INTO tx_t VALUES (4);
ROLLBACK;
SELECT * FROM tx_t ORDER BY 1;
SELECT 'multi'; SELECT 'line'
 ;
\if :{?answer}
\echo answer is set
\endif
SELECT 1 AS x \gset
\echo x is :x
\pset format unaligned
\pset fieldsep ';'
SELECT 'a' AS one, 'b' AS two;
\pset format aligned
\pset border 2
SELECT 'framed' AS boxed, NULL AS nothing;
\q
SELECT 'never reached';
