"""Tricky statements on a protected MariaDB target (tests/mysql_gate.rs).

Each case is run directly (as root, which can write) and must change the
schema's state there; then through airlock as a text query, inside a
multi-statement packet, and as a binary prepared statement
(COM_STMT_PREPARE + COM_STMT_EXECUTE, by mysql-connector-python), where it
must fail and change nothing — with read credentials that can write, so the
classifier alone holds it. A case the server itself cannot prepare changes
nothing as a prepared statement anywhere; those are counted apart.
Prints one JSON line: {"checked": n, "unpreparable": [...], "failures": [...]}.
"""
import json, sys, pymysql
import mysql.connector

proxy_port, user, password, schema = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def root(db=schema):
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=db,
                           autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)

def proxied():
    return pymysql.connect(host="127.0.0.1", port=proxy_port, user=user, password=password,
                           database=schema, autocommit=True,
                           client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)

def connector(port, who, pw):
    return mysql.connector.connect(host="127.0.0.1", port=port, user=who, password=pw,
                                   database=schema, use_pure=True, autocommit=True)

def run(sql, mode, port, who, pw):
    """Runs the case in `mode`: (the error's args or None, the connection,
    left open so that what it holds — a lock — shows in the state)."""
    if mode == "prepared":
        c = connector(port, who, pw)
        try:
            cur = c.cursor(prepared=True)
            cur.execute(sql)
            try:
                cur.fetchall()
            except mysql.connector.Error:
                pass
            return None, c
        except mysql.connector.Error as e:
            return (e.errno, e.sqlstate, e.msg), c
    c = root() if port == 3306 else proxied()
    try:
        text = sql if mode == "text" else "SELECT 1; " + sql
        cur = c.cursor()
        cur.execute(text)
        while cur.nextset():
            pass
        return None, c
    except pymysql.MySQLError as e:
        return e.args, c

def close(c):
    try:
        c.close()
    except Exception:
        pass

