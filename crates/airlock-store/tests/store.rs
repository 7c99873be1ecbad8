//! The store's test suite; every scenario runs on SQLite and on PostgreSQL.

mod common;

use airlock_core::audit::{verify_chain, AuditFault, AuditHead, NewAuditEvent};
use airlock_core::ports::{
    ChatMessageRef, EarlierRunsQuery, NewOutboxMessage, OutboxClaim, StatusChange, Store,
    StoreError,
};
use airlock_core::request::approval::Refusal;
use airlock_core::{
    Approval, ApprovalOutcome, Execution, Param, RequestFilter, RequestId, RequestPatch,
    RequestStatus, RunRecord, Timestamp,
};
use airlock_sql::StatementClass;
use common::{details, text_param, Ctx, Kind, T0};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

async fn all_events(store: &dyn Store) -> Vec<airlock_core::AuditEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_events(after, 7).await.expect("events");
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page);
    }
    out
}

fn approval(id: RequestId, who: &str, at: Timestamp) -> Approval {
    Approval {
        request_id: id,
        approver: who.into(),
        at,
        via: "cli".into(),
        comment: None,
    }
}

fn change(
    id: RequestId,
    from: RequestStatus,
    to: RequestStatus,
    actor: &str,
    patch: RequestPatch,
) -> StatusChange {
    StatusChange {
        from,
        to,
        patch,
        event: NewAuditEvent::transition(T0, actor, id, from, to, json!({})),
    }
}

both!(create_get_list);
async fn create_get_list(ctx: Ctx) {
    let store = ctx.store.clone();
    let mut d = details(
        "alice",
        "orders-prod",
        "UPDATE orders SET state = $1 WHERE id = $2",
    );
    d.params = vec![
        text_param("shipped"),
        Param {
            type_id: 23,
            binary: true,
            value: Some(vec![0, 0, 0, 42]),
        },
        Param {
            type_id: 25,
            binary: false,
            value: None,
        },
    ];
    d.earlier_runs = vec![airlock_core::EarlierRun {
        who: "bob".into(),
        when: T0,
        target: "orders-qa".into(),
        environment: "qa".into(),
        rows: Some(3),
        duration_ms: 12,
        success: true,
    }];
    d.rollback_sql = Some("UPDATE orders SET state = 'new' WHERE id = 42".into());
    d.max_rows = Some(5);
    d.ai_summary = Some("<b>untrusted</b>".into());
    d.statement_count = 2;
    d.transactional = false;
    let created = store.create_request(&d).await.expect("create");
    assert_eq!(created.status, RequestStatus::Pending);
    let got = store
        .get_request(created.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, created, "every field round-trips");
    assert!(store
        .get_request(RequestId(999_999))
        .await
        .expect("get")
        .is_none());

    // Many concurrent writers: none fails on a busy database.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let who = if i % 2 == 0 { "bob" } else { "carol" };
            let target = if i % 4 < 2 {
                "orders-prod"
            } else {
                "orders-qa"
            };
            store
                .create_request(&details(
                    who,
                    target,
                    &format!("DELETE FROM t WHERE id = {i}"),
                ))
                .await
                .expect("concurrent create")
                .id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("task"));
    }
    assert_eq!(ids.len(), 40);

    let all = store
        .list_requests(&RequestFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 41);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let bobs = store
        .list_requests(&RequestFilter {
            requester: Some("bob".into()),
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(bobs.len(), 20);
    let bob_prod = store
        .list_requests(&RequestFilter {
            requester: Some("bob".into()),
            target: Some("orders-prod".into()),
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(bob_prod.len(), 10);
    let page = store
        .list_requests(&RequestFilter {
            before: Some(all[4].id),
            limit: Some(3),
            ..RequestFilter::default()
        })
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![all[5].id, all[6].id, all[7].id]
    );

    // Status filter.
    let change = change(
        created.id,
        RequestStatus::Pending,
        RequestStatus::Cancelled,
        "alice",
        RequestPatch::default(),
    );
    assert!(store.transition(created.id, &change).await.expect("cancel"));
    let cancelled = store
        .list_requests(&RequestFilter {
            statuses: vec![RequestStatus::Cancelled, RequestStatus::Rejected],
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        cancelled.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![created.id]
    );

    // Each creation wrote its audit event and an outbox message, in one chain.
    let events = all_events(store.as_ref()).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "request.created")
            .count(),
        41
    );
    assert_eq!(
        events.last().map(|e| e.kind.as_str()),
        Some("request.cancelled")
    );
    let head = verify_chain(&events, None).expect("chain");
    assert_eq!(head, store.audit_head().await.expect("head"));
    let claim = OutboxClaim {
        owner: "t".into(),
        topic: Some("request".into()),
        now: T0,
        lease: Duration::from_secs(60),
        limit: 100,
    };
    // 42 messages: one creation per request, then the cancellation, which
    // waits until its request's creation message is delivered.
    let notes = store.claim_outbox(&claim).await.expect("claim");
    assert_eq!(notes.len(), 41);
    for n in &notes {
        assert!(store.ack_outbox(n.id, "t", T0).await.expect("ack"));
    }
    let rest = store.claim_outbox(&claim).await.expect("claim");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].request_id, Some(created.id));
    assert!(
        rest[0].payload.contains("request.cancelled"),
        "{:?}",
        rest[0]
    );
}

