//! Disguised writes (issue 7 acceptance): every entry of
//! `tests/fixtures/disguised_writes.sql` is
//!
//! 1. proven to be a write: sent directly to a fresh copy of the seeded
//!    database, it changes persistent state (rows, sequences, large
//!    objects, prepared transactions, objects, a delivered notification, a
//!    terminated backend…);
//! 2. sent through airlock to the protected target `<db>-prod` — read
//!    credentials that CAN write (a SUPERUSER), the read-only backstop off,
//!    so the classifier alone decides — in the simple protocol, the
//!    extended protocol (unnamed Parse/Bind/Execute) and as a prepared
//!    statement (named Parse + Describe, then two Bind/Execute): each must
//!    end in an ERROR of SQLSTATE class `AL`, and the state of the target,
//!    checked directly after every case and protocol, must not change (the
//!    row estimate runs with the write credentials: a `victim`-style side
//!    effect of it would show here).
//!
//! The seed creates the objects the entries reach through the catalog:
//! views (of views) over writing and volatile functions, domains with
//! CHECKs (and domains over them, composites and table rows holding them),
//! user casts, user operators (new symbols and overloads of `+`, `=`, `<=`,
//! `>=`, `~~`), user aggregates, functions shadowing allow-listed names,
//! functions mis-declared STABLE/IMMUTABLE that the planner evaluates.

mod common;

use common::raw::{self, QueryResult, RawConn};
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

const DB: &str = "airlock_disguised";
const TEMPLATE: &str = "airlock_disguised_seed";
const PROOF: &str = "airlock_disguised_proof";
const PG: &str = "127.0.0.1:5432";
const CANARY: &str = "airlock-canary";
const CHANNEL: &str = "al_chan";

