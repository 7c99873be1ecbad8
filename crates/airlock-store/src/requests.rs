//! Change requests and approvals: create, read, list, exact matching, and the
//! compare-and-set status changes (each with its audit event).

use crate::error::{corrupt, db};
use crate::{ms, ts, Backend, SqlStore, Tx};
use airlock_core::audit::{kinds, NewAuditEvent};
use airlock_core::ports::{StatusChange, StoreError, StoreEvent};
use airlock_core::request::matching::ExactMatch;
use airlock_core::request::state::is_allowed;
use airlock_core::request::{decode_params, encode_params, parse_class, UpstreamSession};
use airlock_core::workflow::{expiry_reason, SYSTEM_ACTOR};
use airlock_core::{
    Approval, ApprovalOutcome, ChangeRequest, Engine, Refusal, RequestDetails, RequestFilter,
    RequestId, RequestPatch, RequestStatus, RiskLevel, RunRecord, Timestamp,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// Most requests one list call returns.
pub const MAX_LIST: u32 = 1000;

const COLUMNS: &str = "id, status, requester, team, groups_json, application_name, client_addr, target, family, \
    environment, engine, statement, params, match_key, fingerprint, class, statement_count, transactional, \
    tables_json, summary, ai_summary, risk, risk_reasons_json, row_estimate, earlier_runs_json, reason, \
    description, rollback_sql, max_rows, approvals_required, approver_groups_json, run_window_ms, created_at, \
    expires_at, approved_at, run_deadline, decided_by, decided_at, decision_reason, run_by, run_started_at, \
    run_finished_at, run_rows, run_tag, run_duration_ms, run_error, run_xid, run_backend, rb_by, \
    rb_started_at, rb_finished_at, rb_rows, rb_tag, rb_duration_ms, rb_error, rb_xid, rb_backend, updated_at";

const INSERT: &str = "INSERT INTO requests (status, requester, team, groups_json, application_name, client_addr, \
    target, family, environment, engine, statement, params, match_key, fingerprint, class, statement_count, \
    transactional, tables_json, summary, ai_summary, risk, risk_reasons_json, row_estimate, earlier_runs_json, \
    reason, description, rollback_sql, max_rows, approvals_required, approver_groups_json, run_window_ms, \
    created_at, expires_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
    $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34) \
    RETURNING id";

/// The compare-and-set: status and every patch field (NULL keeps the value).
const CAS: &str = "UPDATE requests SET status = $1, updated_at = $2, \
    approved_at = COALESCE($3, approved_at), run_deadline = COALESCE($4, run_deadline), \
    decided_by = COALESCE($5, decided_by), decided_at = COALESCE($6, decided_at), \
    decision_reason = COALESCE($7, decision_reason), \
    run_by = COALESCE($8, run_by), run_started_at = COALESCE($9, run_started_at), \
    run_finished_at = COALESCE($10, run_finished_at), run_rows = COALESCE($11, run_rows), \
    run_tag = COALESCE($12, run_tag), run_duration_ms = COALESCE($13, run_duration_ms), \
    run_error = COALESCE($14, run_error), run_xid = COALESCE($15, run_xid), \
    rb_by = COALESCE($16, rb_by), rb_started_at = COALESCE($17, rb_started_at), \
    rb_finished_at = COALESCE($18, rb_finished_at), rb_rows = COALESCE($19, rb_rows), \
    rb_tag = COALESCE($20, rb_tag), rb_duration_ms = COALESCE($21, rb_duration_ms), \
    rb_error = COALESCE($22, rb_error), rb_xid = COALESCE($23, rb_xid) \
    WHERE id = $24 AND status = $25";

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt(format!("cannot encode JSON: {e}")))
}

fn get<T>(row: &AnyRow, col: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| corrupt(format!("requests.{col}: {e}")))
}

fn get_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| corrupt(format!("requests.{col}: {e}")))
}

fn get_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<i64>>(row, col)?.map(Timestamp))
}

fn get_u32(row: &AnyRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = get(row, col)?;
    u32::try_from(v).map_err(|_| corrupt(format!("requests.{col} = {v}")))
}

fn get_bool(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    match get::<i64>(row, col)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(corrupt(format!("requests.{col} = {v}"))),
    }
}

