//! Loading and refreshing each protected target's [`CatalogRisks`]: the
//! user functions, operators, types, domains and views that can run user
//! code behind a statement's text. Read with the target's session (read)
//! credentials; refreshed on an interval. Until a target's catalog has been
//! loaded once, its sessions hold every statement that reads a relation or
//! calls anything (fail closed).

use crate::frame::{self, split_frame};
use crate::upstream::{self, Endpoint, UpstreamError};
use airlock_core::{Credentials, TrustedFunction};
use airlock_sql::CatalogRisks;
use bytes::BytesMut;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often a protected target's catalog is read again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// The current catalog of one target, shared by its sessions.
#[derive(Default)]
pub struct CatalogCell {
    current: RwLock<Option<Arc<CatalogRisks>>>,
    /// Changes airlock itself is running on the target (DDL may create user
    /// code): while any runs, and until the catalog is read again after it,
    /// the catalog counts as not loaded (sessions hold, fail closed).
    changing: AtomicUsize,
    stale: AtomicBool,
    /// Wakes the refresher for an immediate reload.
    wake: tokio::sync::Notify,
}

impl CatalogCell {
    /// The loaded catalog; `None` before the first successful load, and
    /// while a change airlock runs may have made it stale.
    pub fn get(&self) -> Option<Arc<CatalogRisks>> {
        if self.changing.load(Ordering::Acquire) > 0 || self.stale.load(Ordering::Acquire) {
            return None;
        }
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Replaces the catalog (read after every change that was running when
    /// the read started, see [`CatalogCell::change_started`]).
    pub fn set(&self, risks: CatalogRisks) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(Arc::new(risks));
        }
    }

    /// A change is about to run on the target: the catalog is not trusted
    /// until it is read again after the change ends.
    pub fn change_started(&self) {
        self.changing.fetch_add(1, Ordering::AcqRel);
        self.stale.store(true, Ordering::Release);
    }

