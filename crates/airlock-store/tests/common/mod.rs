//! Test harness: every scenario runs against a fresh SQLite file and a fresh
//! PostgreSQL database (127.0.0.1:5432, user postgres; override with
//! AIRLOCK_TEST_PG_URL), dropped afterwards.

#![allow(dead_code)]

use airlock_core::request::approval::ApprovalPolicy;
use airlock_core::workflow::PolicySource;
use airlock_core::{Clock, Engine, Param, RequestDetails, RiskLevel, Timestamp};
use airlock_sql::StatementClass;
use airlock_store::{SqlStore, StoreOptions};
use sqlx::Executor;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which backend a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// What a scenario gets.
pub struct Ctx {
    pub kind: Kind,
    pub url: String,
    pub store: Arc<SqlStore>,
}

impl Ctx {
    /// Another pool on the same database: a second replica (PostgreSQL) or a
    /// second process (SQLite).
    pub async fn replica(&self) -> Arc<SqlStore> {
        Arc::new(
            SqlStore::connect(&self.url)
                .await
                .expect("second connection"),
        )
    }

    /// Runs raw SQL directly against the database (tampering).
    pub async fn raw(&self, sql: &'static str) {
        self.store.pool().execute(sql).await.expect(sql);
    }
}

fn admin_url() -> String {
    std::env::var("AIRLOCK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

type Scenario = fn(Ctx) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a scenario on a fresh database of `kind`, then drops the database
/// (even when the scenario panics) and re-raises the panic.
pub async fn run(kind: Kind, scenario: Scenario) {
    let suffix: u64 = rand::random();
    let (url, dir, pg_name) = match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("airlock-state.db");
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                Some(dir),
                None,
            )
        }
        Kind::Postgres => {
            let name = format!("airlock_store_test_{suffix:016x}");
            let admin = sqlx::PgPool::connect(&admin_url())
                .await
                .expect("PostgreSQL at 127.0.0.1:5432");
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            admin.close().await;
            let base = admin_url();
            let root = base
                .rsplit_once('/')
                .map_or(base.as_str(), |(r, _)| r)
                .to_string();
            (format!("{root}/{name}"), None, Some(name))
        }
    };
    let store = Arc::new(
        SqlStore::connect_with(&url, StoreOptions::default())
            .await
            .expect("connect store"),
    );
    let ctx = Ctx {
        kind,
        url: url.clone(),
        store: store.clone(),
    };
    let outcome = tokio::spawn(scenario(ctx)).await;
    store.close().await;
    if let Some(name) = pg_name {
        if let Ok(admin) = sqlx::PgPool::connect(&admin_url()).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
            admin.close().await;
        }
    }
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares a scenario test on both backends.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::common::run($crate::common::Kind::Sqlite, |c| Box::pin(super::$name(c)))
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::common::run($crate::common::Kind::Postgres, |c| {
                    Box::pin(super::$name(c))
                })
                .await
            }
        }
    };
}

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// A request as the wire crate would describe it.
pub fn details(requester: &str, target: &str, statement: &str) -> RequestDetails {
    RequestDetails {
        requester: requester.into(),
        team: "payments".into(),
        groups: vec!["developers".into()],
        application_name: "psql".into(),
        client_addr: "127.0.0.1:50000".into(),
        target: target.into(),
        family: Some("orders".into()),
        environment: target.rsplit('-').next().unwrap_or("prod").into(),
        engine: Engine::Postgres,
        statement: statement.into(),
        params: Vec::new(),
        fingerprint: format!("fp:{statement}"),
        class: StatementClass::Write,
        statement_count: 1,
        transactional: true,
        tables: vec!["public.orders".into()],
        summary: "Updates rows of public.orders.".into(),
        ai_summary: None,
        risk: RiskLevel::Low,
        risk_reasons: Vec::new(),
        row_estimate: Some(12.5),
        earlier_runs: Vec::new(),
        reason: Some("ticket OPS-1".into()),
        description: None,
        rollback_sql: None,
        max_rows: None,
        approvals_required: 1,
        approver_groups: vec!["dba".into()],
        run_window: Duration::from_secs(3600),
        created_at: T0,
        expires_at: T0.plus(Duration::from_secs(86_400)),
    }
}

/// A text parameter.
pub fn text_param(v: &str) -> Param {
    Param {
        type_id: 0,
        binary: false,
        value: Some(v.as_bytes().to_vec()),
    }
}

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn at(t: Timestamp) -> Arc<Self> {
        Arc::new(TestClock(AtomicI64::new(t.0)))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Policies by target; families `orders`: dev < qa < prod.
pub struct TestPolicies(pub HashMap<String, ApprovalPolicy>);

impl PolicySource for TestPolicies {
    fn policy(&self, target: &str, class: StatementClass) -> Option<ApprovalPolicy> {
        let mut p = self.0.get(target).cloned()?;
        if class == StatementClass::Ddl {
            p.approvals_required = 2;
        }
        Some(p)
    }

    fn lower_environments(&self, family: &str, environment: &str) -> Vec<String> {
        if family != "orders" {
            return Vec::new();
        }
        let order = ["dev", "qa", "prod"];
        match order.iter().position(|e| *e == environment) {
            Some(i) => order[..i].iter().map(|s| s.to_string()).collect(),
            None => Vec::new(),
        }
    }
}