/// The seed, run directly as the upstream role in the template database.
const SEED: &str = r#"
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL);
INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 20), (3, 'carol', 3000);
CREATE TABLE audit_log (id serial PRIMARY KEY, msg text);
CREATE TABLE victim (id int);
INSERT INTO victim VALUES (1);
CREATE SEQUENCE s;
CREATE FUNCTION public.w(tag text) RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO audit_log (msg) VALUES (tag) RETURNING id $$;
CREATE FUNCTION public.bump() RETURNS int LANGUAGE sql AS $$ SELECT public.w('bump') $$;
CREATE FUNCTION public.acct_touch(accounts) RETURNS int LANGUAGE sql AS $$ SELECT public.w('attribute notation') $$;
-- Mis-declared: the planner evaluates them (folding, selectivity estimates).
CREATE FUNCTION public.stable_seq() RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN nextval('s'); END $$;
CREATE FUNCTION public.imm_seq(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM nextval('s'); RETURN $1; END $$;
CREATE FUNCTION public.stable_notify() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN PERFORM pg_notify('al_chan', 'stable'); RETURN 1; END $$;
CREATE FUNCTION public.stable_lo() RETURNS oid LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN lo_create(0); END $$;
CREATE FUNCTION public.imm_term() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
  BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airlock-canary' AND datname = current_database(); RETURN 1; END $$;
-- Domains, composites and rows that run a CHECK calling user code.
CREATE FUNCTION public.check_w(int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN PERFORM public.w('domain'); RETURN true; END $$;
CREATE DOMAIN positive_w AS int CHECK (public.check_w(VALUE));
CREATE DOMAIN positive_w2 AS positive_w;
CREATE DOMAIN txt_w AS text CHECK (public.check_w(length(VALUE)));
CREATE TYPE pair_w AS (a positive_w, b int);
CREATE TABLE typed_tbl (id int, d positive_w);
-- Casts.
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE FUNCTION public.mood_to_int(mood) RETURNS int LANGUAGE sql AS $$ SELECT public.w('explicit cast') $$;
CREATE CAST (mood AS int) WITH FUNCTION public.mood_to_int(mood);
CREATE TYPE color AS ENUM ('red', 'green');
CREATE FUNCTION public.color_to_text(color) RETURNS text LANGUAGE sql AS $$ SELECT public.w('implicit cast')::text $$;
CREATE CAST (color AS text) WITH FUNCTION public.color_to_text(color) AS IMPLICIT;
-- Operators: a new symbol, overloads of built-in symbols, a prefix one, one the planner folds.
CREATE FUNCTION public.plus_w(int, int) RETURNS int LANGUAGE sql AS $$ SELECT public.w('operator |+|') $$;
CREATE OPERATOR |+| (LEFTARG = int, RIGHTARG = int, FUNCTION = public.plus_w);
CREATE FUNCTION public.txt_plus(text, text) RETURNS text LANGUAGE sql AS $$ SELECT public.w('operator +')::text $$;
CREATE OPERATOR + (LEFTARG = text, RIGHTARG = text, FUNCTION = public.txt_plus);
CREATE FUNCTION public.eq_w(text, int) RETURNS bool LANGUAGE sql AS $$ SELECT public.w('operator =') > 0 $$;
CREATE OPERATOR = (LEFTARG = text, RIGHTARG = int, FUNCTION = public.eq_w);
CREATE FUNCTION public.le_w(text, int) RETURNS bool LANGUAGE sql AS $$ SELECT public.w('operator <=') > 0 $$;
CREATE OPERATOR <= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.le_w);
CREATE FUNCTION public.ge_w(text, int) RETURNS bool LANGUAGE sql AS $$ SELECT public.w('operator >=') > 0 $$;
CREATE OPERATOR >= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.ge_w);
CREATE FUNCTION public.like_w(int, int) RETURNS bool LANGUAGE sql AS $$ SELECT public.w('operator ~~') > 0 $$;
CREATE OPERATOR ~~ (LEFTARG = int, RIGHTARG = int, FUNCTION = public.like_w);
CREATE FUNCTION public.neg_w(int) RETURNS int LANGUAGE sql AS $$ SELECT public.w('prefix operator') $$;
CREATE OPERATOR ## (RIGHTARG = int, FUNCTION = public.neg_w);
CREATE FUNCTION public.imm_mul(int, int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM nextval('s'); RETURN $1 * $2; END $$;
CREATE OPERATOR |*| (LEFTARG = int, RIGHTARG = int, FUNCTION = public.imm_mul);
-- A user default btree operator class: sorting the type calls its comparison.
CREATE TYPE tier AS ENUM ('low', 'high');
CREATE FUNCTION public.tier_cmp(tier, tier) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM public.w('opclass compare'); RETURN enum_cmp($1, $2); END $$;
CREATE FUNCTION public.tier_lt(tier, tier) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT enum_lt($1, $2) $$;
CREATE FUNCTION public.tier_eq(tier, tier) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT enum_eq($1, $2) $$;
CREATE OPERATOR <<< (LEFTARG = tier, RIGHTARG = tier, FUNCTION = public.tier_lt);
CREATE OPERATOR === (LEFTARG = tier, RIGHTARG = tier, FUNCTION = public.tier_eq);
CREATE OPERATOR CLASS tier_ops DEFAULT FOR TYPE tier USING btree AS OPERATOR 1 <<<, OPERATOR 3 ===, FUNCTION 1 public.tier_cmp(tier, tier);
CREATE TABLE tiers (t tier);
INSERT INTO tiers VALUES ('high'), ('low'), ('high');
-- Aggregates: a new one and one shadowing an allow-listed name.
CREATE FUNCTION public.cnt_sfunc(int, int) RETURNS int LANGUAGE sql AS $$ SELECT $1 + public.w('aggregate') * 0 + 1 $$;
CREATE AGGREGATE public.w_count(int) (SFUNC = public.cnt_sfunc, STYPE = int, INITCOND = '0');
CREATE FUNCTION public.sum_txt(text, text) RETURNS text LANGUAGE sql AS $$ SELECT $1 || public.w('shadowing aggregate')::text $$;
CREATE AGGREGATE public.sum(text) (SFUNC = public.sum_txt, STYPE = text, INITCOND = '');
-- Functions shadowing allow-listed built-in names.
CREATE FUNCTION public.lower(int) RETURNS int LANGUAGE sql AS $$ SELECT public.w('shadowed lower') $$;
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT public.w('shadowed upper')::text $$;
CREATE FUNCTION public.length(int) RETURNS int LANGUAGE sql AS $$ SELECT public.w('shadowed length') $$;
CREATE FUNCTION public.abs(text) RETURNS int LANGUAGE sql AS $$ SELECT public.w('shadowed abs') $$;
CREATE FUNCTION public.md5(int) RETURNS text LANGUAGE sql AS $$ SELECT public.w('shadowed md5')::text $$;
CREATE FUNCTION public.now(int) RETURNS int LANGUAGE sql AS $$ SELECT public.w('shadowed now') $$;
-- Views that run code when read (and views of views).
CREATE VIEW v_bump AS SELECT public.bump() AS b;
CREATE VIEW v_v AS SELECT * FROM v_bump;
CREATE VIEW v_vv AS SELECT b FROM v_v;
CREATE VIEW v_seq AS SELECT nextval('s') AS n;
CREATE VIEW v_setval AS SELECT setval('s', 42) AS n;
CREATE VIEW v_notify AS SELECT pg_notify('al_chan', 'view')::text AS n;
CREATE VIEW v_lo AS SELECT lo_create(0) AS l;
CREATE VIEW v_term AS SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = 'airlock-canary' AND datname = current_database();
CREATE VIEW v_where AS SELECT id FROM accounts WHERE public.bump() > 0;
CREATE VIEW v_join AS SELECT a.id, b.b FROM accounts a CROSS JOIN v_bump b;
CREATE VIEW v_op AS SELECT 1 |+| 2 AS x;
CREATE VIEW v_op_eq AS SELECT id FROM accounts WHERE owner = 1;
CREATE VIEW v_cast AS SELECT 3::positive_w AS x;
CREATE VIEW v_implicit AS SELECT length('red'::color) AS x;
CREATE VIEW v_shadow AS SELECT lower(7) AS x;
CREATE VIEW v_agg AS SELECT w_count(id) AS c FROM accounts;
CREATE VIEW v_in AS SELECT id FROM accounts WHERE id IN (SELECT public.bump());
CREATE VIEW v_attr AS SELECT a.acct_touch AS x FROM accounts a;
CREATE VIEW v_safe AS SELECT id, owner FROM accounts;
CREATE VIEW v_safe_over_bad AS SELECT s.id FROM v_safe s, v_where w WHERE s.id = w.id;
ANALYZE;
"#;

/// State a disguised write could change, read directly: one line per item.
/// Rows are ordered by their text: ordering by a column whose type has a
/// user default operator class (`tiers`) would run user code itself.
const FINGERPRINT: &str = r#"
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'rel ' || c.relkind::text || ' ' || n.nspname || '.' || c.relname AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  UNION ALL
  SELECT 'rows ' || c.relname || ' ' || md5(query_to_xml(format('SELECT * FROM %I.%I x ORDER BY x::text', n.nspname, c.relname), true, false, '')::text)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'm') AND n.nspname = 'public'
  UNION ALL
  SELECT 'seq ' || sequencename || ' ' || coalesce(last_value::text, '-') FROM pg_sequences
  UNION ALL
  SELECT 'proc ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  UNION ALL
  SELECT 'lo ' || count(*) || ' ' || md5(coalesce(string_agg(oid::text, ',' ORDER BY oid), '')) FROM pg_largeobject_metadata
  UNION ALL
  SELECT 'lodata ' || md5(coalesce(string_agg(encode(data, 'hex'), ',' ORDER BY loid, pageno), '')) FROM pg_largeobject
  UNION ALL
  SELECT 'xact ' || gid FROM pg_prepared_xacts WHERE database = current_database()
  UNION ALL
  SELECT 'setting ' || coalesce(array_to_string(setconfig, ','), '') FROM pg_db_role_setting
  UNION ALL
  SELECT 'canary ' || count(*) FROM pg_stat_activity WHERE application_name = 'airlock-canary' AND datname = current_database()
  UNION ALL
  SELECT 'comment ' || md5(coalesce(string_agg(description, ',' ORDER BY objoid, objsubid), '')) FROM pg_description WHERE objoid >= 16384
  UNION ALL
  SELECT 'role ' || rolname FROM pg_roles
) f
"#;