both!(exact_matching);
async fn exact_matching(ctx: Ctx) {
    let store = ctx.store.clone();
    let mut d = details(
        "alice",
        "orders-prod",
        "UPDATE orders SET state = $1 WHERE id = 7",
    );
    d.params = vec![text_param("shipped")];
    let r = store.create_request(&d).await.expect("create");
    let same = airlock_core::request::matching::ExactMatch::new(
        d.engine,
        "orders-prod",
        "alice",
        "UPDATE orders\n  SET state = $1 WHERE id = 7;",
        &[text_param("shipped")],
    );
    assert_eq!(
        store
            .find_open_exact(&same)
            .await
            .expect("find")
            .map(|r| r.id),
        Some(r.id)
    );
    for (target, who, text, value) in [
        (
            "orders-prod",
            "alice",
            "UPDATE orders SET state = $1 WHERE id = 8",
            "shipped",
        ),
        (
            "orders-prod",
            "alice",
            "UPDATE orders SET state = $1 WHERE id = 7",
            "lost",
        ),
        (
            "orders-qa",
            "alice",
            "UPDATE orders SET state = $1 WHERE id = 7",
            "shipped",
        ),
        (
            "orders-prod",
            "bob",
            "UPDATE orders SET state = $1 WHERE id = 7",
            "shipped",
        ),
    ] {
        let other = airlock_core::request::matching::ExactMatch::new(
            d.engine,
            target,
            who,
            text,
            &[text_param(value)],
        );
        assert!(
            store.find_open_exact(&other).await.expect("find").is_none(),
            "{target} {who} {text} {value}"
        );
    }
    // The store keeps one open request per statement, whatever the caller checked.
    let mut resent = d.clone();
    resent.statement = "UPDATE orders\n  SET state = $1 WHERE id = 7;".into();
    match store.create_request(&resent).await {
        Err(StoreError::AlreadyOpen(id)) => assert_eq!(id, r.id),
        other => panic!("a second open request for the statement: {other:?}"),
    }
    // Closed requests do not match, and the statement may be held again.
    let c = change(
        r.id,
        RequestStatus::Pending,
        RequestStatus::Rejected,
        "bob",
        RequestPatch::default(),
    );
    assert!(store.transition(r.id, &c).await.expect("reject"));
    assert!(store.find_open_exact(&same).await.expect("find").is_none());
    let again = store.create_request(&resent).await.expect("held again");
    assert_ne!(again.id, r.id);
}

