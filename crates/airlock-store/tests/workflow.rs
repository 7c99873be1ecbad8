//! The core workflow service over the real store, on SQLite and PostgreSQL.

mod common;

use airlock_core::audit::verify_chain;
use airlock_core::ports::Store;
use airlock_core::request::approval::{ApprovalPolicy, Refusal};
use airlock_core::workflow::{Held, RunResult, Workflow, WorkflowError};
use airlock_core::{
    Actor, ApprovalOutcome, AuditEvent, Execution, RequestStatus, RiskLevel, Settlement, Timestamp,
};
use airlock_sql::StatementClass;
use common::{details, Ctx, TestClock, TestPolicies, T0};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn policies() -> Arc<TestPolicies> {
    let prod = ApprovalPolicy {
        approvals_required: 1,
        approver_groups: vec!["dba".into()],
        admin_groups: vec!["dba".into()],
        pending_expiry: Duration::from_secs(3600),
        run_window: Duration::from_secs(1800),
        require_reason: true,
        ..ApprovalPolicy::default()
    };
    let qa = ApprovalPolicy {
        require_reason: false,
        ..prod.clone()
    };
    Arc::new(TestPolicies(HashMap::from([
        ("orders-prod".to_string(), prod),
        ("orders-qa".to_string(), qa),
    ])))
}

fn workflow(ctx: &Ctx) -> (Workflow, Arc<TestClock>) {
    let clock = TestClock::at(T0);
    (
        Workflow::new(ctx.store.clone(), policies(), clock.clone()),
        clock,
    )
}

async fn events(store: &dyn Store) -> Vec<AuditEvent> {
    store.audit_events(0, 10_000).await.expect("events")
}

