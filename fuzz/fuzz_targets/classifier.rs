//! `airlock-sql` on arbitrary UTF-8 text, as the Postgres gate meets it: the
//! classification (`classify`, and the `Classifier` cache the gate uses),
//! the session directives and proxy commands read before classifying, and
//! what is computed for a held statement (fingerprint, summary, risk,
//! redaction, transaction control). Nothing may panic, and:
//! - a classification is consistent: read-only exactly when it gives no
//!   reason to hold, a held one names no PREPARE unless only calls hold it,
//!   and a fresh `Classifier` returns what `classify` does;
//! - the SQL after leading directives is the end of the text;
//! - the `application_name` rewrite of a `SET` (`appname::AppName`) is one
//!   read-only statement.
#![no_main]

use airlock_pg::appname::AppName;
use airlock_sql::{
    assess_risk, classify, fingerprint, leading_directives, needs_own_transaction, pg_view,
    proxy_command, redact, summarize, Classification, Classifier, DirectiveKey,
};
use libfuzzer_sys::fuzz_target;

fn consistent(sql: &str, c: &Classification) {
    assert_eq!(
        c.read_only,
        c.reasons.is_empty(),
        "read-only exactly when there is no reason to hold, for {sql:?}: {c:?}"
    );
    // A held string defines no read, except one held only for calls of
    // functions a target may trust (`trusted_functions`): the gate passes
    // it, and only then remembers its PREPAREs, when the target's catalog
    // resolves every call to a trusted function.
    if !c.read_only && !c.held_only_for_calls {
        assert!(
            c.prepares.is_empty(),
            "a held string defines no read: {c:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let c = classify(sql);
    consistent(sql, &c);
    let cache = Classifier::new(4);
    assert_eq!(
        *cache.classify(sql),
        c,
        "a fresh cache computes the same verdict"
    );
    assert_eq!(
        *cache.classify(sql),
        c,
        "a cache hit returns the same verdict"
    );

    let _ = proxy_command(sql);
    let (directives, rest) = leading_directives(sql);
    assert!(
        sql.ends_with(rest),
        "the SQL after the directives ends the text"
    );
    let _ = directives.problems();
    for key in DirectiveKey::ALL {
        let _ = directives.get(key);
        assert_eq!(DirectiveKey::from_name(key.as_str()), Some(key));
    }
    if rest.len() != sql.len() {
        consistent(rest, &classify(rest));
        let _ = proxy_command(rest);
    }

    // What a held statement's request carries.
    let _ = fingerprint(sql);
    let _ = summarize(sql);
    let _ = assess_risk(sql);
    let _ = needs_own_transaction(sql);
    let _ = redact(sql);
    let _ = pg_view::transaction_control(sql);
    let _ = pg_view::is_single_dml(sql);

    // A passed `SET application_name` goes upstream rewritten (the relay
    // rewrites only what the gate let through): still one read-only statement.
    let app = AppName::new("fuzz");
    if !c.read_only {
        return;
    }
    if let Some(rewritten) = app.client_sql(sql.as_bytes()) {
        let r = classify(&rewritten);
        assert!(
            r.read_only && r.statement_count == 1,
            "{sql:?} is rewritten to {rewritten:?}, classified {r:?}"
        );
        let v = pg_view::pg_view(&rewritten).expect("Postgres parses the rewrite");
        assert_eq!(v.kinds, ["VariableSetStmt"], "{rewritten:?}");
    }
});