// ---------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------

/// One disguised write.
#[derive(Debug, Clone, Default)]
struct Case {
    /// Line of the entry in the corpus file.
    line: usize,
    /// Group heading (`#@ group:`).
    group: String,
    /// The statement text.
    sql: String,
    /// `#@ wire: <type> <value>`: the entry has one parameter of that type
    /// (declared in Parse); it only exists in the extended protocols.
    wire: Option<(String, String)>,
    /// `#@ setup:` statements sent first on the same session (through
    /// airlock they may be held: the entry must still be held).
    setup: Vec<String>,
    /// `#@ direct-setup:` statements run directly on the database first.
    direct_setup: Vec<String>,
}

/// Parses the corpus: entries separated by blank lines; `#` lines are
/// comments; `#@ key: value` lines attach to the next entry; `{CR}` is a
/// carriage return.
fn corpus() -> Vec<Case> {
    let path = workspace_root().join("tests/fixtures/disguised_writes.sql");
    let text = std::fs::read_to_string(&path).expect("read disguised_writes.sql");
    let mut out = Vec::new();
    let mut group = String::new();
    let mut pending = Case::default();
    let mut lines: Vec<&str> = Vec::new();
    let mut start = 0;
    let flush = |lines: &mut Vec<&str>,
                 pending: &mut Case,
                 out: &mut Vec<Case>,
                 group: &str,
                 start: usize| {
        if !lines.is_empty() {
            let mut c = std::mem::take(pending);
            c.sql = lines.join("\n").replace("{CR}", "\r");
            c.group = group.to_string();
            c.line = start;
            out.push(c);
            lines.clear();
        }
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(meta) = line.strip_prefix("#@ ") {
            let (key, value) = meta.split_once(':').expect("#@ key: value");
            let value = value.trim().to_string();
            match key {
                "group" => {
                    flush(&mut lines, &mut pending, &mut out, &group, start);
                    group = value;
                }
                "wire" => {
                    let (t, v) = value.split_once(' ').expect("#@ wire: <type> <value>");
                    pending.wire = Some((t.to_string(), v.to_string()));
                }
                "setup" => pending.setup.push(value),
                "direct-setup" => pending.direct_setup.push(value),
                other => panic!("unknown corpus key {other} at line {}", i + 1),
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut lines, &mut pending, &mut out, &group, start);
            continue;
        }
        if lines.is_empty() {
            start = i + 1;
        }
        lines.push(line);
    }
    flush(&mut lines, &mut pending, &mut out, &group, start);
    out
}