both!(cas_races);
async fn cas_races(ctx: Ctx) {
    let store = ctx.store.clone();
    let replica = ctx.replica().await;
    let r = store
        .create_request(&details("alice", "orders-prod", "DELETE FROM t"))
        .await
        .expect("create");
    assert_eq!(
        store
            .record_approval(&approval(r.id, "bob", T0))
            .await
            .expect("approve"),
        Ok(ApprovalOutcome::Approved { have: 1 })
    );
    // Twenty concurrent starts on two "replicas": exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s: Arc<dyn Store> = if i % 2 == 0 {
            store.clone()
        } else {
            replica.clone()
        };
        tasks.push(tokio::spawn(async move {
            let patch = RequestPatch {
                run: RunRecord {
                    by: Some(format!("runner-{i}")),
                    started_at: Some(T0),
                    ..RunRecord::default()
                },
                ..RequestPatch::default()
            };
            let c = change(
                r.id,
                RequestStatus::Approved,
                RequestStatus::Running,
                "alice",
                patch,
            );
            s.transition(r.id, &c).await.expect("cas")
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("task"));
    }
    assert_eq!(wins, 1);
    let running = store.get_request(r.id).await.expect("get").expect("exists");
    assert_eq!(running.status, RequestStatus::Running);
    assert!(running
        .run
        .by
        .as_deref()
        .is_some_and(|b| b.starts_with("runner-")));
    let events = all_events(store.as_ref()).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "request.running")
            .count(),
        1
    );
    verify_chain(&events, None).expect("one chain");

    // xid, then finish; patches keep earlier fields.
    let session = airlock_core::UpstreamSession {
        xid: Some("7531".into()),
        backend: Some("4242@1764690000.5".into()),
    };
    assert!(store
        .set_upstream_session(r.id, RequestStatus::Running, &session)
        .await
        .expect("xid"));
    assert!(!store
        .set_upstream_session(r.id, RequestStatus::RollingBack, &session)
        .await
        .expect("xid"));
    let done = RequestPatch {
        run: RunRecord {
            finished_at: Some(T0),
            rows_affected: Some(3),
            command_tag: Some("DELETE 3".into()),
            duration_ms: Some(4),
            ..RunRecord::default()
        },
        ..RequestPatch::default()
    };
    assert!(store
        .transition(
            r.id,
            &change(
                r.id,
                RequestStatus::Running,
                RequestStatus::Executed,
                "alice",
                done
            )
        )
        .await
        .expect("finish"));
    let executed = store.get_request(r.id).await.expect("get").expect("exists");
    assert_eq!(executed.run.upstream_xid.as_deref(), Some("7531"));
    assert_eq!(
        executed.run.upstream_backend.as_deref(),
        Some("4242@1764690000.5")
    );
    assert_eq!(executed.run.command_tag.as_deref(), Some("DELETE 3"));
    assert_eq!(executed.run.by, running.run.by);

    // The store refuses moves the state machine does not allow, and unknown requests.
    let bad = change(
        r.id,
        RequestStatus::Executed,
        RequestStatus::Running,
        "alice",
        RequestPatch::default(),
    );
    assert!(matches!(
        store.transition(r.id, &bad).await,
        Err(StoreError::InvalidTransition { .. })
    ));
    let missing = change(
        RequestId(424_242),
        RequestStatus::Pending,
        RequestStatus::Cancelled,
        "x",
        RequestPatch::default(),
    );
    assert!(matches!(
        store.transition(RequestId(424_242), &missing).await,
        Err(StoreError::NotFound(_))
    ));
    // A lost race writes nothing.
    let stale = change(
        r.id,
        RequestStatus::Pending,
        RequestStatus::Cancelled,
        "alice",
        RequestPatch::default(),
    );
    let before = store.audit_head().await.expect("head");
    assert!(!store.transition(r.id, &stale).await.expect("cas"));
    assert_eq!(store.audit_head().await.expect("head"), before);
    replica.close().await;
}

both!(approvals);
async fn approvals(ctx: Ctx) {
    let store = ctx.store.clone();
    let mut d = details("alice", "orders-prod", "DROP TABLE old_orders");
    d.approvals_required = 2;
    d.run_window = Duration::from_secs(600);
    let r = store.create_request(&d).await.expect("create");
    let at = T0.plus(Duration::from_secs(5));
    assert_eq!(
        store
            .record_approval(&approval(r.id, "bob", at))
            .await
            .expect("db"),
        Ok(ApprovalOutcome::Recorded { have: 1, need: 2 })
    );
    assert_eq!(
        store
            .record_approval(&approval(r.id, "bob", at))
            .await
            .expect("db"),
        Err(Refusal::AlreadyApproved)
    );
    assert_eq!(
        store
            .record_approval(&approval(r.id, "alice", at))
            .await
            .expect("db"),
        Err(Refusal::OwnRequest)
    );
    assert_eq!(
        store
            .record_approval(&approval(r.id, "carol", at))
            .await
            .expect("db"),
        Ok(ApprovalOutcome::Approved { have: 2 })
    );
    let approved = store.get_request(r.id).await.expect("get").expect("exists");
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.approved_at, Some(at));
    assert_eq!(
        approved.run_deadline,
        Some(at.plus(Duration::from_secs(600)))
    );
    assert_eq!(approved.decided_by.as_deref(), Some("carol"));
    assert!(matches!(
        store
            .record_approval(&approval(r.id, "dave", at))
            .await
            .expect("db"),
        Err(Refusal::WrongStatus {
            status: RequestStatus::Approved,
            ..
        })
    ));
    let list = store.approvals(r.id).await.expect("approvals");
    assert_eq!(
        list.iter().map(|a| a.approver.as_str()).collect::<Vec<_>>(),
        vec!["bob", "carol"]
    );

    // Expired: refused even though still pending in the store.
    let late = store
        .create_request(&details("alice", "orders-prod", "DELETE FROM x"))
        .await
        .expect("create");
    assert_eq!(
        store
            .record_approval(&approval(late.id, "bob", late.details.expires_at))
            .await
            .expect("db"),
        Err(Refusal::Expired {
            at: late.details.expires_at
        })
    );

    // Concurrent approvals from different approvers: exactly one completes it.
    let replica = ctx.replica().await;
    let mut d = details("alice", "orders-prod", "TRUNCATE t");
    d.approvals_required = 2;
    let r = store.create_request(&d).await.expect("create");
    let mut tasks = Vec::new();
    for (i, who) in ["bob", "carol", "dave", "erin", "frank", "bob", "carol"]
        .into_iter()
        .enumerate()
    {
        let s: Arc<dyn Store> = if i % 2 == 0 {
            store.clone()
        } else {
            replica.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.record_approval(&approval(r.id, who, T0))
                .await
                .expect("db")
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let approved = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(ApprovalOutcome::Approved { .. })))
        .count();
    let recorded = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(ApprovalOutcome::Recorded { .. })))
        .count();
    assert_eq!((approved, recorded), (1, 1), "{outcomes:?}");
    assert_eq!(store.approvals(r.id).await.expect("approvals").len(), 2);
    let events = all_events(store.as_ref()).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "request.approved" && e.request_id == Some(r.id))
            .count(),
        1
    );
    verify_chain(&events, None).expect("chain");
    replica.close().await;
}