fn refused(r: Result<impl std::fmt::Debug, WorkflowError>) -> Refusal {
    match r {
        Err(WorkflowError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn created(h: Held) -> airlock_core::ChangeRequest {
    match h {
        Held::Created(r) => r,
        other => panic!("expected a new request, got {other:?}"),
    }
}

both!(full_flow);
async fn full_flow(ctx: Ctx) {
    let (wf, clock) = workflow(&ctx);
    let alice = Actor::new("alice", ["developers"]);
    let bob = Actor::new("bob", ["dba"]);
    let eve = Actor::new("eve", ["developers"]);
    let stmt = "UPDATE orders SET state = 'shipped' WHERE id = 7";

    // The same fingerprint ran on qa earlier (with other literals).
    wf.record_execution(&Execution {
        request_id: None,
        family: Some("orders".into()),
        target: "orders-qa".into(),
        environment: "qa".into(),
        fingerprint: format!("fp:{stmt}"),
        user: "alice".into(),
        class: StatementClass::Write,
        rows: Some(1),
        duration_ms: 3,
        success: true,
        error: None,
        at: T0,
    })
    .await
    .expect("execution");

    // A reason is required on prod: nothing is created, the refusal is audited.
    let mut no_reason = details("alice", "orders-prod", stmt);
    no_reason.reason = None;
    assert!(matches!(
        refused(wf.hold(no_reason).await),
        Refusal::ReasonRequired { .. }
    ));
    assert!(wf.list(&Default::default()).await.expect("list").is_empty());

    // A script with its own transaction control would split the guarded
    // transaction: refused when submitted, nothing created.
    let mut split = details(
        "alice",
        "orders-prod",
        "UPDATE t SET a = 1; COMMIT; DELETE FROM t",
    );
    split.transactional = true;
    assert!(matches!(
        refused(wf.hold(split).await),
        Refusal::TransactionControl { statement } if statement == "COMMIT"
    ));
    assert!(wf.list(&Default::default()).await.expect("list").is_empty());

    let first = created(
        wf.hold(details("alice", "orders-prod", stmt))
            .await
            .expect("hold"),
    );
    assert_eq!(first.details.earlier_runs.len(), 1);
    assert_eq!(first.details.earlier_runs[0].environment, "qa");
    assert!(
        first.details.risk_reasons.is_empty(),
        "{:?}",
        first.details.risk_reasons
    );
    assert_eq!(first.details.expires_at, T0.plus(Duration::from_secs(3600)));

    let never = created(
        wf.hold(details("alice", "orders-prod", "DELETE FROM orders"))
            .await
            .expect("hold"),
    );
    assert!(never.details.earlier_runs.is_empty());
    assert!(never.details.risk >= RiskLevel::Medium);
    assert!(
        never
            .details
            .risk_reasons
            .iter()
            .any(|r| r.contains("lower environment")),
        "{:?}",
        never.details.risk_reasons
    );

    // Re-send while pending: no duplicate.
    match wf
        .hold(details("alice", "orders-prod", &format!("{stmt} ;")))
        .await
        .expect("hold")
    {
        Held::StillPending(r) => assert_eq!(r.id, first.id),
        other => panic!("{other:?}"),
    }
    // Another literal is another request.
    let other = created(
        wf.hold(details(
            "alice",
            "orders-prod",
            "UPDATE orders SET state = 'lost' WHERE id = 7",
        ))
        .await
        .expect("hold"),
    );
    assert_ne!(other.id, first.id);

    // Refused approvals, each audited.
    assert_eq!(
        refused(wf.approve(first.id, &alice, "cli", None).await),
        Refusal::OwnRequest
    );
    assert!(matches!(
        refused(wf.approve(first.id, &eve, "cli", None).await),
        Refusal::NotApprover { .. }
    ));
    assert_eq!(
        wf.approve(first.id, &bob, "cli", Some("lgtm".into()))
            .await
            .expect("approve"),
        ApprovalOutcome::Approved { have: 1 }
    );
    assert!(matches!(
        refused(wf.approve(first.id, &bob, "cli", None).await),
        Refusal::WrongStatus {
            status: RequestStatus::Approved,
            ..
        }
    ));
    let refusals: Vec<String> = events(wf.store().as_ref())
        .await
        .into_iter()
        .filter(|e| e.kind == "decision.refused")
        .map(|e| e.payload)
        .collect();
    assert_eq!(refusals.len(), 3);
    assert!(
        refusals[0].contains("own_request")
            && refusals[1].contains("not_approver")
            && refusals[2].contains("wrong_status")
    );

    // Re-send after approval: the caller may run the stored request.
    match wf
        .hold(details("alice", "orders-prod", stmt))
        .await
        .expect("hold")
    {
        Held::Approved(r) => assert_eq!(r.id, first.id),
        other => panic!("{other:?}"),
    }

    // Only the requester or an admin runs it, and only once.
    assert!(matches!(
        refused(wf.start_run(first.id, &eve).await),
        Refusal::NotRequesterOrAdmin { .. }
    ));
    let replica_wf = Workflow::new(ctx.replica().await, policies(), clock.clone());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let w = if i % 2 == 0 {
            wf.clone()
        } else {
            replica_wf.clone()
        };
        let who = if i % 3 == 0 {
            bob.clone()
        } else {
            alice.clone()
        };
        tasks.push(tokio::spawn(
            async move { w.start_run(first.id, &who).await },
        ));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => {
                wins += 1;
                assert_eq!(r.status, RequestStatus::Running);
            }
            Err(WorkflowError::Refused(Refusal::WrongStatus { status, .. })) => {
                assert_eq!(status, RequestStatus::Running)
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(wins, 1);
    let session = airlock_core::UpstreamSession {
        xid: Some("9001".into()),
        backend: Some("4242@1764690000.5".into()),
    };
    wf.record_upstream(first.id, RequestStatus::Running, &session)
        .await
        .expect("xid");
    clock.advance(Duration::from_secs(2));
    let done = wf
        .finish_run(
            first.id,
            &RunResult {
                rows_affected: Some(1),
                command_tag: Some("UPDATE 1".into()),
                duration_ms: 12,
                error: None,
            },
        )
        .await
        .expect("finish");
    assert_eq!(done.status, RequestStatus::Executed);
    assert_eq!(done.run.upstream_xid.as_deref(), Some("9001"));
    let stored = wf.get(first.id).await.expect("get");
    assert_eq!(stored, done, "the in-memory result is what the store holds");
    // The run is recorded for earlier-run lookups (prod has nothing above it; ask directly).
    let prod_runs = wf
        .store()
        .earlier_runs(&airlock_core::ports::EarlierRunsQuery {
            family: "orders".into(),
            fingerprint: format!("fp:{stmt}"),
            environments: vec!["prod".into()],
            limit: 5,
        })
        .await
        .expect("runs");
    assert_eq!(prod_runs.len(), 1);

    // A further re-send is held again as a new request.
    let again = created(
        wf.hold(details("alice", "orders-prod", stmt))
            .await
            .expect("hold"),
    );
    assert!(again.id > other.id);

    // Rejection with a reason; cancel by a stranger refused, by the requester accepted.
    let rejected = wf.reject(other.id, &bob, "wrong id").await.expect("reject");
    assert_eq!(
        (rejected.status, rejected.decision_reason.as_deref()),
        (RequestStatus::Rejected, Some("wrong id"))
    );
    assert!(matches!(
        refused(wf.reject(other.id, &bob, "again").await),
        Refusal::WrongStatus { .. }
    ));
    assert!(matches!(
        refused(wf.cancel(again.id, &eve, None).await),
        Refusal::NotRequesterOrAdmin { .. }
    ));
    assert_eq!(
        wf.cancel(again.id, &alice, Some("not needed"))
            .await
            .expect("cancel")
            .status,
        RequestStatus::Cancelled
    );

    // No rollback statement was approved with the first change.
    assert_eq!(
        refused(wf.start_rollback(first.id, &alice).await),
        Refusal::NoRollback
    );

    let all = events(wf.store().as_ref()).await;
    verify_chain(&all, None).expect("the whole scenario is one valid chain");
    replica_wf.store().audit_head().await.expect("head");
}

both!(ddl_needs_two_and_rollback);
async fn ddl_needs_two_and_rollback(ctx: Ctx) {
    let (wf, _clock) = workflow(&ctx);
    let alice = Actor::new("alice", ["developers"]);
    let bob = Actor::new("bob", ["dba"]);
    let carol = Actor::new("carol", ["dba"]);
    let mut d = details(
        "alice",
        "orders-prod",
        "ALTER TABLE orders ADD COLUMN note text",
    );
    d.class = StatementClass::Ddl;
    d.rollback_sql = Some("ALTER TABLE orders DROP COLUMN note".into());
    let r = created(wf.hold(d).await.expect("hold"));
    assert_eq!(r.details.approvals_required, 2);
    assert_eq!(
        wf.approve(r.id, &bob, "http", None).await.expect("1"),
        ApprovalOutcome::Recorded { have: 1, need: 2 }
    );
    assert_eq!(
        refused(wf.approve(r.id, &bob, "http", None).await),
        Refusal::AlreadyApproved
    );
    assert_eq!(
        wf.approve(r.id, &carol, "slack", None).await.expect("2"),
        ApprovalOutcome::Approved { have: 2 }
    );
    wf.start_run(r.id, &alice).await.expect("run");
    wf.finish_run(
        r.id,
        &RunResult {
            duration_ms: 5,
            command_tag: Some("ALTER TABLE".into()),
            ..RunResult::default()
        },
    )
    .await
    .expect("finish");
    let rb = wf.start_rollback(r.id, &alice).await.expect("rollback");
    assert_eq!(rb.status, RequestStatus::RollingBack);
    assert!(matches!(
        refused(wf.start_rollback(r.id, &alice).await),
        Refusal::WrongStatus { .. }
    ));
    let back = wf
        .finish_rollback(
            r.id,
            &RunResult {
                duration_ms: 3,
                command_tag: Some("ALTER TABLE".into()),
                ..RunResult::default()
            },
        )
        .await
        .expect("rolled back");
    assert_eq!(back.status, RequestStatus::RolledBack);
    assert_eq!(back.rollback_run.by.as_deref(), Some("alice"));
    let approvals = wf.approvals(r.id).await.expect("approvals");
    assert_eq!(
        approvals.iter().map(|a| a.via.as_str()).collect::<Vec<_>>(),
        vec!["http", "slack"]
    );
}

both!(expiry_and_recovery);
async fn expiry_and_recovery(ctx: Ctx) {
    let (wf, clock) = workflow(&ctx);
    let alice = Actor::new("alice", ["developers"]);
    let bob = Actor::new("bob", ["dba"]);

    // A decision after expiry is refused, audited, and expires the request.
    let late = created(
        wf.hold(details("alice", "orders-prod", "DELETE FROM a"))
            .await
            .expect("hold"),
    );
    let slow = created(
        wf.hold(details("alice", "orders-prod", "DELETE FROM b"))
            .await
            .expect("hold"),
    );
    wf.approve(slow.id, &bob, "cli", None)
        .await
        .expect("approve");
    clock.advance(Duration::from_secs(3600));
    assert!(matches!(
        refused(wf.approve(late.id, &bob, "cli", None).await),
        Refusal::Expired { .. }
    ));
    assert_eq!(
        wf.get(late.id).await.expect("get").status,
        RequestStatus::Expired
    );
    assert!(matches!(
        refused(wf.start_run(slow.id, &alice).await),
        Refusal::Expired { .. }
    ));
    assert_eq!(
        wf.get(slow.id).await.expect("get").status,
        RequestStatus::Expired
    );
    // Holding an expired statement again creates a new request.
    let fresh = created(
        wf.hold(details("alice", "orders-prod", "DELETE FROM a"))
            .await
            .expect("hold"),
    );
    assert_ne!(fresh.id, late.id);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(wf.expire_due().await.expect("sweep"), vec![fresh.id]);

    // Crash recovery: running requests are settled, never re-run.
    let mut ids = Vec::new();
    for stmt in ["DELETE FROM c", "DELETE FROM d", "DELETE FROM e"] {
        let r = created(
            wf.hold(details("alice", "orders-prod", stmt))
                .await
                .expect("hold"),
        );
        wf.approve(r.id, &bob, "cli", None).await.expect("approve");
        wf.start_run(r.id, &alice).await.expect("run");
        ids.push(r.id);
    }
    assert_eq!(
        wf.recover(ids[0], Settlement::Executed, "xid 10 committed")
            .await
            .expect("r")
            .status,
        RequestStatus::Executed
    );
    let failed = wf
        .recover(ids[1], Settlement::Failed, "xid 11 aborted")
        .await
        .expect("r");
    assert_eq!(failed.status, RequestStatus::Failed);
    assert!(failed
        .run
        .error
        .as_deref()
        .is_some_and(|e| e.contains("not committed")));
    assert_eq!(
        wf.recover(ids[2], Settlement::Unknown, "xid too old")
            .await
            .expect("r")
            .status,
        RequestStatus::Unknown
    );
    assert!(matches!(
        refused(wf.start_run(ids[2], &alice).await),
        Refusal::WrongStatus { .. }
    ));
    assert!(matches!(
        refused(wf.resolve_unknown(ids[2], &alice, true, "checked").await),
        Refusal::NotRequesterOrAdmin { .. }
    ));
    let settled = wf
        .resolve_unknown(ids[2], &bob, true, "row is there")
        .await
        .expect("settle");
    assert_eq!(settled.status, RequestStatus::Executed);
    let all = events(wf.store().as_ref()).await;
    assert!(all.iter().any(|e| e.kind == "request.unknown"));
    verify_chain(&all, None).expect("chain");
    let _ = Timestamp(0);
}

both!(concurrent_identical_holds_make_one_request);
async fn concurrent_identical_holds_make_one_request(ctx: Ctx) {
    // Two replicas' workflows on one store, 20 holds of one statement at once.
    let replica: Arc<dyn Store> = ctx.replica().await;
    let flows = [
        Arc::new(workflow(&ctx).0),
        Arc::new(Workflow::new(replica, policies(), TestClock::at(T0))),
    ];
    let holds: Vec<_> = (0..20)
        .map(|i| {
            let wf = flows[i % 2].clone();
            tokio::spawn(async move {
                let mut d = details(
                    "alice",
                    "orders-prod",
                    "UPDATE orders SET x = 1 WHERE id = 9",
                );
                d.reason = Some("one request".into());
                wf.hold(d).await.expect("hold")
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for h in holds {
        match h.await.expect("task") {
            Held::Created(r) => {
                created += 1;
                ids.insert(r.id);
            }
            Held::StillPending(r) | Held::Approved(r) => {
                ids.insert(r.id);
            }
        }
    }
    assert_eq!(created, 1, "exactly one hold creates the request");
    assert_eq!(ids.len(), 1, "every hold got the same request: {ids:?}");
    let all = ctx
        .store
        .list_requests(&airlock_core::RequestFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
}

/// Latency of `Workflow::hold` creating a request (store write, audit event,
/// outbox message, earlier-runs lookup). Run with `--ignored --nocapture`.
async fn hold_latency(ctx: Ctx) {
    let (wf, _clock) = workflow(&ctx);
    let mut samples = Vec::new();
    for i in 0..300 {
        let d = details(
            "alice",
            "orders-prod",
            &format!("UPDATE orders SET x = {i} WHERE id = {i}"),
        );
        let start = std::time::Instant::now();
        created(wf.hold(d).await.expect("hold"));
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "{:?} hold latency over {} requests: median {:?}, p99 {:?}",
        ctx.kind,
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );
}

mod hold_latency {
    #[tokio::test]
    #[ignore = "measurement"]
    async fn sqlite() {
        crate::common::run(crate::common::Kind::Sqlite, |c| {
            Box::pin(super::hold_latency(c))
        })
        .await
    }
    #[tokio::test]
    #[ignore = "measurement"]
    async fn postgres() {
        crate::common::run(crate::common::Kind::Postgres, |c| {
            Box::pin(super::hold_latency(c))
        })
        .await
    }
}