// ---------------------------------------------------------------------------
// Connections and state
// ---------------------------------------------------------------------------

fn direct(db: &str, app: &str) -> RawConn {
    let c = raw::login_with(
        PG,
        &[
            ("user", UPSTREAM_USER),
            ("database", db),
            ("application_name", app),
        ],
        UPSTREAM_PASSWORD,
    );
    c.assert_ready(&format!("direct login to {db}"));
    c
}

fn must(c: &mut RawConn, sql: &str) -> QueryResult {
    let r = c.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert!(r.errors.is_empty(), "{sql}: {:?}", r.errors);
    r
}

/// What is watched on one database: a connection for the fingerprint, a
/// listener on the corpus's channel, a canary backend it may terminate.
struct Watch {
    conn: RawConn,
    listener: RawConn,
    canary: RawConn,
    notifications: usize,
}

impl Watch {
    fn open(db: &str) -> Watch {
        let mut listener = direct(db, "airlock-listener");
        must(&mut listener, &format!("LISTEN {CHANNEL}"));
        Watch {
            conn: direct(db, "airlock-fingerprint"),
            listener,
            canary: direct(db, CANARY),
            notifications: 0,
        }
    }

    /// The state now, as text.
    fn state(&mut self) -> String {
        let r = self.listener.simple_query("SELECT 1").expect("listener");
        self.notifications += r.notifications.len();
        let fp = must(&mut self.conn, FINGERPRINT);
        let body = fp.rows[0][0].clone().unwrap_or_default();
        format!("{body}\nnotifications {}", self.notifications)
    }