    /// The change ended: read the catalog again now.
    pub fn change_ended(&self) {
        self.changing.fetch_sub(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Stores a catalog read that started when no change was running (and
    /// none ended since): only such a read clears the stale mark.
    fn set_fresh(&self, risks: CatalogRisks, started_clean: bool) {
        self.set(risks);
        if started_clean && self.changing.load(Ordering::Acquire) == 0 {
            self.stale.store(false, Ordering::Release);
        }
    }
}

/// Schemas whose objects are Postgres's own.
const SYSTEM: &str = "('pg_catalog', 'information_schema')";

/// Reads the catalog objects that can run user code; functions in
/// `trusted` are left out of them (see [`trust_functions`]).
pub async fn load(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    trusted: &[TrustedFunction],
) -> Result<CatalogRisks, UpstreamError> {
    let params = vec![
        ("user".to_string(), creds.user.clone()),
        ("database".to_string(), database.to_string()),
        (
            "application_name".to_string(),
            "airlock:catalog".to_string(),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
        (
            "options".to_string(),
            "-c default_transaction_read_only=on".to_string(),
        ),
    ];
    let session = upstream::open(endpoint, creds, &params, Duration::from_secs(10)).await?;
    let mut conn = (session.stream, session.leftover);
    let mut risks = CatalogRisks::default();
    let user_functions: Vec<(String, String)> = query(
        &mut conn,
        &format!(
            "SELECT DISTINCT n.nspname, p.proname FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    .into_iter()
    .filter_map(|row| <[String; 2]>::try_from(row).ok().map(|[s, n]| (s, n)))
    .collect();
    let system_names: HashSet<String> = if trusted.is_empty() {
        HashSet::new()
    } else {
        let names: Vec<String> = trusted.iter().map(|t| quote_literal(&t.name)).collect();
        query(
            &mut conn,
            &format!(
                "SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p \
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname IN {SYSTEM} AND p.proname IN ({})",
                names.join(", ")
            ),
        )
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect()
    };
    trust_functions(&mut risks, &user_functions, &system_names, trusted);
    for row in query(
        &mut conn,
        &format!(
            "SELECT DISTINCT o.oprname FROM pg_catalog.pg_operator o \
         JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    {
        risks.operators.extend(row.into_iter().next());
    }
    load_types(&mut conn, &mut risks).await?;
    let views = query(
        &mut conn,
        &format!(
            "SELECT lower(c.relname), pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'v' AND n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?;
    let _ = conn.0.write_all(b"X\0\0\0\x04").await;
    let views: Vec<(String, String)> = views
        .into_iter()
        .filter_map(|row| match <[String; 2]>::try_from(row) {
            Ok([name, def]) => Some((name, def)),
            Err(_) => None,
        })
        .collect();
    risks.add_views(&views);
    Ok(risks)
}

/// Fills `risks.functions` with the names of the user functions
/// (`(schema, name)`) that are not trusted, and `risks.trusted_calls` with
/// the call forms that can only reach a trusted one: `schema.name` for each
/// trusted function the catalog has, and the bare name when no untrusted
/// function of that name exists in a user schema and none in Postgres's own
/// (`system_names`: the trusted names found there). Trusted entries the
/// catalog lacks go to `risks.missing_trusted`.
pub fn trust_functions(
    risks: &mut CatalogRisks,
    user_functions: &[(String, String)],
    system_names: &HashSet<String>,
    trusted: &[TrustedFunction],
) {
    let is_trusted =
        |schema: &str, name: &str| trusted.iter().any(|t| t.schema == schema && t.name == name);
    for (schema, name) in user_functions {
        if !is_trusted(schema, name) {
            risks.functions.insert(name.to_lowercase());
        }
    }
    for t in trusted {
        let found = user_functions
            .iter()
            .any(|(s, n)| *s == t.schema && *n == t.name);
        if !found {
            risks.missing_trusted.push(t.to_string());
            continue;
        }
        risks
            .trusted_calls
            .insert(vec![t.schema.clone(), t.name.clone()]);
        let unambiguous = !system_names.contains(&t.name)
            && user_functions
                .iter()
                .filter(|(_, n)| *n == t.name)
                .all(|(s, n)| is_trusted(s, n));
        if unambiguous {
            risks.trusted_calls.insert(vec![t.name.clone()]);
        }
    }
}

/// A SQL string literal (standard_conforming_strings: quotes doubled).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Fills the types that run user code (and the tables holding them):
/// types with user I/O functions, user-namespace domains with CHECKs and
/// types with a user default btree/hash operator class;
/// the user-defined ends of casts done by user functions; then, to a
/// fixpoint, domains over them, arrays of them, composites (and table
/// rows) with an attribute of them, ranges over them. A cast by a user
/// function between two built-in types is matched by their names, and when
/// Postgres may apply it implicitly (or in assignment) every statement is
/// held ([`CatalogRisks::blanket`]).
async fn load_types(conn: &mut Conn, risks: &mut CatalogRisks) -> Result<(), UpstreamError> {
    let mut risky: HashSet<String> = HashSet::new();
    for row in query(
        conn,
        &format!(
            "SELECT t.oid::text FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace WHERE \
               EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                       WHERE p.oid IN (t.typinput, t.typoutput, t.typreceive, t.typsend) AND n.nspname NOT IN {SYSTEM}) \
               OR (t.typtype = 'd' AND tn.nspname NOT IN {SYSTEM} \
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid))"
        ),
    )
    .await?
    {
        risky.extend(row.into_iter().next());
    }
    for row in query(
        conn,
        &format!(
            "SELECT c.castsource::text, c.casttarget::text, c.castcontext::text, \
                    (sn.nspname IN {SYSTEM})::text, (tn.nspname IN {SYSTEM})::text, \
                    lower(s.typname), lower(t.typname), p.proname \
             FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_catalog.pg_type s ON s.oid = c.castsource JOIN pg_catalog.pg_namespace sn ON sn.oid = s.typnamespace \
             JOIN pg_catalog.pg_type t ON t.oid = c.casttarget JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace \
             WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    {
        let Ok([source, target, context, source_builtin, target_builtin, source_name, target_name, function]) =
            <[String; 8]>::try_from(row)
        else {
            continue;
        };
        match (source_builtin == "true", target_builtin == "true") {
            (true, true) => {
                risks.types.insert(source_name.clone());
                risks.types.insert(target_name.clone());
                if context != "e" {
                    risks.blanket = Some(format!(
                        "user function {function} casts {source_name} to {target_name} {} on this target, so any statement may run it",
                        if context == "i" { "implicitly" } else { "in assignments" }
                    ));
                }
            }
            (source_builtin, target_builtin) => {
                if !source_builtin {
                    risky.insert(source);
                }
                if !target_builtin {
                    risky.insert(target);
                }
            }
        }
    }
    // Default btree/hash operator classes of user schemas: sorting, grouping,
    // DISTINCT, set operations and comparisons of the type call their
    // functions without any name in the text. On a user type the type is
    // risky; on a built-in (or polymorphic) type every statement may run it.
    for row in query(
        conn,
        &format!(
            "SELECT c.opcintype::text, lower(t.typname), (tn.nspname IN {SYSTEM} OR t.typtype = 'p')::text, am.amname \
             FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.opcnamespace \
             JOIN pg_catalog.pg_type t ON t.oid = c.opcintype JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace \
             WHERE c.opcdefault AND am.amname IN ('btree', 'hash') AND n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    {
        let Ok([oid, name, builtin, method]) = <[String; 4]>::try_from(row) else {
            continue;
        };
        if builtin == "true" {
            risks.types.insert(name.clone());
            risks.blanket = Some(format!(
                "a user default {method} operator class for {name} on this target: sorting, grouping or comparing {name} values runs user code, so any statement may run it"
            ));
        } else {
            risky.insert(oid);
        }
    }
    // Every user type: (oid, name, base type, element type, row relation).
    let user_types = query(
        conn,
        &format!(
            "SELECT t.oid::text, lower(t.typname), t.typbasetype::text, t.typelem::text \
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?;
    // Attributes of user relations: (row type, attribute type, relation name).
    let attributes = query(
        conn,
        &format!(
            "SELECT c.reltype::text, a.atttypid::text, lower(c.relname) FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?;
    let ranges = query(
        conn,
        "SELECT rngtypid::text, rngsubtype::text, rngmultitypid::text FROM pg_catalog.pg_range",
    )
    .await?;
    loop {
        let before = risky.len();
        for t in &user_types {
            if let [oid, _, base, elem] = t.as_slice() {
                if risky.contains(base) || risky.contains(elem) {
                    risky.insert(oid.clone());
                }
            }
        }
        for a in &attributes {
            if let [row_type, att_type, _] = a.as_slice() {
                if risky.contains(att_type) {
                    risky.insert(row_type.clone());
                }
            }
        }
        for r in &ranges {
            if let [range, sub, multi] = r.as_slice() {
                if risky.contains(sub) {
                    risky.insert(range.clone());
                    risky.insert(multi.clone());
                }
            }
        }
        if risky.len() == before {
            break;
        }
    }
    for t in &user_types {
        if let [oid, name, ..] = t.as_slice() {
            if risky.contains(oid) {
                risks.types.insert(name.clone());
            }
        }
    }
    for a in &attributes {
        if let [_, att_type, relation] = a.as_slice() {
            if risky.contains(att_type) {
                risks.relations.insert(relation.clone());
            }
        }
    }
    // Tables with an index whose operator class is a user one: an index scan
    // calls its support functions.
    for row in query(
        conn,
        &format!(
            "SELECT DISTINCT lower(tc.relname) FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid \
             JOIN pg_catalog.pg_opclass c ON c.oid = ANY (i.indclass::oid[]) \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.opcnamespace WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    {
        risks.relations.extend(row.into_iter().next());
    }
    risks
        .type_oids
        .extend(risky.iter().filter_map(|o| o.parse::<u32>().ok()));
    Ok(())
}

/// Where and how one target's catalog is read.
#[derive(Clone)]
pub struct CatalogSource {
    /// The target's name (for logs).
    pub target: String,
    /// Its upstream.
    pub endpoint: Endpoint,
    /// Its session (read) credentials.
    pub creds: Credentials,
    /// Its database.
    pub database: String,
    /// Its `trusted_functions`.
    pub trusted: Vec<TrustedFunction>,
}

impl CatalogSource {
    /// Reads the catalog (see [`load`]).
    pub async fn load(&self) -> Result<CatalogRisks, UpstreamError> {
        load(&self.endpoint, &self.creds, &self.database, &self.trusted).await
    }
}

/// Keeps `cell` current: reads it again every [`REFRESH`], and at once
/// after a change airlock ran (retrying every second while it is stale).
pub async fn refresh_forever(cell: Arc<CatalogCell>, source: CatalogSource) {
    let target = &source.target;
    loop {
        let wait =
            if cell.stale.load(Ordering::Acquire) && cell.changing.load(Ordering::Acquire) == 0 {
                Duration::from_secs(1)
            } else {
                REFRESH
            };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cell.wake.notified() => {}
        }
        let started_clean = cell.changing.load(Ordering::Acquire) == 0;
        match source.load().await {
            Ok(r) => cell.set_fresh(r, started_clean),
            Err(e) => {
                tracing::warn!(%target, error = %e, "refreshing the target's catalog failed; keeping the last one")
            }
        }
    }
}

type Conn = (crate::stream::MaybeTlsStream, BytesMut);

/// Runs one simple query and returns its rows as text (NULLs skipped).
async fn query(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<String>>, UpstreamError> {
    let mut out = BytesMut::new();
    frame::put_query(&mut out, sql);
    conn.0.write_all(&out).await?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let f = loop {
            match split_frame(&mut conn.1) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
            }
            if conn.0.read_buf(&mut conn.1).await? == 0 {
                return Err(UpstreamError::Protocol(
                    "upstream closed the connection".into(),
                ));
            }
        };
        match f.0 {
            b'D' => rows.push(data_row(&f.1)),
            b'E' => error = Some(frame::error_summary(&f.1)),
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(UpstreamError::Protocol(format!(
            "catalog query failed: {e}"
        ))),
        None => Ok(rows),
    }
}

fn data_row(f: &[u8]) -> Vec<String> {
    let b = frame::body(f);
    let mut out = Vec::new();
    let Some(n) = b.get(..2).map(|x| i16::from_be_bytes([x[0], x[1]])) else {
        return out;
    };
    let mut at = 2;
    for _ in 0..n.max(0) {
        let Some(len) = b
            .get(at..at + 4)
            .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        else {
            break;
        };
        at += 4;
        if len < 0 {
            continue;
        }
        let end = at + len as usize;
        if let Some(v) = b.get(at..end) {
            out.push(String::from_utf8_lossy(v).into_owned());
        }
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> Vec<TrustedFunction> {
        list.iter()
            .map(|t| TrustedFunction::parse(t).expect("valid"))
            .collect()
    }

    fn fns(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, n)| (s.to_string(), n.to_string()))
            .collect()
    }

    fn call(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn trusted_functions_leave_the_risks_and_bare_names_only_when_unambiguous() {
        let mut r = CatalogRisks::default();
        trust_functions(
            &mut r,
            &fns(&[
                ("report", "total"),
                ("report", "shared"),
                ("public", "shared"),
                ("report", "Total"),
                ("report", "lower"),
                ("public", "bump"),
            ]),
            &HashSet::from(["lower".to_string()]),
            &trusted(&[
                "report.total",
                "report.shared",
                "report.lower",
                "report.gone",
            ]),
        );
        // "Total" (quoted) is another function: its name stays risky.
        assert_eq!(
            r.functions,
            HashSet::from(["total", "shared", "bump"].map(String::from))
        );
        assert_eq!(
            r.trusted_calls,
            HashSet::from([
                call(&["report", "total"]),
                call(&["total"]),
                call(&["report", "shared"]),
                call(&["report", "lower"]),
            ])
        );
        assert_eq!(r.missing_trusted, ["report.gone"]);
    }
}