def reset():
    c = root()
    cur = c.cursor()
    for stmt in [
        "DROP VIEW IF EXISTS made",
        "DROP TABLE IF EXISTS t, log, made, t2, tmp",
        "DROP SEQUENCE IF EXISTS s",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE t2 (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE log (n INT)",
        "INSERT INTO t VALUES (1, 10), (2, 20)",
        "INSERT INTO t2 VALUES (1, 100)",
        "CREATE SEQUENCE s",
        "DROP FUNCTION IF EXISTS bump",
        "CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO log VALUES (1); RETURN 1; END",
        "DROP PROCEDURE IF EXISTS touch",
        "CREATE PROCEDURE touch() MODIFIES SQL DATA UPDATE t SET v = v + 1",
    ]:
        cur.execute(stmt)
    c.close()

def state(other):
    c = root()
    cur = c.cursor()
    # A table locked by the session under test must not hang the check.
    cur.execute("SET SESSION lock_wait_timeout = 2, innodb_lock_wait_timeout = 2")
    out = []
    for q in [
        "SELECT GROUP_CONCAT(table_name ORDER BY table_name) FROM information_schema.tables WHERE table_schema = DATABASE()",
        "SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM t",
        "SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM t2",
        "SELECT COUNT(*) FROM log",
        "SELECT next_not_cached_value FROM s",
        "SELECT IS_USED_LOCK('airlock_corpus')",
        "SELECT GROUP_CONCAT(column_name ORDER BY column_name) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 't'",
        "SELECT GROUP_CONCAT(index_name ORDER BY index_name) FROM information_schema.statistics WHERE table_schema = DATABASE()",
    ]:
        try:
            cur.execute(q)
            out.append(repr(cur.fetchall()))
        except pymysql.MySQLError as e:
            out.append("error %s" % e.args[0])
    c.close()
    return out

CASES = [
    "UPDATE t SET v = 0",
    "update t set v = 0 where id = 1",
    "DELETE FROM t",
    "INSERT INTO t VALUES (3, 30)",
    "REPLACE INTO t VALUES (1, 11)",
    "INSERT INTO t VALUES (1, 1) ON DUPLICATE KEY UPDATE v = 99",
    "INSERT INTO t SELECT id + 10, v FROM t",
    "DELETE t, t2 FROM t JOIN t2 USING (id)",
    "UPDATE t JOIN t2 USING (id) SET t.v = t2.v",
    "DELETE FROM t RETURNING id",
    "INSERT INTO t VALUES (5, 5) RETURNING id",
    "CREATE TABLE made (a INT)",
    "DROP TABLE t2",
    "TRUNCATE t",
    "ALTER TABLE t ADD COLUMN c INT",
    "RENAME TABLE t2 TO made",
    "CREATE TABLE made AS SELECT * FROM t",
    "SELECT bump()",
    "SELECT `bump`()",
    "SELECT id FROM t WHERE bump() = 1",
    "SELECT (SELECT bump())",
    "SET @x = bump()",
    "SELECT @x := bump()",
    "DO bump()",
    "CALL touch()",
    "SELECT NEXTVAL(s)",
    "SELECT NEXT VALUE FOR s",
    "SELECT SETVAL(s, 100)",
    "SELECT GET_LOCK('airlock_corpus', 0)",
    "DO GET_LOCK('airlock_corpus', 0)",
    "/* read */ UPDATE t SET v = 0",
    "# just a read\nUPDATE t SET v = 0",
    "-- read\nUPDATE t SET v = 0",
    "/*!50000 UPDATE t SET v = 0 */",
    "/*M!100000 UPDATE t SET v = 0 */",
    "SELECT 1 /*!, bump() */",
    "SELECT 1 /*M!100000 , bump() */",
    "SELECT 1 --1, bump()",
    "SELECT 1 # c\n, bump()",
    "SELECT 1 -- c\n, bump()",
    "SELECT/**/bump()",
    "SELECT 1; UPDATE t SET v = 0",
    "UPDATE t SET v = 0; SELECT 1",
    "PREPARE w FROM 'UPDATE t SET v = 0'; EXECUTE w",
    "SET @q = 'UPDATE t SET v = 0'; PREPARE w FROM @q; EXECUTE w",
    "EXECUTE IMMEDIATE 'UPDATE t SET v = 0'",
    "SET STATEMENT max_statement_time = 100 FOR UPDATE t SET v = 0",
    "ANALYZE UPDATE t SET v = 0",
    "ANALYZE DELETE FROM t",
    "SELECT * FROM t FOR UPDATE; UPDATE t SET v = 0",
    "SET SESSION TRANSACTION READ WRITE; UPDATE t SET v = 0",
    "START TRANSACTION READ WRITE; UPDATE t SET v = 0; COMMIT",
    "SET tx_read_only = 0; UPDATE t SET v = 0",
    "SET SESSION tx_read_only = OFF; UPDATE t SET v = 0",
    "HANDLER t OPEN; HANDLER t CLOSE; UPDATE t SET v = 0",
    "UPDATE t SET v = (SELECT 0)",
    "UPDATE t SET v = v WHERE bump() = 1",
    "UPDATE t SET v = (WITH x AS (SELECT 0 AS z) SELECT z FROM x)",
    "INSERT INTO log SELECT 1 FROM t",
    "INSERT LOW_PRIORITY INTO log VALUES (1)",
    "INSERT IGNORE INTO log VALUES (1)",
    "UPDATE IGNORE t SET v = 0",
    "DELETE QUICK FROM t",
    "DELETE IGNORE FROM log WHERE 0; INSERT INTO log VALUES (1)",
    "LOCK TABLES t WRITE; UPDATE t SET v = 0; UNLOCK TABLES",
    "CREATE TEMPORARY TABLE tmp (a INT); DROP TABLE t2",
    "CREATE OR REPLACE TABLE t2 (a INT)",
    "CREATE INDEX i ON t (v)",
    "CREATE VIEW made AS SELECT 1",
    "ALTER TABLE t ENGINE = InnoDB, ADD COLUMN c INT",
    "SELECT 1 UNION SELECT bump()",
    "SELECT * FROM (SELECT bump() AS b) x",
    "SELECT JSON_OBJECT('a', bump())",
    "SELECT IF(1, bump(), 0)",
    "SELECT COALESCE(NULL, bump())",
    "SELECT CAST(bump() AS CHAR)",
    "SELECT id FROM t ORDER BY bump()",
    "SELECT id FROM t GROUP BY id HAVING bump() = 1",
    "SELECT 'a' LIKE 'a' AND bump()",
    "UPDATE/**/t SET v = 0",
    "UpDaTe t SET v = 0",
    "  \n UPDATE t SET v = 0 ;",
]

failures = []
unpreparable = []
checked = 0
for sql in CASES:
    for mode in ["text", "multi", "prepared"]:
        reset()
        before = state(None)
        direct_err, d = run(sql, mode, 3306, "root", "")
        changed = state(None) != before
        close(d)
        if not changed and mode == "prepared" and direct_err is not None:
            # The server refuses to prepare it (several statements, or a
            # statement kind that cannot be prepared): nothing to prove.
            unpreparable.append({"sql": sql, "err": direct_err})
            continue
        if not changed:
            failures.append({"sql": sql, "mode": mode, "why": "does not change state directly: not a proof"})
            continue
        reset()
        before = state(None)
        err, p = run(sql, mode, proxy_port, user, password)
        after = state(None)
        close(p)
        checked += 1
        if after != before:
            failures.append({"sql": sql, "mode": mode, "why": "changed state through airlock", "err": err})
        elif err is None:
            failures.append({"sql": sql, "mode": mode, "why": "no error through airlock"})
print(json.dumps({"checked": checked, "unpreparable": unpreparable, "failures": failures}, default=str))