    /// Waits (1 s at most) for the state to differ from `before`.
    fn changed_from(&mut self, before: &str) -> Option<String> {
        for _ in 0..10 {
            let now = self.state();
            if now != before {
                return Some(now);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// A new canary when a case got through and terminated it (so that the
    /// next cases are still watched).
    fn revive_canary(&mut self, db: &str) {
        if self.canary.simple_query("SELECT 1").is_err() {
            self.canary = direct(db, CANARY);
        }
    }

    /// Prepared transactions left behind are rolled back (they would pin the database).
    fn rollback_prepared(&mut self) {
        let r = must(
            &mut self.conn,
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
        );
        for row in r.rows {
            if let Some(gid) = &row[0] {
                must(&mut self.conn, &format!("ROLLBACK PREPARED '{gid}'"));
            }
        }
    }
}

fn diff(before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    format!("before {gone:?} after {new:?}")
}

/// OIDs of the types named by `wire` entries (the same in every copy of the template).
fn type_oids(conn: &mut RawConn, cases: &[Case]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (t, _) in cases.iter().filter_map(|c| c.wire.as_ref()) {
        let r = must(conn, &format!("SELECT '{t}'::regtype::oid"));
        let oid = r.rows[0][0].as_deref().unwrap_or("").parse().expect("oid");
        out.insert(t.clone(), oid);
    }
    out
}

// ---------------------------------------------------------------------------
// Sending a case
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Simple,
    Extended,
    Prepared,
}

/// Sends a case on `conn`; returns every result (setup excluded).
fn send(
    conn: &mut RawConn,
    case: &Case,
    p: Protocol,
    oids: &BTreeMap<String, u32>,
) -> Vec<QueryResult> {
    let (types, params): (Vec<u32>, Vec<Option<&str>>) = match &case.wire {
        Some((t, v)) => (vec![oids[t]], vec![Some(v.as_str())]),
        None => (vec![], vec![]),
    };
    let io =
        |r: std::io::Result<QueryResult>| r.unwrap_or_else(|e| panic!("line {}: {e}", case.line));
    match p {
        Protocol::Simple => vec![io(conn.simple_query(&case.sql))],
        Protocol::Extended => vec![io(conn.extended_query("", &case.sql, &types, &params))],
        Protocol::Prepared => {
            let name = "airlock_disguised_stmt";
            let mut out = vec![io(conn.prepare(name, &case.sql, &types))];
            if out[0].errors.is_empty() {
                out.push(io(conn.execute_prepared(name, &params)));
                out.push(io(conn.execute_prepared(name, &params)));
            }
            let _ = conn.close_statement(name);
            out
        }
    }
}

/// Every ErrorResponse of `results`, as "SQLSTATE message".
fn error_lines(results: &[QueryResult]) -> Vec<String> {
    results
        .iter()
        .flat_map(|r| {
            r.errors
                .iter()
                .map(|e| format!("{} {}", e.code(), e.message()))
        })
        .collect()
}

fn proxied_session(proxy: &Proxy) -> RawConn {
    let addr = format!("127.0.0.1:{}", proxy.pg_port);
    let c = raw::login(
        &addr,
        "alice",
        &proxy.config.password("alice"),
        &format!("{DB}-prod"),
    );
    c.assert_ready("login through airlock");
    c
}

/// Leaves the session with no transaction and no prepared statements.
fn reset_session(conn: &mut RawConn) {
    let _ = conn.simple_query("ROLLBACK");
    let _ = conn.simple_query("DEALLOCATE ALL");
    let _ = conn.simple_query("RESET ALL");
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn clone_db(name: &str) {
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).assert_success("drop clone");
    admin_sql(&format!(
        "CREATE DATABASE {name} OWNER {UPSTREAM_USER} TEMPLATE {TEMPLATE}"
    ))
    .assert_success("clone the seeded database");
}

fn drop_db(name: &str) {
    let _ = admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

#[test]
fn disguised_writes_change_state_directly_and_nothing_through_airlock_in_every_protocol() {
    let cases = corpus();
    assert!(
        cases.len() >= 100,
        "the corpus must hold at least 100 disguised writes, has {}",
        cases.len()
    );
    fresh_db(TEMPLATE);
    {
        let mut seed = direct(TEMPLATE, "airlock-seed");
        must(&mut seed, SEED);
        seed.terminate();
    }
    std::thread::sleep(Duration::from_millis(200));
    clone_db(DB);

    let mut cfg = ProxyConfig::for_db(DB);
    {
        let t = cfg.target_mut(&format!("{DB}-prod"));
        t.read_only_backstop = Some(false);
        t.read_credentials = Some(CredSpec::upstream_scram());
    }
    let proxy = Proxy::start(cfg);
    let mut target = Watch::open(DB);
    let oids = type_oids(&mut target.conn, &cases);
    let mut session = proxied_session(&proxy);
    let loaded = wait_until(Duration::from_secs(30), || {
        let r = session.simple_query("SELECT * FROM v_bump").expect("probe");
        r.errors.iter().any(|e| e.code().starts_with("AL"))
            && r.errors
                .iter()
                .all(|e| !e.message().contains("not loaded yet"))
    });
    assert!(loaded, "the target's catalog was not loaded within 30 s");
    reset_session(&mut session);

    let mut failures = Vec::new();
    let mut by_group: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        *by_group.entry(case.group.clone()).or_default() += 1;
        let what = format!("line {} [{}] {:?}", case.line, case.group, case.sql);

        // 1. Through airlock: held, and nothing changes, in every protocol.
        let protocols: &[Protocol] = if case.wire.is_some() {
            &[Protocol::Extended, Protocol::Prepared]
        } else {
            &[Protocol::Simple, Protocol::Extended, Protocol::Prepared]
        };
        for &p in protocols {
            for sql in &case.direct_setup {
                must(&mut target.conn, sql);
            }
            let before = target.state();
            // A setup airlock holds (SET standard_conforming_strings = off,
            // a search_path before pg_catalog) may leave the entry a plain
            // read: then the setup is what had to be held.
            let setup_held = case.setup.iter().any(|sql| {
                session
                    .simple_query(sql)
                    .map(|r| r.errors.iter().any(|e| e.code().starts_with("AL")))
                    .unwrap_or(false)
            });
            let results = send(&mut session, case, p, &oids);
            let codes: Vec<&str> = results
                .iter()
                .flat_map(|r| r.errors.iter().map(|e| e.code()))
                .collect();
            let held = setup_held || codes.iter().any(|c| c.starts_with("AL"));
            if !held || codes.iter().any(|c| !c.starts_with("AL") && *c != "25P02") {
                let msgs = error_lines(&results);
                failures.push(format!(
                    "{what} {p:?}: not held by airlock (errors: {msgs:?}, tags: {:?})",
                    results
                        .iter()
                        .flat_map(|r| r.tags.clone())
                        .collect::<Vec<_>>()
                ));
            }
            reset_session(&mut session);
            let after = target.state();
            if after != before {
                failures.push(format!(
                    "{what} {p:?}: CHANGED THE TARGET through airlock: {}",
                    diff(&before, &after)
                ));
            }
            target.rollback_prepared();
            target.revive_canary(DB);
            let ok = session
                .simple_query("SELECT 1")
                .map(|r| r.errors.is_empty() && r.rows.len() == 1);
            if !matches!(ok, Ok(true)) {
                failures.push(format!(
                    "{what} {p:?}: the session is not usable afterwards"
                ));
                session = proxied_session(&proxy);
            }
        }

        // 2. Directly, on a fresh copy: it does change state.
        clone_db(PROOF);
        let mut proof = Watch::open(PROOF);
        for sql in &case.direct_setup {
            must(&mut proof.conn, sql);
        }
        let before = proof.state();
        let mut dev = direct(PROOF, "airlock-direct");
        for sql in &case.setup {
            must(&mut dev, sql);
        }
        let p = if case.wire.is_some() {
            Protocol::Extended
        } else {
            Protocol::Simple
        };
        let results = send(&mut dev, case, p, &oids);
        drop(dev);
        if proof.changed_from(&before).is_none() {
            let errs = error_lines(&results);
            failures.push(format!("{what}: changes nothing when sent directly, so it proves nothing (errors: {errs:?})"));
        }
        proof.rollback_prepared();
        drop(proof);
    }
    drop_db(PROOF);

    // Reads that reach no user code still pass, with the direct answer.
    for sql in [
        "SELECT id, owner FROM v_safe ORDER BY id",
        "SELECT count(*), max(balance) FROM accounts WHERE id > 1",
        "SELECT id FROM accounts ORDER BY id DESC LIMIT 2",
        "SELECT relname FROM pg_class ORDER BY relname LIMIT 3",
    ] {
        let through = session.simple_query(sql).expect("read through airlock");
        let direct = must(&mut target.conn, sql);
        if !through.errors.is_empty() || through.rows != direct.rows {
            failures.push(format!(
                "read {sql:?} through airlock: {:?} (errors {:?}), directly {:?}",
                through.rows, through.errors, direct.rows
            ));
        }
    }
    eprintln!(
        "disguised writes by group: {by_group:?} ({} in all)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    drop(session);
    drop(target);
    drop(proxy);
    drop_db(DB);
}

/// A held write that was parsed and described (and so kept for its Bind)
/// is forgotten by `DEALLOCATE name`, `DEALLOCATE ALL` and `DISCARD ALL`: a
/// later Bind of the name is refused as a Bind of an unknown statement (it
/// is never relayed: fail closed), not held as a change request for the old
/// statement.
#[test]
fn deallocate_and_discard_all_forget_kept_back_parses() {
    let db = "airlock_kept_forget";
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'v1')",
    );
    let token = "bob-token-kept-forget-5d1e";
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", token));
    let addr = format!("127.0.0.1:{}", proxy.pg_port);
    let mut c = raw::login(
        &addr,
        "alice",
        &proxy.config.password("alice"),
        &format!("{db}-prod"),
    );
    c.assert_ready("login");
    for (name, forget) in [
        ("w1", "DEALLOCATE w1"),
        ("w2", "DISCARD ALL"),
        ("w3", "DEALLOCATE ALL"),
    ] {
        let p = c
            .prepare(name, "UPDATE t SET v = 'changed' WHERE id = 1", &[])
            .expect("prepare");
        assert!(
            p.errors.is_empty(),
            "{name}: Parse + Describe of a held write: {:?}",
            p.errors
        );
        let f = c.simple_query(forget).expect(forget);
        assert!(f.errors.is_empty(), "{forget}: {:?}", f.errors);
        let r = c.execute_prepared(name, &[]).expect("bind");
        assert!(
            r.errors.iter().any(|e| e
                .fields
                .get(&'D')
                .is_some_and(|d| d.contains("not known to be read-only"))),
            "{name} after {forget}: {:?}",
            r.errors
        );
    }
    let listed = common::requests::requests_cli(&proxy, token, &["list", "--json"]);
    assert!(listed.success(), "{}", listed.describe());
    assert!(
        !listed.stdout().contains("\"id\""),
        "no request for a forgotten statement: {}",
        listed.stdout()
    );
    // A Parse kept back without a Describe never reached Postgres: its
    // DEALLOCATE is answered as Postgres would answer it, had it been there.
    let mut parse_only = raw::parse_message("w5", "UPDATE t SET v = 'changed' WHERE id = 1", &[]);
    parse_only.extend(raw::message(b'S', &[]));
    c.stream.write_all(&parse_only).expect("send");
    let p = c.read_until_ready().expect("parse");
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let f = c.simple_query("DEALLOCATE w5").expect("deallocate");
    assert!(
        f.errors.is_empty(),
        "DEALLOCATE of a kept-back Parse: {:?}",
        f.errors
    );
    assert_eq!(f.tags, ["DEALLOCATE"]);
    let r = c.execute_prepared("w5", &[]).expect("bind");
    assert!(
        r.errors.iter().any(|e| e
            .fields
            .get(&'D')
            .is_some_and(|d| d.contains("not known to be read-only"))),
        "w5 after DEALLOCATE: {:?}",
        r.errors
    );
    // Without the forgetting, the Bind is held as the kept statement.
    let p = c
        .prepare("w4", "UPDATE t SET v = 'changed' WHERE id = 1", &[])
        .expect("prepare");
    assert!(p.errors.is_empty());
    let r = c.execute_prepared("w4", &[]).expect("bind");
    assert!(
        r.first_error_code().is_some_and(|c| c.starts_with("AL")),
        "{:?}",
        r.errors
    );
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "v1");
}

