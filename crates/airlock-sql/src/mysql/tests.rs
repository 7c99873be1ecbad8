use super::*;

fn verdict(sql: &str) -> MysqlVerdict {
    classify_mysql(sql, SqlModes::default(), &())
}

#[test]
fn reads_and_harmless_statements_pass() {
    for sql in [
        "SELECT * FROM t WHERE id = 1",
        "select a, count(*) from t group by a having count(*) > 1 order by 2 limit 5",
        "SELECT 1; SELECT 2",
        "SELECT 1--1",
        "SELECT * FROM t1 JOIN t2 USING (id) UNION ALL SELECT * FROM t3",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "SHOW TABLES",
        "SHOW FULL COLUMNS FROM t",
        "SHOW CREATE TABLE t",
        "SHOW TABLE STATUS LIKE 't%'",
        "SHOW VARIABLES LIKE 'sql_mode'",
        "SHOW ENGINE INNODB STATUS",
        "SHOW WARNINGS",
        "DESCRIBE t",
        "EXPLAIN SELECT * FROM t",
        "BEGIN",
        "START TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "SET autocommit = 0",
        "SET NAMES utf8mb4",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET @a = 5",
        "SET @@session.wait_timeout = 100",
        "USE app",
        "LOCK TABLES t READ /*!32311 LOCAL */",
        "UNLOCK TABLES",
        "/*!40101 SET NAMES utf8mb4 */",
        "/* just a comment */",
        "SELECT @@version, DATABASE(), NOW(), JSON_EXTRACT('{}', '$.a')",
        "PREPARE s FROM 'SELECT * FROM t WHERE id = ?'",
        "DEALLOCATE PREPARE s",
    ] {
        let v = verdict(sql);
        assert!(v.passes(), "{sql} must pass: {:?}", v.reasons());
    }
}

#[test]
fn everything_else_is_held() {
    for sql in [
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "INSERT INTO t VALUES (1)",
        "REPLACE INTO t VALUES (1)",
        "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 2",
        "DELETE t1, t2 FROM t1 JOIN t2 USING (id)",
        "UPDATE t1 JOIN t2 USING (id) SET t1.a = t2.a",
        "DELETE FROM t RETURNING *",
        "LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t",
        "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "SELECT * INTO DUMPFILE '/tmp/x' FROM t",
        "SELECT a INTO @v FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT * FROM t FOR SHARE",
        "HANDLER t OPEN",
        "CALL p()",
        "SELECT my_function(1)",
        "SELECT app.f(1)",
        "SELECT GET_LOCK('x', 1)",
        "SELECT RELEASE_LOCK('x')",
        "SELECT NEXTVAL(s)",
        "SELECT NEXT VALUE FOR s",
        "SELECT SETVAL(s, 10)",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SET @a = my_function()",
        "SELECT @a := my_function()",
        "SET SESSION TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "START TRANSACTION READ WRITE",
        "SET tx_read_only = 0",
        "SET SESSION transaction_read_only = OFF",
        "SET @@session.transaction_read_only = 0",
        "SET GLOBAL read_only = 0",
        "SET @@global.max_connections = 1",
        "SET sql_log_bin = 0",
        "SET STATEMENT max_statement_time = 1 FOR UPDATE t SET a = 1",
        "EXECUTE IMMEDIATE 'DELETE FROM t'",
        "EXECUTE s",
        "PREPARE s FROM @sql",
        "ANALYZE UPDATE t SET a = 1",
        "ANALYZE TABLE t",
        "EXPLAIN UPDATE t SET a = 1",
        "EXPLAIN ANALYZE SELECT my_function()",
        "SHOW TABLES WHERE my_function(1)",
        "SHOW TABLES WHERE GET_LOCK('x', 1)",
        "CREATE TABLE x (a int)",
        "DROP TABLE t",
        "TRUNCATE t",
        "ALTER TABLE t ADD c INT",
        "RENAME TABLE t TO u",
        "GRANT ALL ON *.* TO u",
        "CREATE USER u",
        "SET PASSWORD = PASSWORD('x')",
        "SET ROLE admin",
        "FLUSH PRIVILEGES",
        "KILL 5",
        "OPTIMIZE TABLE t",
        "XA START 'x'",
        "DO GET_LOCK('x', 1)",
        "LOCK TABLES t WRITE",
        "SET NAMES sjis",
        "SET character_set_client = 'gbk'",
        "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
        "SELECT 1; DELETE FROM t",
        "SELECT 1 /*!50000 ; DELETE FROM t */",
        "SELECT * FROM t /*!50000 INTO OUTFILE '/tmp/x' */",
        "SELECT 1 /*M!100000 , GET_LOCK('x', 1) */",
        "SELECT 1 --1, GET_LOCK('x', 1)",
        "SELECT 1 # comment\n, GET_LOCK('x', 1)",
        "/*!99999 SELECT '*/ DELETE FROM t /*!99999 ' */",
        "SELECT 'unterminated",
        "SELEC garbage",
        "INSTALL SONAME 'x'",
        "CHANGE MASTER TO MASTER_HOST='x'",
        "PURGE BINARY LOGS TO 'x'",
    ] {
        let v = verdict(sql);
        assert!(!v.passes(), "{sql} must be held");
        assert!(!v.reasons().is_empty(), "{sql}: a held statement says why");
    }
}

