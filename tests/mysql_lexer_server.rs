//! The MySQL lexer (`airlock_sql::mysql_lexer`) against the real server:
//! each text goes to MariaDB as one COM_QUERY with multi-statements
//! (PyMySQL, `tests/mysql_split_check.py`), and wherever the server runs N
//! statements the lexer must find exactly N, or refuse the text (which
//! holds it: fail closed). Texts marked `agree` must not be refused.

mod common;

use airlock_sql::mysql_lexer::{split, SqlModes};
use common::{run_with_timeout, workspace_root};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// (sql_mode, text, whether the lexer must accept it).
const CASES: &[(&str, &str, bool)] = &[
    ("", "SELECT 1; SELECT 2", true),
    ("", "SELECT 1;", true),
    ("", "SELECT 1; ", true),
    ("", "SELECT 1; -- c", true),
    ("", "SELECT 1; # c", true),
    ("", "SELECT 1; /* c */", true),
    ("", "SELECT 1--1; SELECT 2", true),
    ("", "SELECT 1 --\n; SELECT 2", true),
    ("", "SELECT 1 -- ; SELECT 2\n; SELECT 3", true),
    ("", "SELECT 1 # ; SELECT 2\n; SELECT 3", true),
    ("", "SELECT 1 /* ; SELECT 2 */; SELECT 3", true),
    ("", "SELECT 1 /* /*! x */ + 1", true),
    ("", "SELECT 1 /*!50000 + 1 */; SELECT 2", true),
    ("", "SELECT 1 /*!100000 + 1 */", true),
    ("", "SELECT 1 /*M!100000 + 1 */; SELECT 2", true),
    ("", "SELECT 1 /*! /* x */ + 1 */", true),
    ("", "SELECT 'a\\'; SELECT 2' ; SELECT 3", true),
    ("", "SELECT \"a;b\", 'it''s;'; SELECT 2", true),
    (
        "",
        "SELECT `a;b` FROM (SELECT 1 AS `a;b`) x; SELECT 2",
        true,
    ),
    ("", "SELECT 'é;ü'; SELECT 2", true),
    ("NO_BACKSLASH_ESCAPES", "SELECT 'a\\'; SELECT 2", true),
    (
        "ANSI_QUOTES",
        "SELECT \"x;y\" FROM (SELECT 1 AS \"x;y\") t; SELECT 2",
        true,
    ),
    // The server accepts these; the lexer may refuse them (fail closed).
    ("", "SELECT 1; ;", false),
    ("", "SELECT 1 /*!99999 ; */", false),
    ("", "SELECT 1 /*M!999999 ; */; SELECT 2", false),
];

/// What the server makes of each case: a statement count or an error text.
fn server_counts() -> Vec<Value> {
    let cases: Vec<Value> = CASES
        .iter()
        .map(|(mode, text, _)| json!({ "sql_mode": mode, "text": text }))
        .collect();
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/mysql_split_check.py"));
    let input = serde_json::to_vec(&cases).expect("json");
    let out = run_with_timeout(cmd, Some(&input), Duration::from_secs(60));
    out.assert_success("asking MariaDB (127.0.0.1:3306, root) to split the texts");
    match serde_json::from_str(out.stdout().trim()) {
        Ok(Value::Array(v)) if v.len() == CASES.len() => v,
        other => panic!("unexpected answer: {other:?}"),
    }
}

#[test]
fn the_lexer_finds_the_servers_statements_or_refuses() {
    let server = server_counts();
    for ((mode, text, agree), answer) in CASES.iter().zip(&server) {
        let Some(n) = answer.as_u64() else {
            panic!("the server refused a corpus text {text:?}: {answer}");
        };
        match split(text, SqlModes::from_sql_mode(mode)) {
            Ok(statements) => assert_eq!(
                statements.len() as u64,
                n,
                "{text:?} under sql_mode {mode:?}: the server ran {n}, the lexer found {statements:?}"
            ),
            Err(e) => assert!(
                !agree,
                "{text:?} under sql_mode {mode:?}: the server ran {n}, the lexer refused it: {e}"
            ),
        }
    }
}