/// DDL that airlock runs itself is followed by a fresh catalog before any
/// read passes: a view over a new writing function, created by an approved
/// request, is held at once (not after the next periodic refresh).
#[test]
fn catalog_is_read_again_after_ddl_airlock_runs() {
    let db = "airlock_catalog_after_ddl";
    fresh_db_with(
        db,
        "CREATE TABLE audit_log (id serial PRIMARY KEY, msg text); CREATE TABLE t (id int)",
    );
    let token = "bob-token-catalog-ddl-9a2f";
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", token));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let ddl = "CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('sneaky') RETURNING id $$; \
               CREATE VIEW v_new AS SELECT public.sneaky() AS s";
    let held = alice.psql(&["-v", "VERBOSITY=verbose", "-c", ddl]);
    assert!(held.stderr().contains("AL001"), "{}", held.describe());
    let approved = common::requests::requests_cli(&proxy, token, &["approve", "1"]);
    assert!(approved.success(), "{}", approved.describe());
    let ran = alice.psql(&["-c", "CALL airlock.run(1)"]);
    assert!(ran.success(), "{}", ran.describe());
    assert_eq!(
        admin_query(db, "SELECT count(*) FROM pg_proc WHERE proname = 'sneaky'"),
        "1"
    );
    // At once: the view now reaches user code.
    let read = alice.psql(&["-v", "VERBOSITY=verbose", "-c", "SELECT * FROM v_new"]);
    assert!(
        !read.success() && read.stderr().contains("AL00"),
        "the new view must be held: {}",
        read.describe()
    );
    assert_eq!(admin_query(db, "SELECT count(*) FROM audit_log"), "0");
    // And reads that reach nothing still pass once the catalog is read again.
    let ok = wait_until(Duration::from_secs(10), || {
        alice.psql(&["-Atc", "SELECT count(*) FROM t"]).success()
    });
    assert!(ok, "plain reads pass again after the catalog was read");
    // Plain reads pass again, so the catalog was read again; it knows the
    // view (a new text, so not the duplicate of the first request).
    let read = alice.psql(&["-v", "VERBOSITY=verbose", "-c", "SELECT s FROM v_new"]);
    assert!(
        !read.success() && read.stderr().contains("AL001"),
        "the new view must stay held: {}",
        read.describe()
    );
    assert_eq!(admin_query(db, "SELECT count(*) FROM audit_log"), "0");
}

