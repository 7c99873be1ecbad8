//! Change requests made directly through the workflow (no session), for
//! tests that need requests in a store before airlock starts.

use airlock_core::{ApprovalPolicy, Engine, PolicySource, RequestDetails, RiskLevel, Timestamp};
use airlock_sql::StatementClass;
use std::time::Duration;

/// The policy the default test config implies: one approver from the
/// target's groups (developers, dba).
pub struct AnyApprover;

impl PolicySource for AnyApprover {
    fn policy(&self, _target: &str, _class: StatementClass) -> Option<ApprovalPolicy> {
        Some(ApprovalPolicy {
            approver_groups: vec!["developers".into(), "dba".into()],
            ..ApprovalPolicy::default()
        })
    }
    fn lower_environments(&self, _family: &str, _environment: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Details of a write on table `t` of `target` by `requester`, with `reason`.
pub fn request_details(
    requester: &str,
    target: &str,
    statement: &str,
    reason: &str,
) -> RequestDetails {
    RequestDetails {
        requester: requester.into(),
        team: "payments".into(),
        groups: vec!["developers".into()],
        application_name: "psql".into(),
        client_addr: "127.0.0.1:50000".into(),
        target: target.into(),
        family: None,
        environment: "prod".into(),
        engine: Engine::Postgres,
        statement: statement.into(),
        params: vec![],
        fingerprint: statement.into(),
        class: StatementClass::Write,
        statement_count: 1,
        transactional: true,
        tables: vec!["t".into()],
        summary: format!("summary of {statement}"),
        ai_summary: None,
        risk: RiskLevel::Low,
        risk_reasons: vec![],
        row_estimate: None,
        earlier_runs: vec![],
        reason: Some(reason.into()),
        description: None,
        rollback_sql: None,
        max_rows: None,
        approvals_required: 1,
        approver_groups: vec![],
        run_window: Duration::from_secs(3600),
        created_at: Timestamp(0),
        expires_at: Timestamp(0),
    }
}

/// Waits (10 s at most) until `target` has at least `n` recorded executions
/// in the proxy's store. Lower environments record their changes off the
/// session's path, so a test that needs an earlier run waits for it.
pub fn wait_for_executions(proxy: &super::Proxy, target: &str, n: i64) -> bool {
    let url = proxy.config.store_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            proxy.dir.path().join("airlock-state.db").display()
        )
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = airlock_store::SqlStore::connect(&url)
            .await
            .expect("open the proxy's store");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM executions WHERE target = $1")
                    .bind(target)
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or(0);
            if count >= n {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Runs `airlock requests <args>` against the proxy's HTTP API as the user
/// whose API token is `token`.
pub fn requests_cli(proxy: &super::Proxy, token: &str, args: &[&str]) -> super::Out {
    super::run_with_timeout(
        requests_cli_cmd(proxy, token, args),
        None,
        Duration::from_secs(30),
    )
}

/// The command [`requests_cli`] runs, for running it in the background.
pub fn requests_cli_cmd(proxy: &super::Proxy, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(super::airlock_bin());
    cmd.arg("requests")
        .args(args)
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", token);
    cmd
}