both!(expiry);
async fn expiry(ctx: Ctx) {
    let store = ctx.store.clone();
    let mut d = details("alice", "orders-prod", "DELETE FROM a");
    d.expires_at = T0.plus(Duration::from_secs(60));
    let pending = store.create_request(&d).await.expect("create");
    let fresh = store
        .create_request(&details("alice", "orders-prod", "DELETE FROM b"))
        .await
        .expect("create");
    let mut d = details("alice", "orders-prod", "DELETE FROM c");
    d.run_window = Duration::from_secs(30);
    let approved = store.create_request(&d).await.expect("create");
    assert!(store
        .record_approval(&approval(approved.id, "bob", T0))
        .await
        .expect("db")
        .is_ok());

    assert!(store
        .expire_due(T0.plus(Duration::from_secs(10)))
        .await
        .expect("expire")
        .is_empty());
    let now = T0.plus(Duration::from_secs(60));
    let mut expired = store.expire_due(now).await.expect("expire");
    expired.sort();
    assert_eq!(
        expired,
        vec![
            (pending.id, RequestStatus::Pending),
            (approved.id, RequestStatus::Approved)
        ]
    );
    for id in [pending.id, approved.id] {
        let r = store.get_request(id).await.expect("get").expect("exists");
        assert_eq!(r.status, RequestStatus::Expired);
        assert_eq!(r.decided_by.as_deref(), Some("airlock"));
        assert_eq!(r.decided_at, Some(now));
    }
    assert_eq!(
        store
            .get_request(fresh.id)
            .await
            .expect("get")
            .expect("exists")
            .status,
        RequestStatus::Pending
    );
    assert!(store.expire_due(now).await.expect("again").is_empty());
    let events = all_events(store.as_ref()).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "request.expired")
            .count(),
        2
    );
    verify_chain(&events, None).expect("chain");
}

both!(earlier_runs);
async fn earlier_runs(ctx: Ctx) {
    let store = ctx.store.clone();
    let exec = |env: &str, fam: Option<&str>, fp: &str, at: i64, success: bool| Execution {
        request_id: None,
        family: fam.map(str::to_string),
        target: format!("orders-{env}"),
        environment: env.into(),
        fingerprint: fp.into(),
        user: "alice".into(),
        class: StatementClass::Write,
        rows: Some(at),
        duration_ms: 5,
        success,
        error: (!success).then(|| "boom".to_string()),
        at: Timestamp(at),
    };
    for e in [
        exec("dev", Some("orders"), "UPDATE t SET x = ?", 1, true),
        exec("qa", Some("orders"), "UPDATE t SET x = ?", 2, false),
        exec("qa", Some("orders"), "UPDATE t SET x = ?", 3, true),
        exec("prod", Some("orders"), "UPDATE t SET x = ?", 4, true),
        exec("qa", Some("orders"), "DELETE FROM t", 5, true),
        exec("qa", Some("billing"), "UPDATE t SET x = ?", 6, true),
        exec("qa", None, "UPDATE t SET x = ?", 7, true),
    ] {
        store.record_execution(&e).await.expect("record");
    }
    let q = |envs: &[&str], limit| EarlierRunsQuery {
        family: "orders".into(),
        fingerprint: "UPDATE t SET x = ?".into(),
        environments: envs.iter().map(|s| s.to_string()).collect(),
        limit,
    };
    let runs = store
        .earlier_runs(&q(&["dev", "qa"], 10))
        .await
        .expect("runs");
    assert_eq!(
        runs.iter()
            .map(|r| (r.environment.as_str(), r.when.0, r.success))
            .collect::<Vec<_>>(),
        vec![("qa", 3, true), ("qa", 2, false), ("dev", 1, true)]
    );
    assert_eq!(runs[0].target, "orders-qa");
    assert_eq!(runs[0].rows, Some(3));
    assert_eq!(
        store
            .earlier_runs(&q(&["dev", "qa"], 1))
            .await
            .expect("runs")
            .len(),
        1
    );
    assert!(store
        .earlier_runs(&q(&[], 10))
        .await
        .expect("runs")
        .is_empty());
    assert_eq!(
        store
            .earlier_runs(&q(&["dev"], 10))
            .await
            .expect("runs")
            .len(),
        1
    );
}