fn run_from_row(row: &AnyRow, p: &str) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        by: get(row, &format!("{p}_by"))?,
        started_at: get_ts(row, &format!("{p}_started_at"))?,
        finished_at: get_ts(row, &format!("{p}_finished_at"))?,
        rows_affected: get(row, &format!("{p}_rows"))?,
        command_tag: get(row, &format!("{p}_tag"))?,
        duration_ms: get(row, &format!("{p}_duration_ms"))?,
        error: get(row, &format!("{p}_error"))?,
        upstream_xid: get(row, &format!("{p}_xid"))?,
        upstream_backend: get(row, &format!("{p}_backend"))?,
    })
}

fn request_from_row(row: &AnyRow) -> Result<ChangeRequest, StoreError> {
    let status: String = get(row, "status")?;
    let engine: String = get(row, "engine")?;
    let class: String = get(row, "class")?;
    let risk: String = get(row, "risk")?;
    let params: Vec<u8> = get(row, "params")?;
    let run_window_ms: i64 = get(row, "run_window_ms")?;
    let details = RequestDetails {
        requester: get(row, "requester")?,
        team: get(row, "team")?,
        groups: get_json(row, "groups_json")?,
        application_name: get(row, "application_name")?,
        client_addr: get(row, "client_addr")?,
        target: get(row, "target")?,
        family: get(row, "family")?,
        environment: get(row, "environment")?,
        engine: Engine::parse(&engine)
            .ok_or_else(|| corrupt(format!("requests.engine = {engine:?}")))?,
        statement: get(row, "statement")?,
        params: decode_params(&params).map_err(|e| corrupt(format!("requests.params: {e}")))?,
        fingerprint: get(row, "fingerprint")?,
        class: parse_class(&class).ok_or_else(|| corrupt(format!("requests.class = {class:?}")))?,
        statement_count: get_u32(row, "statement_count")?,
        transactional: get_bool(row, "transactional")?,
        tables: get_json(row, "tables_json")?,
        summary: get(row, "summary")?,
        ai_summary: get(row, "ai_summary")?,
        risk: RiskLevel::parse(&risk)
            .ok_or_else(|| corrupt(format!("requests.risk = {risk:?}")))?,
        risk_reasons: get_json(row, "risk_reasons_json")?,
        row_estimate: get(row, "row_estimate")?,
        earlier_runs: get_json(row, "earlier_runs_json")?,
        reason: get(row, "reason")?,
        description: get(row, "description")?,
        rollback_sql: get(row, "rollback_sql")?,
        max_rows: get(row, "max_rows")?,
        approvals_required: get_u32(row, "approvals_required")?,
        approver_groups: get_json(row, "approver_groups_json")?,
        run_window: Duration::from_millis(u64::try_from(run_window_ms).unwrap_or(0)),
        created_at: Timestamp(get(row, "created_at")?),
        expires_at: Timestamp(get(row, "expires_at")?),
    };
    Ok(ChangeRequest {
        id: RequestId(get(row, "id")?),
        status: RequestStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("requests.status = {status:?}")))?,
        details,
        approved_at: get_ts(row, "approved_at")?,
        run_deadline: get_ts(row, "run_deadline")?,
        decided_by: get(row, "decided_by")?,
        decided_at: get_ts(row, "decided_at")?,
        decision_reason: get(row, "decision_reason")?,
        run: run_from_row(row, "run")?,
        rollback_run: run_from_row(row, "rb")?,
        updated_at: Timestamp(get(row, "updated_at")?),
    })
}