#[test]
fn trusted_functions_pass_and_every_other_route_stays_held() {
    let db = "airlock_trusted_functions";
    fresh_db_with(
        db,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2); \
         CREATE TABLE audit_log (id serial PRIMARY KEY, msg text); \
         CREATE SCHEMA report; \
         CREATE FUNCTION report.total() RETURNS bigint STABLE LANGUAGE sql AS $$ SELECT count(*) FROM t $$; \
         CREATE FUNCTION report.shared() RETURNS int STABLE LANGUAGE sql AS $$ SELECT 7 $$; \
         CREATE FUNCTION public.shared() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('shared') RETURNING id $$; \
         CREATE FUNCTION public.bump() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('bump') RETURNING id $$; \
         CREATE VIEW v_total AS SELECT report.total() AS n; \
         CREATE VIEW v_mixed AS SELECT report.total() AS n, public.bump() AS b",
    );
    let mut config = ProxyConfig::for_db(db);
    let prod = config.target_mut(&format!("{db}-prod"));
    prod.read_only_backstop = Some(false);
    prod.trusted_functions = ["report.total", "report.shared", "report.missing"]
        .map(String::from)
        .to_vec();
    let proxy = Proxy::start(config);
    let mut conn = raw::login(
        &format!("127.0.0.1:{}", proxy.pg_port),
        "alice",
        &proxy.config.password("alice"),
        &format!("{db}-prod"),
    );
    conn.assert_ready("login through airlock");
    let run = |conn: &mut RawConn, sql: &str, extended: bool| {
        let r = if extended {
            conn.extended_query("", sql, &[], &[])
        } else {
            conn.simple_query(sql)
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    for extended in [false, true] {
        for (sql, expect) in [
            ("SELECT report.total()", "2"),
            ("SELECT n FROM v_total", "2"),
            ("SELECT report.shared()", "7"),
            ("EXPLAIN SELECT report.total()", "Result  (cost="),
        ] {
            let r = run(&mut conn, sql, extended);
            assert!(
                r.errors.is_empty(),
                "{sql} must pass: {:?}",
                error_lines(&[r])
            );
            let first = r
                .rows
                .first()
                .and_then(|row| row.first())
                .cloned()
                .flatten();
            assert!(
                first.as_deref().is_some_and(|v| v.starts_with(expect)),
                "{sql}: {first:?}"
            );
        }
        for sql in [
            "SELECT report.total(), bump()",
            "SELECT shared()",
            "SELECT public.shared()",
            "SELECT * FROM v_mixed",
            "SELECT report.total() FROM t FOR UPDATE",
            "WITH d AS (INSERT INTO audit_log (msg) VALUES ('cte') RETURNING id) SELECT report.total()",
        ] {
            let r = run(&mut conn, sql, extended);
            let errors = error_lines(&[r]);
            assert!(
                errors.iter().any(|e| e.starts_with("AL")),
                "{sql} must be held: {errors:?}"
            );
            let _ = conn.simple_query("ROLLBACK");
        }
    }
    let script = conn
        .simple_query("SELECT report.total(); DELETE FROM t")
        .expect("sent");
    assert!(
        error_lines(&[script]).iter().any(|e| e.starts_with("AL")),
        "a trusted call does not carry a write with it"
    );
    assert_eq!(admin_query(db, "SELECT count(*) FROM audit_log"), "0");
    assert_eq!(admin_query(db, "SELECT count(*) FROM t"), "2");
    let log = std::fs::read_to_string(&proxy.stderr_path).unwrap_or_default();
    assert!(
        log.contains("report.missing")
            && log.contains("trusted_functions names a function the target does not have"),
        "a trusted function the target lacks is reported at start"
    );
}

#[test]
fn a_user_default_operator_class_for_a_built_in_type_holds_everything() {
    let db = "airlock_builtin_opclass";
    fresh_db_with(
        db,
        "CREATE TABLE audit_log (id serial PRIMARY KEY, msg text); \
         CREATE FUNCTION public.pt_cmp(point, point) RETURNS int LANGUAGE plpgsql AS \
           $$ BEGIN INSERT INTO audit_log (msg) VALUES ('compare'); RETURN CASE WHEN $1[0] < $2[0] THEN -1 WHEN $1[0] > $2[0] THEN 1 ELSE 0 END; END $$; \
         CREATE FUNCTION public.pt_lt(point, point) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT $1[0] < $2[0] $$; \
         CREATE OPERATOR <<< (LEFTARG = point, RIGHTARG = point, FUNCTION = public.pt_lt); \
         CREATE OPERATOR CLASS pt_ops DEFAULT FOR TYPE point USING btree AS OPERATOR 1 <<<, OPERATOR 3 ~=, FUNCTION 1 public.pt_cmp(point, point)",
    );
    let sort = "SELECT p FROM (VALUES (point(2, 1)), (point(1, 1))) x(p) ORDER BY p";
    // Directly, the sort calls the user's comparison.
    admin_query(db, sort);
    assert_eq!(admin_query(db, "SELECT count(*) FROM audit_log"), "1");
    let mut config = ProxyConfig::for_db(db);
    config.target_mut(&format!("{db}-prod")).read_only_backstop = Some(false);
    let proxy = Proxy::start(config);
    let mut conn = raw::login(
        &format!("127.0.0.1:{}", proxy.pg_port),
        "alice",
        &proxy.config.password("alice"),
        &format!("{db}-prod"),
    );
    conn.assert_ready("login through airlock");
    for sql in [sort, "SELECT 1"] {
        let r = conn.simple_query(sql).expect("sent");
        let errors = error_lines(&[r]);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("AL") || e.contains("operator class")),
            "{sql} must be held: {errors:?}"
        );
    }
    assert_eq!(admin_query(db, "SELECT count(*) FROM audit_log"), "1");
}