both!(audit_concurrent_appends);
async fn audit_concurrent_appends(ctx: Ctx) {
    let store = ctx.store.clone();
    let replica = ctx.replica().await;
    let mut tasks = Vec::new();
    for task in 0..6 {
        let s: Arc<dyn Store> = if task % 2 == 0 {
            store.clone()
        } else {
            replica.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let e = NewAuditEvent::new(
                    T0,
                    format!("user{task}"),
                    "session.login",
                    None,
                    json!({ "i": i }),
                );
                s.append_audit(&e).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let events = all_events(store.as_ref()).await;
    assert_eq!(events.len(), 90);
    let head = verify_chain(&events, None).expect("a single valid chain");
    assert_eq!(head.seq, 90);
    assert_eq!(replica.audit_head().await.expect("head"), head);
    replica.close().await;
}

both!(audit_tampering);
async fn audit_tampering(ctx: Ctx) {
    let store = ctx.store.clone();
    for i in 0..12 {
        let e = NewAuditEvent::new(
            T0.plus(Duration::from_secs(i)),
            "alice",
            "test.event",
            None,
            json!({ "i": i }),
        );
        store.append_audit(&e).await.expect("append");
    }
    let kept: AuditHead = store.audit_head().await.expect("head");
    assert_eq!(kept.seq, 12);
    let check = |store: Arc<airlock_store::SqlStore>, head: Option<AuditHead>| async move {
        let events = all_events(store.as_ref()).await;
        verify_chain(&events, head.as_ref())
    };
    check(store.clone(), Some(kept.clone()))
        .await
        .expect("intact");

    // Edit one payload.
    ctx.raw("UPDATE audit_events SET payload = '{\"i\":99}' WHERE seq = 9")
        .await;
    let v = check(store.clone(), None).await.expect_err("edited");
    assert_eq!((v.seq, v.what), (9, AuditFault::Altered));
    ctx.raw("UPDATE audit_events SET payload = '{\"i\":8}' WHERE seq = 9")
        .await;
    check(store.clone(), Some(kept.clone()))
        .await
        .expect("restored");

    // Edit an actor and recompute nothing: same finding.
    ctx.raw("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        .await;
    assert_eq!(check(store.clone(), None).await.expect_err("edited").seq, 2);
    ctx.raw("UPDATE audit_events SET actor = 'alice' WHERE seq = 2")
        .await;

    // Delete one event.
    let seven = store.audit_events(6, 1).await.expect("read").remove(0);
    ctx.raw("DELETE FROM audit_events WHERE seq = 7").await;
    let v = check(store.clone(), None).await.expect_err("deleted");
    assert_eq!((v.seq, v.what), (7, AuditFault::Missing { found: 8 }));
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, kind, request_id, payload, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)",
    )
    .bind(seven.seq)
    .bind(seven.at.0)
    .bind(&seven.actor)
    .bind(&seven.kind)
    .bind(&seven.payload)
    .bind(&seven.prev_hash)
    .bind(&seven.hash)
    .execute(store.pool())
    .await
    .expect("restore");
    check(store.clone(), Some(kept.clone()))
        .await
        .expect("restored");

    // Swap two events' sequence numbers.
    let swap = [
        "UPDATE audit_events SET seq = -3 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = -3",
    ];
    for sql in swap {
        ctx.raw(sql).await;
    }
    let v = check(store.clone(), None).await.expect_err("swapped");
    assert_eq!((v.seq, v.what), (3, AuditFault::BrokenLink));
    for sql in swap {
        ctx.raw(sql).await;
    }
    check(store.clone(), Some(kept.clone()))
        .await
        .expect("swapped back");

    // Truncate the tail: only a head kept elsewhere shows it.
    ctx.raw("DELETE FROM audit_events WHERE seq > 10").await;
    check(store.clone(), None)
        .await
        .expect("a truncated chain is consistent in itself");
    let v = check(store.clone(), Some(kept.clone()))
        .await
        .expect_err("truncated");
    assert_eq!((v.seq, v.what), (11, AuditFault::Truncated { last: 10 }));

    // Rewrite the tail consistently: the kept head still catches it.
    ctx.raw(
        "UPDATE audit_head SET seq = 10, hash = (SELECT hash FROM audit_events WHERE seq = 10)",
    )
    .await;
    for i in 0..3 {
        let e = NewAuditEvent::new(T0, "mallory", "forged", None, json!({ "i": i }));
        store.append_audit(&e).await.expect("append");
    }
    check(store.clone(), None)
        .await
        .expect("forged tail is consistent in itself");
    let v = check(store.clone(), Some(kept))
        .await
        .expect_err("rewritten");
    assert_eq!(v.seq, 12);
    assert!(matches!(v.what, AuditFault::HeadMismatch { .. }), "{v}");
}

both!(outbox);
async fn outbox(ctx: Ctx) {
    let store = ctx.store.clone();
    let replica = ctx.replica().await;
    for i in 0..30 {
        let m = NewOutboxMessage {
            topic: "slack".into(),
            request_id: None,
            payload: json!({ "i": i }).to_string(),
            at: T0,
        };
        store.enqueue_outbox(&m).await.expect("enqueue");
    }
    // Six concurrent drainers on two replicas: every message is claimed exactly once.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s: Arc<dyn Store> = if w % 2 == 0 {
            store.clone()
        } else {
            replica.clone()
        };
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let claim = OutboxClaim {
                    owner: owner.clone(),
                    topic: Some("slack".into()),
                    now: T0,
                    lease: Duration::from_secs(60),
                    limit: 2,
                };
                let got = s.claim_outbox(&claim).await.expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|m| (m.id, owner.clone())));
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.expect("task"));
    }
    let ids: HashSet<i64> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        (claimed.len(), ids.len()),
        (30, 30),
        "each message claimed once"
    );

    let (first, owner) = claimed[0].clone();
    assert!(!store.ack_outbox(first, "intruder", T0).await.expect("ack"));
    assert!(store.ack_outbox(first, &owner, T0).await.expect("ack"));
    assert!(!store
        .ack_outbox(first, &owner, T0)
        .await
        .expect("ack twice"));

    // A lapsed lease lets another owner take the message; the old owner can no longer ack it.
    let (second, old_owner) = claimed[1].clone();
    let later = OutboxClaim {
        owner: "rescuer".into(),
        topic: Some("slack".into()),
        now: T0.plus(Duration::from_secs(61)),
        lease: Duration::from_secs(60),
        limit: 100,
    };
    let rescued = store.claim_outbox(&later).await.expect("claim");
    assert_eq!(rescued.len(), 29);
    assert!(rescued.iter().all(|m| m.attempts == 2));
    assert!(!store
        .ack_outbox(second, &old_owner, later.now)
        .await
        .expect("ack"));
    for m in rescued.iter().filter(|m| m.id != second) {
        assert!(store
            .ack_outbox(m.id, "rescuer", later.now)
            .await
            .expect("ack"));
    }
    // Retry: available again at the given time, with the error kept.
    assert!(store
        .retry_outbox(
            second,
            "rescuer",
            "slack 500",
            T0.plus(Duration::from_secs(500))
        )
        .await
        .expect("retry"));
    let early = OutboxClaim {
        now: T0.plus(Duration::from_secs(499)),
        owner: "x".into(),
        ..later.clone()
    };
    assert!(store.claim_outbox(&early).await.expect("claim").is_empty());
    let due = OutboxClaim {
        now: T0.plus(Duration::from_secs(500)),
        owner: "x".into(),
        ..later
    };
    let again = store.claim_outbox(&due).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].last_error.as_deref(), Some("slack 500"));

    // Named lease: one holder at a time, renewable, free after its ttl.
    let ttl = Duration::from_secs(10);
    assert!(store
        .try_lease("drainer", "a", T0, ttl)
        .await
        .expect("lease"));
    assert!(!replica
        .try_lease("drainer", "b", T0.plus(Duration::from_secs(5)), ttl)
        .await
        .expect("lease"));
    assert!(store
        .try_lease("drainer", "a", T0.plus(Duration::from_secs(5)), ttl)
        .await
        .expect("renew"));
    assert!(!replica
        .try_lease("drainer", "b", T0.plus(Duration::from_secs(14)), ttl)
        .await
        .expect("lease"));
    assert!(replica
        .try_lease("drainer", "b", T0.plus(Duration::from_secs(15)), ttl)
        .await
        .expect("lease"));
    assert!(!store
        .try_lease("drainer", "a", T0.plus(Duration::from_secs(16)), ttl)
        .await
        .expect("lease"));
    replica.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let e = airlock_store::SqlStore::connect("mysql://x@y/z")
        .await
        .expect_err("unsupported");
    assert!(e.to_string().contains("unsupported store URL"), "{e}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = airlock_store::SqlStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    let r = store
        .create_request(&details("alice", "orders-prod", "DELETE FROM t"))
        .await
        .expect("create");
    assert_eq!(
        store
            .get_request(r.id)
            .await
            .expect("get")
            .map(|r| r.status),
        Some(RequestStatus::Pending)
    );
    assert_eq!(store.backend(), airlock_store::Backend::Sqlite);
    let _ = Kind::Sqlite;
}