/// `status IN (...)` with the fixed status names (never user text).
fn status_list(statuses: &[RequestStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlStore {
    pub(crate) async fn create_request_impl(
        &self,
        d: &RequestDetails,
    ) -> Result<ChangeRequest, StoreError> {
        let key = d.exact_match();
        let mut tx = self.begin_write().await?;
        let mut head = self.lock_head(&mut tx).await?;
        let row = sqlx::query(INSERT)
            .bind(RequestStatus::Pending.as_str())
            .bind(&d.requester)
            .bind(&d.team)
            .bind(to_json(&d.groups)?)
            .bind(&d.application_name)
            .bind(&d.client_addr)
            .bind(&d.target)
            .bind(d.family.as_deref())
            .bind(&d.environment)
            .bind(d.engine.as_str())
            .bind(&d.statement)
            .bind(encode_params(&d.params))
            .bind(&key.key)
            .bind(&d.fingerprint)
            .bind(d.class.as_str())
            .bind(i64::from(d.statement_count))
            .bind(i64::from(d.transactional))
            .bind(to_json(&d.tables)?)
            .bind(&d.summary)
            .bind(d.ai_summary.as_deref())
            .bind(d.risk.as_str())
            .bind(to_json(&d.risk_reasons)?)
            .bind(d.row_estimate)
            .bind(to_json(&d.earlier_runs)?)
            .bind(d.reason.as_deref())
            .bind(d.description.as_deref())
            .bind(d.rollback_sql.as_deref())
            .bind(d.max_rows)
            .bind(i64::from(d.approvals_required))
            .bind(to_json(&d.approver_groups)?)
            .bind(ms(d.run_window))
            .bind(d.created_at.0)
            .bind(d.expires_at.0)
            .bind(d.created_at.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let id = RequestId(row.try_get("id").map_err(db)?);
        // One open request per statement: a concurrent hold that got here
        // first keeps it (the store, not the caller's duplicate check, decides).
        let claimed = sqlx::query(
            "INSERT INTO open_holds (target, requester, match_key, request_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&d.target)
        .bind(&d.requester)
        .bind(&key.key)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if claimed.rows_affected() != 1 {
            let holder = sqlx::query(
                "SELECT request_id FROM open_holds WHERE target = $1 AND requester = $2 AND match_key = $3",
            )
            .bind(&d.target)
            .bind(&d.requester)
            .bind(&key.key)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let holder = RequestId(get(&holder, "request_id")?);
            tx.rollback().await.map_err(db)?;
            return Err(StoreError::AlreadyOpen(holder));
        }
        let event = NewAuditEvent::new(
            d.created_at,
            &d.requester,
            kinds::REQUEST_CREATED,
            Some(id),
            json!({
                "target": d.target,
                "environment": d.environment,
                "class": d.class.as_str(),
                "statement": d.statement,
                "params": d.params.len(),
                "match_key": key.key,
                "fingerprint": d.fingerprint,
                "risk": d.risk.as_str(),
                "reason": d.reason,
                "rollback_sql": d.rollback_sql,
                "max_rows": d.max_rows,
                "approvals_required": d.approvals_required,
                "approver_groups": d.approver_groups,
                "expires_at": d.expires_at,
                "client_addr": d.client_addr,
                "application_name": d.application_name,
            }),
        );
        self.log_request_change(&mut tx, &mut head, &event).await?;
        tx.commit().await.map_err(db)?;
        self.announce(StoreEvent::Request(id));
        Ok(ChangeRequest {
            id,
            status: RequestStatus::Pending,
            details: d.clone(),
            approved_at: None,
            run_deadline: None,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            run: RunRecord::default(),
            rollback_run: RunRecord::default(),
            updated_at: d.created_at,
        })
    }

    pub(crate) async fn get_request_impl(
        &self,
        id: RequestId,
    ) -> Result<Option<ChangeRequest>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM requests WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(request_from_row).transpose()
    }

    pub(crate) async fn list_requests_impl(
        &self,
        f: &RequestFilter,
    ) -> Result<Vec<ChangeRequest>, StoreError> {
        // PostgreSQL needs the types of parameters that are only tested for NULL.
        let (text, int) = match self.backend {
            Backend::Sqlite => ("", ""),
            Backend::Postgres => ("::text", "::bigint"),
        };
        let mut sql = format!(
            "SELECT {COLUMNS} FROM requests WHERE ($1{text} IS NULL OR requester = $1) \
             AND ($2{text} IS NULL OR target = $2) AND ($3{int} IS NULL OR id < $3)"
        );
        if !f.statuses.is_empty() {
            sql.push_str(&format!(" AND status IN ({})", status_list(&f.statuses)));
        }
        sql.push_str(" ORDER BY id DESC LIMIT $4");
        let limit = f.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(f.requester.as_deref())
            .bind(f.target.as_deref())
            .bind(f.before.map(|b| b.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(request_from_row).collect()
    }

    pub(crate) async fn find_open_exact_impl(
        &self,
        key: &ExactMatch,
    ) -> Result<Option<ChangeRequest>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM requests WHERE match_key = $1 AND target = $2 AND requester = $3 \
             AND status IN ('pending', 'approved') ORDER BY id DESC"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&key.key)
            .bind(&key.target)
            .bind(&key.requester)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for row in &rows {
            let request = request_from_row(row)?;
            if key.matches(&request) {
                return Ok(Some(request));
            }
        }
        Ok(None)
    }

    pub(crate) async fn approvals_impl(&self, id: RequestId) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, approver, at, via, comment FROM approvals WHERE request_id = $1 ORDER BY at, approver",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(Approval {
                    request_id: RequestId(get(row, "request_id")?),
                    approver: get(row, "approver")?,
                    at: Timestamp(get(row, "at")?),
                    via: get(row, "via")?,
                    comment: get(row, "comment")?,
                })
            })
            .collect()
    }

    async fn load_in(&self, tx: &mut Tx, id: RequestId) -> Result<ChangeRequest, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM requests WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound(id))?;
        request_from_row(&row)
    }

    pub(crate) async fn record_approval_impl(
        &self,
        a: &Approval,
    ) -> Result<Result<ApprovalOutcome, Refusal>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut head = self.lock_head(&mut tx).await?;
        let request = self.load_in(&mut tx, a.request_id).await?;
        // Re-checked under the lock: what a concurrent decision may have changed.
        let refusal = if request.status != RequestStatus::Pending {
            Some(Refusal::WrongStatus {
                status: request.status,
                action: "approved".to_string(),
            })
        } else if a.at >= request.details.expires_at {
            Some(Refusal::Expired {
                at: request.details.expires_at,
            })
        } else if a.approver == request.details.requester {
            Some(Refusal::OwnRequest)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(refusal));
        }
        let inserted = sqlx::query(
            "INSERT INTO approvals (request_id, approver, at, via, comment) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (request_id, approver) DO NOTHING",
        )
        .bind(a.request_id.0)
        .bind(&a.approver)
        .bind(a.at.0)
        .bind(&a.via)
        .bind(a.comment.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(Refusal::AlreadyApproved));
        }
        let approvers: Vec<String> = sqlx::query(
            "SELECT approver FROM approvals WHERE request_id = $1 ORDER BY at, approver",
        )
        .bind(a.request_id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get::<String, _>("approver").map_err(db))
        .collect::<Result<_, _>>()?;
        let have = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
        let need = request.details.approvals_required.max(1);
        let recorded = NewAuditEvent::new(
            a.at,
            &a.approver,
            kinds::APPROVAL_RECORDED,
            Some(a.request_id),
            json!({ "via": a.via, "comment": a.comment, "have": have, "need": need }),
        );
        self.log_request_change(&mut tx, &mut head, &recorded)
            .await?;
        let outcome = if have >= need {
            let patch = RequestPatch {
                approved_at: Some(a.at),
                run_deadline: Some(a.at.plus(request.details.run_window)),
                decided_by: Some(a.approver.clone()),
                decided_at: Some(a.at),
                ..RequestPatch::default()
            };
            let event = NewAuditEvent::transition(
                a.at,
                &a.approver,
                a.request_id,
                RequestStatus::Pending,
                RequestStatus::Approved,
                json!({ "approvers": approvers, "run_deadline": patch.run_deadline }),
            );
            let change = StatusChange {
                from: RequestStatus::Pending,
                to: RequestStatus::Approved,
                patch,
                event,
            };
            if !self
                .cas_in(&mut tx, &mut head, a.request_id, &change)
                .await?
            {
                return Err(corrupt(
                    "a pending request changed while the chain was locked",
                ));
            }
            ApprovalOutcome::Approved { have }
        } else {
            ApprovalOutcome::Recorded { have, need }
        };
        tx.commit().await.map_err(db)?;
        self.announce(StoreEvent::Request(a.request_id));
        Ok(Ok(outcome))
    }

    /// The compare-and-set inside a transaction that holds the chain's lock;
    /// appends the change's audit event when it wins.
    async fn cas_in(
        &self,
        tx: &mut Tx,
        head: &mut airlock_core::AuditHead,
        id: RequestId,
        c: &StatusChange,
    ) -> Result<bool, StoreError> {
        let p = &c.patch;
        let done = sqlx::query(CAS)
            .bind(c.to.as_str())
            .bind(c.event.at.0)
            .bind(ts(p.approved_at))
            .bind(ts(p.run_deadline))
            .bind(p.decided_by.as_deref())
            .bind(ts(p.decided_at))
            .bind(p.decision_reason.as_deref())
            .bind(p.run.by.as_deref())
            .bind(ts(p.run.started_at))
            .bind(ts(p.run.finished_at))
            .bind(p.run.rows_affected)
            .bind(p.run.command_tag.as_deref())
            .bind(p.run.duration_ms)
            .bind(p.run.error.as_deref())
            .bind(p.run.upstream_xid.as_deref())
            .bind(p.rollback_run.by.as_deref())
            .bind(ts(p.rollback_run.started_at))
            .bind(ts(p.rollback_run.finished_at))
            .bind(p.rollback_run.rows_affected)
            .bind(p.rollback_run.command_tag.as_deref())
            .bind(p.rollback_run.duration_ms)
            .bind(p.rollback_run.error.as_deref())
            .bind(p.rollback_run.upstream_xid.as_deref())
            .bind(id.0)
            .bind(c.from.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if c.from.is_open() && !c.to.is_open() {
            // The statement may be held again as a new request.
            sqlx::query("DELETE FROM open_holds WHERE request_id = $1")
                .bind(id.0)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        self.log_request_change(tx, head, &c.event).await?;
        Ok(true)
    }

    pub(crate) async fn transition_impl(
        &self,
        id: RequestId,
        c: &StatusChange,
    ) -> Result<bool, StoreError> {
        if !is_allowed(c.from, c.to) {
            return Err(StoreError::InvalidTransition {
                from: c.from,
                to: c.to,
            });
        }
        if c.event.request_id != Some(id) {
            return Err(corrupt(format!(
                "the audit event of a change to request {id} names another request"
            )));
        }
        let mut tx = self.begin_write().await?;
        let mut head = self.lock_head(&mut tx).await?;
        if self.cas_in(&mut tx, &mut head, id, c).await? {
            tx.commit().await.map_err(db)?;
            self.announce(StoreEvent::Request(id));
            return Ok(true);
        }
        let exists = sqlx::query("SELECT COUNT(*) AS n FROM requests WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let n: i64 = exists.try_get("n").map_err(db)?;
        tx.rollback().await.map_err(db)?;
        if n == 0 {
            Err(StoreError::NotFound(id))
        } else {
            Ok(false)
        }
    }

    pub(crate) async fn request_counts_impl(
        &self,
    ) -> Result<Vec<(RequestStatus, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM requests GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                let status: String = get(row, "status")?;
                let n: i64 = get(row, "n")?;
                let status = RequestStatus::parse(&status)
                    .ok_or_else(|| corrupt(format!("requests.status = {status:?}")))?;
                Ok((status, n))
            })
            .collect()
    }

    pub(crate) async fn set_upstream_session_impl(
        &self,
        id: RequestId,
        during: RequestStatus,
        session: &UpstreamSession,
    ) -> Result<bool, StoreError> {
        let sql = match during {
            RequestStatus::Running => {
                "UPDATE requests SET run_xid = COALESCE($1, run_xid), run_backend = $2 \
                 WHERE id = $3 AND status = 'running'"
            }
            RequestStatus::RollingBack => {
                "UPDATE requests SET rb_xid = COALESCE($1, rb_xid), rb_backend = $2 \
                 WHERE id = $3 AND status = 'rolling_back'"
            }
            _ => return Ok(false),
        };
        let done = sqlx::query(sql)
            .bind(session.xid.as_deref())
            .bind(session.backend.as_deref())
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn expire_due_impl(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(RequestId, RequestStatus)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut head = self.lock_head(&mut tx).await?;
        let rows = sqlx::query(
            "SELECT id, status FROM requests WHERE (status = 'pending' AND expires_at <= $1) \
             OR (status = 'approved' AND run_deadline <= $1) ORDER BY id",
        )
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut expired = Vec::new();
        for row in &rows {
            let id = RequestId(get(row, "id")?);
            let status: String = get(row, "status")?;
            let from = RequestStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("requests.status = {status:?}")))?;
            let change = StatusChange {
                from,
                to: RequestStatus::Expired,
                patch: RequestPatch {
                    decided_by: Some(SYSTEM_ACTOR.to_string()),
                    decided_at: Some(now),
                    decision_reason: Some(expiry_reason(from).to_string()),
                    ..RequestPatch::default()
                },
                event: NewAuditEvent::transition(
                    now,
                    SYSTEM_ACTOR,
                    id,
                    from,
                    RequestStatus::Expired,
                    json!({}),
                ),
            };
            if self.cas_in(&mut tx, &mut head, id, &change).await? {
                expired.push((id, from));
            }
        }
        tx.commit().await.map_err(db)?;
        for (id, _) in &expired {
            self.announce(StoreEvent::Request(*id));
        }
        Ok(expired)
    }
}