#[test]
fn prepared_names_and_modes_are_followed() {
    let v = verdict("PREPARE s FROM 'SELECT 1'; PREPARE w FROM 'DELETE FROM t'");
    assert_eq!(
        v.statements[0].effect,
        Effect::Prepare {
            name: "s".into(),
            passes: true
        }
    );
    assert_eq!(
        v.statements[1].effect,
        Effect::Prepare {
            name: "w".into(),
            passes: false
        }
    );
    struct Known;
    impl PreparedNames for Known {
        fn passes(&self, name: &str) -> Option<bool> {
            match name {
                "s" => Some(true),
                "w" => Some(false),
                _ => None,
            }
        }
    }
    assert!(classify_mysql("EXECUTE s", SqlModes::default(), &Known).passes());
    assert!(!classify_mysql("EXECUTE w", SqlModes::default(), &Known).passes());
    // sql_mode changes how the rest of the text is lexed.
    let v = verdict("SET sql_mode = 'ANSI_QUOTES'; SELECT \"a\" FROM t");
    assert_eq!(v.statements.len(), 2);
    assert!(matches!(v.statements[0].effect, Effect::SqlModes(m) if m.ansi_quotes));
    // Under NO_BACKSLASH_ESCAPES a backslash ends nothing.
    let nbe = SqlModes {
        no_backslash_escapes: true,
        ..Default::default()
    };
    let v = classify_mysql("SELECT 'a\\'; DELETE FROM t; SELECT 'x'", nbe, &());
    assert!(!v.passes());
    assert_eq!(v.statements.len(), 3);
    assert_eq!(
        verdict("SELECT * FROM a.t JOIN u").tables(),
        vec!["a.t", "u"]
    );
    assert_eq!(verdict("DELETE FROM t").class(), StatementClass::Write);
}

#[test]
fn fingerprints_ignore_literals_and_spacing() {
    let m = SqlModes::default();
    assert_eq!(
        fingerprint_mysql("UPDATE t SET a = 1 WHERE id = 'x'", m),
        fingerprint_mysql("update  t set a=2 where id='y' /* c */", m)
    );
    assert_ne!(
        fingerprint_mysql("UPDATE t SET a = 1", m),
        fingerprint_mysql("UPDATE u SET a = 1", m)
    );
}

#[test]
fn leading_directives_end_where_mysql_ends_comments() {
    let m = SqlModes::default();
    let (d, rest) =
        leading_directives_mysql("/* airlock: max_rows=1; reason='r' */ DELETE FROM t", m);
    assert_eq!(d.max_rows.as_deref(), Some("1"));
    assert_eq!(rest, "DELETE FROM t");
    // Not nested, as on the server: the DELETE is outside the comment.
    let (_, rest) = leading_directives_mysql(
        "/* airlock: reason=x /* */ DELETE FROM t; -- */ SELECT 1",
        m,
    );
    assert_eq!(rest, "DELETE FROM t; -- */ SELECT 1");
}

#[test]
fn only_plain_dml_is_planned() {
    let m = SqlModes::default();
    for sql in [
        "UPDATE t SET v = v + 1 WHERE id < 10",
        "DELETE FROM t WHERE created < NOW() - INTERVAL 1 DAY",
        "INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO t SELECT id, v FROM u WHERE v IS NOT NULL",
        "/* why */ UPDATE t SET v = CONCAT(v, 'x') WHERE id IN (SELECT id FROM u)",
    ] {
        assert!(estimate_query_mysql(sql, m).is_some(), "{sql}");
    }
    for sql in [
        "SELECT 1",
        "UPDATE t SET v = 1; UPDATE t SET v = 2",
        "UPDATE t SET v = GET_LOCK('x', 10)",
        "DELETE FROM t WHERE id = (SELECT my_func(1))",
        "UPDATE t SET v = (SELECT v FROM u FOR UPDATE)",
        "INSERT INTO t SELECT NEXTVAL(s), 1",
        "UPDATE t SET v = 1 /*! , w = GET_LOCK('x', 1) */",
        "DROP TABLE t",
        "CALL p()",
        "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
    ] {
        assert!(estimate_query_mysql(sql, m).is_none(), "{sql}");
    }
}