both!(chat_messages_and_nonces);
async fn chat_messages_and_nonces(ctx: Ctx) {
    let store = ctx.store.clone();
    let replica = ctx.replica().await;
    let r = store
        .create_request(&details(
            "alice",
            "orders-prod",
            "DELETE FROM t WHERE id = 1",
        ))
        .await
        .expect("create");
    assert_eq!(
        store.chat_message(r.id, "slack:review").await.expect("get"),
        None
    );
    let first = ChatMessageRef {
        request_id: r.id,
        purpose: "slack:review".into(),
        channel: "C123".into(),
        ts: "1700000000.000100".into(),
        posted_at: T0,
    };
    assert!(store.record_chat_message(&first).await.expect("record"));
    // A second post for the same purpose (from another replica) does not replace the first.
    let second = ChatMessageRef {
        ts: "1700000000.000200".into(),
        ..first.clone()
    };
    assert!(!replica.record_chat_message(&second).await.expect("record"));
    assert_eq!(
        replica
            .chat_message(r.id, "slack:review")
            .await
            .expect("get"),
        Some(first.clone())
    );
    assert_eq!(
        store
            .chat_message(r.id, "slack:dm:approved")
            .await
            .expect("get"),
        None
    );
    // Replaced (the message was deleted in Slack and posted again).
    let third = ChatMessageRef {
        ts: "1700000000.000300".into(),
        ..first.clone()
    };
    replica.replace_chat_message(&third).await.expect("replace");
    assert_eq!(
        store.chat_message(r.id, "slack:review").await.expect("get"),
        Some(third)
    );

    // A nonce is accepted once, across replicas, until it is forgotten.
    let later = T0.plus(Duration::from_secs(60));
    assert!(store.remember_nonce("sig-a", T0, T0).await.expect("nonce"));
    assert!(!replica
        .remember_nonce("sig-a", later, T0)
        .await
        .expect("nonce"));
    assert!(replica
        .remember_nonce("sig-b", later, T0)
        .await
        .expect("nonce"));
    let much_later = T0.plus(Duration::from_secs(3600));
    assert!(store
        .remember_nonce("sig-a", much_later, T0.plus(Duration::from_secs(30)))
        .await
        .expect("forgotten nonce"));
}

