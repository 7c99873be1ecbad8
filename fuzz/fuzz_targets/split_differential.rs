//! Statement boundaries, `sqlparser` (airlock-sql's own analysis) against
//! Postgres's own parser (libpg_query through `pg_query`). The two may
//! disagree on anything, as long as the disagreement holds the text: the
//! product cross-checks every verdict with Postgres's reading
//! (`pg_view::cross_check`) and holds on any difference. So whenever the
//! gate lets a text through on a protected target:
//! - Postgres's parser accepts it and counts as many statements as the
//!   analysis (`Classification::statement_count`), by `parse` and by
//!   `split_with_parser`;
//! - Postgres's reading has no finding (`pg_view`): every statement is of a
//!   kind that can be a read, with no write, lock or unlisted function in it;
//! - each statement as Postgres splits it passes on its own (context only
//!   ever makes a verdict stricter);
//! - the verdict the `Classifier` cache gives (shared between statements
//!   that differ only in literals) is the text's own verdict;
//! - what goes upstream after the `application_name` rewrite
//!   (`plain::client_frame`) passes too.
//!
//! Input: UTF-8 texts separated by NUL (a Query's text ends at its first
//! NUL), judged in order by one session's gate and one shared cache, each
//! as a simple Query and as a Parse.
#![no_main]

use std::sync::Arc;

use airlock_pg::appname::AppName;
use airlock_pg::frame;
use airlock_pg::gate::{Gate, Judgement};
use airlock_pg::plain;
use airlock_sql::{classify, pg_view, Classifier};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// What must hold of a text the gate let through.
fn passed_text_is_read_as_postgres_reads_it(sql: &str, how: &str) {
    let c = classify(sql);
    assert!(
        c.read_only,
        "{how}: {sql:?} passed, but its own classification holds it: {:?}",
        c.reasons
    );
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => panic!("{how}: {sql:?} passed, but PostgreSQL's parser rejects it: {e}"),
    };
    let pg_count = parsed.protobuf.stmts.len();
    assert_eq!(
        pg_count, c.statement_count,
        "{how}: {sql:?} passed with {} statement(s) where PostgreSQL sees {pg_count}",
        c.statement_count
    );
    let pieces = match pg_query::split_with_parser(sql) {
        Ok(p) => p,
        Err(e) => panic!("{how}: {sql:?} passed, but PostgreSQL's splitter rejects it: {e}"),
    };
    assert_eq!(
        pieces.len(),
        c.statement_count,
        "{how}: {sql:?} passed with {} statement(s) where PostgreSQL splits {pieces:?}",
        c.statement_count
    );
    let view = pg_view::pg_view(sql).expect("pg_query parsed it above");
    assert!(
        view.findings.is_empty(),
        "{how}: {sql:?} passed, but PostgreSQL reads {:?} in it: {:?}",
        view.kinds,
        view.findings
    );
    if pieces.len() > 1 {
        for piece in &pieces {
            let p = classify(piece);
            assert!(
                p.read_only,
                "{how}: {sql:?} passed, but its statement {piece:?} alone is held: {:?}",
                p.reasons
            );
        }
    }
    // The scanner-based splitter must not panic either (it may differ).
    let _ = pg_query::split_with_scanner(sql);
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let classifier = Arc::new(Classifier::new(32));
    let mut gate = Gate::new(Arc::clone(&classifier));
    let app = AppName::new("fuzz");
    for (i, sql) in input.split('\0').take(8).enumerate() {
        // The cache shared by the sessions (verdicts shared by shape).
        if classifier.classify(sql).read_only {
            passed_text_is_read_as_postgres_reads_it(sql, "Classifier");
        }

        // A simple Query.
        let mut q = BytesMut::new();
        frame::put_query(&mut q, sql);
        assert_eq!(frame::query_sql(&q), Ok(sql.as_bytes()));
        if gate.query(sql.as_bytes()) == Judgement::Pass {
            passed_text_is_read_as_postgres_reads_it(sql, "Query");
            if let Ok(Some(out)) = plain::client_frame(&app, b'Q', &q) {
                let sent = frame::query_sql(&out).expect("a rewritten Query");
                let sent = std::str::from_utf8(sent).expect("UTF-8");
                passed_text_is_read_as_postgres_reads_it(sent, "rewritten Query");
            }
        }

        // The same text as a named Parse (the extended protocol).
        let name = format!("s{i}");
        if gate.parse(name.as_bytes(), sql.as_bytes()) == Judgement::Pass {
            passed_text_is_read_as_postgres_reads_it(sql, "Parse");
            assert_eq!(gate.bind(name.as_bytes()), Judgement::Pass);
        } else {
            assert_ne!(
                gate.bind(name.as_bytes()),
                Judgement::Pass,
                "a Bind to a held Parse {sql:?} is held"
            );
        }
    }
});
