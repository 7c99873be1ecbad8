//! Loading and refreshing each protected target's [`CatalogRisks`]: the
//! user functions, operators, types, domains and views that can run user
//! code behind a statement's text. Read with the target's session (read)
//! credentials; refreshed on an interval. Until a target's catalog has been
//! loaded once, its sessions hold every statement that reads a relation or
//! calls anything (fail closed).

use crate::frame::{self, split_frame};
use crate::upstream::{self, Endpoint, UpstreamError};
use airlock_core::Credentials;
use airlock_sql::CatalogRisks;
use bytes::BytesMut;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often a protected target's catalog is read again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// The current catalog of one target, shared by its sessions.
#[derive(Default)]
pub struct CatalogCell {
    current: RwLock<Option<Arc<CatalogRisks>>>,
}

impl CatalogCell {
    /// The loaded catalog; `None` before the first successful load.
    pub fn get(&self) -> Option<Arc<CatalogRisks>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Replaces the catalog.
    pub fn set(&self, risks: CatalogRisks) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(Arc::new(risks));
        }
    }
}

/// Schemas whose objects are Postgres's own.
const SYSTEM: &str = "('pg_catalog', 'information_schema')";

/// Reads the catalog objects that can run user code.
pub async fn load(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
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
    for row in query(
        &mut conn,
        &format!(
            "SELECT DISTINCT lower(p.proname) FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN {SYSTEM}"
        ),
    )
    .await?
    {
        risks.functions.extend(row.into_iter().next());
    }
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
    // Types whose I/O functions are user code, domains with checks, and both
    // ends of casts done by user functions.
    let types_sql = format!(
        "SELECT t.oid::text, lower(t.typname) FROM pg_catalog.pg_type t WHERE \
           EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                   WHERE p.oid IN (t.typinput, t.typoutput, t.typreceive, t.typsend) AND n.nspname NOT IN {SYSTEM}) \
           OR (t.typtype = 'd' AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid)) \
           OR t.oid IN (SELECT c.castsource FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc \
                        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN {SYSTEM} \
                        UNION SELECT c.casttarget FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc \
                        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN {SYSTEM})"
    );
    for row in query(&mut conn, &types_sql).await? {
        if let [oid, name] = row.as_slice() {
            risks.type_oids.extend(oid.parse::<u32>().ok());
            risks.types.insert(name.clone());
        }
    }
    // Tables (and views) with columns of those types.
    if !risks.type_oids.is_empty() {
        let oids: Vec<String> = risks.type_oids.iter().map(u32::to_string).collect();
        for row in query(
            &mut conn,
            &format!(
                "SELECT DISTINCT lower(c.relname) FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atttypid IN ({})",
                oids.join(", ")
            ),
        )
        .await?
        {
            risks.relations.extend(row.into_iter().next());
        }
    }
    // Views and rules: the functions and relations their rewrite rules use.
    let mut view_functions: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in query(
        &mut conn,
        "SELECT lower(c.relname), n.nspname, lower(p.proname) FROM pg_catalog.pg_rewrite r \
         JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid \
              AND d.refclassid = 'pg_catalog.pg_proc'::regclass \
         JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace",
    )
    .await?
    {
        if let [view, schema, function] = row.as_slice() {
            view_functions
                .entry(view.clone())
                .or_default()
                .push((schema.clone(), function.clone()));
        }
    }
    let mut depends_on: HashMap<String, Vec<String>> = HashMap::new();
    for row in query(
        &mut conn,
        "SELECT DISTINCT lower(c.relname), lower(dep.relname) FROM pg_catalog.pg_rewrite r \
         JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid \
              AND d.refclassid = 'pg_catalog.pg_class'::regclass \
         JOIN pg_catalog.pg_class dep ON dep.oid = d.refobjid AND dep.oid <> c.oid",
    )
    .await?
    {
        if let [view, dep] = row.as_slice() {
            depends_on.entry(view.clone()).or_default().push(dep.clone());
        }
    }
    let _ = conn.0.write_all(b"X\0\0\0\x04").await;
    let mut risky: HashSet<String> = view_functions
        .iter()
        .filter(|(_, fs)| {
            fs.iter().any(|(schema, f)| {
                let allowed = (schema == "pg_catalog" && airlock_sql::is_allowed_builtin(f))
                    || schema == "information_schema";
                !allowed
            })
        })
        .map(|(v, _)| v.clone())
        .collect();
    risky.extend(risks.relations.iter().cloned());
    // Views of such views, transitively.
    loop {
        let more: Vec<String> = depends_on
            .iter()
            .filter(|(v, deps)| !risky.contains(*v) && deps.iter().any(|d| risky.contains(d)))
            .map(|(v, _)| v.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        risky.extend(more);
    }
    risks.relations = risky;
    Ok(risks)
}

/// Keeps `cell` current: loads now, then every [`REFRESH`].
pub async fn refresh_forever(
    cell: Arc<CatalogCell>,
    endpoint: Endpoint,
    creds: Credentials,
    database: String,
    target: String,
) {
    loop {
        tokio::time::sleep(REFRESH).await;
        match load(&endpoint, &creds, &database).await {
            Ok(r) => cell.set(r),
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