both!(outbox_keeps_each_requests_order);
async fn outbox_keeps_each_requests_order(ctx: Ctx) {
    let store = ctx.store.clone();
    let a = store
        .create_request(&details(
            "alice",
            "orders-prod",
            "DELETE FROM t WHERE id = 1",
        ))
        .await
        .expect("create");
    let b = store
        .create_request(&details(
            "alice",
            "orders-prod",
            "DELETE FROM t WHERE id = 2",
        ))
        .await
        .expect("create");
    let claim = |owner: &str, now: Timestamp| OutboxClaim {
        owner: owner.into(),
        topic: Some("request".into()),
        now,
        lease: Duration::from_secs(60),
        limit: 100,
    };
    // Creation messages: one per request, both claimable at once.
    let first = store.claim_outbox(&claim("w", T0)).await.expect("claim");
    let ids: Vec<_> = first.iter().map(|m| m.request_id).collect();
    assert_eq!(ids, vec![Some(a.id), Some(b.id)]);
    // A's first message fails and is put off; A's later message must wait for it.
    for extra in 0..2 {
        store
            .enqueue_outbox(&NewOutboxMessage {
                topic: "request".into(),
                request_id: Some(a.id),
                payload: json!({ "extra": extra }).to_string(),
                at: T0,
            })
            .await
            .expect("enqueue");
    }
    assert!(store
        .retry_outbox(
            first[0].id,
            "w",
            "slack down",
            T0.plus(Duration::from_secs(30))
        )
        .await
        .expect("retry"));
    assert!(store.ack_outbox(first[1].id, "w", T0).await.expect("ack"));
    let now = T0.plus(Duration::from_secs(1));
    assert!(
        store
            .claim_outbox(&claim("w", now))
            .await
            .expect("claim")
            .is_empty(),
        "a later message of request A was handed out before its earlier one"
    );
    // Once the first is due again, only it comes; then the next, one at a time.
    let later = T0.plus(Duration::from_secs(31));
    let mut order = Vec::new();
    loop {
        let got = store.claim_outbox(&claim("w", later)).await.expect("claim");
        if got.is_empty() {
            break;
        }
        assert_eq!(got.len(), 1, "one message of a request at a time: {got:?}");
        order.push(got[0].id);
        assert!(store.ack_outbox(got[0].id, "w", later).await.expect("ack"));
    }
    assert_eq!(order.len(), 3);
    assert_eq!(order[0], first[0].id);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

/// Waits for `want` on `events` (other events are skipped).
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<airlock_core::ports::StoreEvent>,
    want: airlock_core::ports::StoreEvent,
) -> bool {
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(e) if e == want => return true,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    seen.unwrap_or(false)
}

both!(events_reach_every_replica);
async fn events_reach_every_replica(ctx: Ctx) {
    use airlock_core::ports::StoreEvent;
    // The other replica (PostgreSQL: LISTEN/NOTIFY; SQLite: one process
    // shares one store handle, so its own subscribers are the ones told).
    let watcher: Arc<airlock_store::SqlStore> = match ctx.kind {
        Kind::Postgres => ctx.replica().await,
        Kind::Sqlite => ctx.store.clone(),
    };
    let mut events = watcher.subscribe();
    if ctx.kind == Kind::Postgres {
        // The listener announces itself once it listens.
        assert!(
            next_event(&mut events, StoreEvent::Resync).await,
            "listener never listened"
        );
    }
    let d = details("alice", "orders-prod", "UPDATE t SET a = 1");
    let r = ctx.store.create_request(&d).await.expect("create");
    assert!(
        next_event(&mut events, StoreEvent::Request(r.id)).await,
        "creation not announced"
    );
    let done = ctx
        .store
        .transition(
            r.id,
            &change(
                r.id,
                RequestStatus::Pending,
                RequestStatus::Rejected,
                "bob",
                RequestPatch::default(),
            ),
        )
        .await
        .expect("reject");
    assert!(done);
    assert!(
        next_event(&mut events, StoreEvent::Request(r.id)).await,
        "decision not announced"
    );
    let message = NewOutboxMessage {
        topic: "test".into(),
        request_id: None,
        payload: "{}".into(),
        at: T0,
    };
    ctx.store.enqueue_outbox(&message).await.expect("enqueue");
    assert!(
        next_event(&mut events, StoreEvent::Outbox).await,
        "outbox not announced"
    );
    // A change that loses its compare-and-set announces nothing; the next
    // event is the one that follows it.
    let lost = ctx
        .store
        .transition(
            r.id,
            &change(
                r.id,
                RequestStatus::Pending,
                RequestStatus::Approved,
                "bob",
                RequestPatch::default(),
            ),
        )
        .await
        .expect("cas");
    assert!(!lost);
    let r2 = ctx
        .store
        .create_request(&details("alice", "orders-prod", "UPDATE t SET a = 2"))
        .await
        .expect("create");
    let next = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(StoreEvent::Request(id)) => return Some(id),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    assert_eq!(next, Some(r2.id), "a lost compare-and-set was announced");
    if ctx.kind == Kind::Postgres {
        watcher.close().await;
    }
}

both!(session_directory);
async fn session_directory(ctx: Ctx) {
    use airlock_core::SessionDirectory;
    let dir = ctx.store.as_ref();
    dir.register_session(4242, 7, "10.0.0.1:6432", T0)
        .await
        .expect("register");
    dir.register_session(4243, 8, "10.0.0.2:6432", T0)
        .await
        .expect("register");
    assert_eq!(
        dir.session_owner(4242, 7).await.expect("owner").as_deref(),
        Some("10.0.0.1:6432")
    );
    // The key must match; another owner cannot forget it.
    assert_eq!(dir.session_owner(4242, 8).await.expect("owner"), None);
    dir.forget_session(4242, 7, "10.0.0.2:6432")
        .await
        .expect("forget");
    assert!(dir.session_owner(4242, 7).await.expect("owner").is_some());
    dir.forget_session(4242, 7, "10.0.0.1:6432")
        .await
        .expect("forget");
    assert_eq!(dir.session_owner(4242, 7).await.expect("owner"), None);
    // A replica starting again at an address forgets what it left listed.
    assert_eq!(
        dir.forget_owner("10.0.0.2:6432")
            .await
            .expect("forget owner"),
        1
    );
    assert_eq!(dir.session_owner(4243, 8).await.expect("owner"), None);
}
