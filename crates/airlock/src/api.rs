//! The JSON API under `/api/v1`: change requests and the audit trail, for
//! the CLI and scripts. Every call needs `Authorization: Bearer <token>`,
//! where the token's SHA-256 is a user's `api_token_sha256` in the config.
//! Errors are `{"error": {"code": "...", "message": "..."}}`.
//!
//! Besides reviewing, the API creates requests (`POST /api/v1/requests`, the
//! same path as a statement held in a session: one script is one request) and
//! runs approved requests or their rollback once (`…/run`, `…/rollback`).

use airlock_core::{
    Actor, ApprovalOutcome, ChangeRequest, Held, LiveConfig, Refusal, RequestFilter, RequestId,
    RequestStatus, RunResult, Workflow, WorkflowError,
};
use airlock_core::{Executors, RunReport};
use airlock_sql::{DirectiveKey, Directives};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ConnectInfo;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// Most requests one list call returns.
const LIST_LIMIT_MAX: u32 = 500;
/// Most audit events one call returns.
const AUDIT_LIMIT_MAX: u32 = 1000;
/// Audit events returned when no limit is given.
const AUDIT_LIMIT_DEFAULT: u32 = 100;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    workflow: Workflow,
    /// Users, tokens, targets and redaction in force (each request reads
    /// the current generation, so a reload applies to the next call).
    live: LiveConfig,
    /// Runs approved requests (absent: `run`/`rollback` answer 503).
    runner: Option<Executors>,
}

impl ApiState {
    /// Builds the state from the workflow and the configuration in force
    /// (users' token hashes, targets, redaction patterns).
    pub fn new(workflow: Workflow, live: LiveConfig) -> Self {
        ApiState {
            workflow,
            live,
            runner: None,
        }
    }

    /// The workflow service.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// `[server] public_url`, the address people reach this listener at.
    pub fn public_url(&self) -> Option<String> {
        self.live.current().server.public_url.clone()
    }

    /// A request as shown to people: statement and rollback redacted.
    pub fn present(&self, request: &ChangeRequest) -> ChangeRequest {
        let redactor = self.live.snapshot().redactor.clone();
        request.for_display(|sql| redactor.redact(sql))
    }

    /// The user whose API token has this SHA-256 (lowercase hex).
    pub fn actor_for_token_hash(&self, hash: &str) -> Option<Actor> {
        self.live
            .current()
            .users
            .iter()
            .find(|u| {
                u.api_token_sha256
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(hash))
            })
            .map(|u| Actor::new(u.name.clone(), u.groups.clone()))
    }

    /// Lets the API run approved requests and rollbacks with `runner`
    /// (the executor of each engine).
    pub fn with_runner(mut self, runner: Option<Executors>) -> Self {
        self.runner = runner;
        self
    }
}

/// The `/api/v1` routes (to be merged into the HTTP router).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/requests", get(list_requests).post(submit))
        .route("/api/v1/requests/{id}", get(show_request))
        .route("/api/v1/requests/{id}/approve", post(approve))
        .route("/api/v1/requests/{id}/reject", post(reject))
        .route("/api/v1/requests/{id}/cancel", post(cancel))
        .route("/api/v1/requests/{id}/run", post(run))
        .route("/api/v1/requests/{id}/rollback", post(rollback))
        .route("/api/v1/audit", get(audit_events))
        .route("/api/v1/audit/head", get(audit_head))
        .route("/api/v1/{*rest}", axum::routing::any(unknown_route))
        .with_state(state)
}

/// An API error: HTTP status, machine code, human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        let message = e.to_string();
        match &e {
            WorkflowError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            WorkflowError::UnknownTarget(_) => {
                ApiError::new(StatusCode::CONFLICT, "unknown_target", message)
            }
            WorkflowError::Refused(r) => {
                let status = match r {
                    Refusal::WrongStatus { .. } | Refusal::Expired { .. } => StatusCode::CONFLICT,
                    _ => StatusCode::FORBIDDEN,
                };
                ApiError::new(status, r.code(), message)
            }
            WorkflowError::Transition(_) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_status", message)
            }
            WorkflowError::Store(_) => {
                tracing::error!(error = %e, "API call failed in the store");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", message)
            }
            WorkflowError::NoExecutor(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "runs_unavailable", message)
            }
        }
    }
}

/// The authenticated caller and how they called (`cli` or `http`).
struct Caller {
    actor: Actor,
    via: &'static str,
    /// Client address and port (empty when unknown).
    addr: String,
}

/// Lowercase hex SHA-256 of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
        let text = header
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        let actor = state
            .actor_for_token_hash(&token_hash(token))
            .ok_or_else(|| unauthorized("unknown API token"))?;
        let via = match parts.headers.get(header::USER_AGENT) {
            Some(ua) if ua.as_bytes().starts_with(b"airlock-cli") => "cli",
            _ => "http",
        };
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.to_string())
            .unwrap_or_default();
        Ok(Caller { actor, via, addr })
    }
}

fn parse_id(text: &str) -> Result<RequestId, ApiError> {
    text.parse::<RequestId>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Parses an optional JSON body (empty means all defaults).
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    target: Option<String>,
    requester: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list_requests(
    State(state): State<ApiState>,
    _caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut statuses = Vec::new();
    for name in q
        .status
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        statuses.push(
            RequestStatus::parse(name)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {name:?}")))?,
        );
    }
    let filter = RequestFilter {
        statuses,
        requester: q.requester.filter(|s| !s.is_empty()),
        target: q.target.filter(|s| !s.is_empty()),
        before: q.before.map(RequestId),
        limit: Some(q.limit.unwrap_or(100).clamp(1, LIST_LIMIT_MAX)),
    };
    let requests: Vec<ChangeRequest> = state
        .workflow
        .list(&filter)
        .await?
        .iter()
        .map(|r| state.present(r))
        .collect();
    Ok(Json(json!({ "requests": requests })))
}

async fn show_request(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let request = state.workflow.get(id).await?;
    let approvals = state.workflow.approvals(id).await?;
    Ok(Json(
        json!({ "request": state.present(&request), "approvals": approvals }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    comment: Option<String>,
}

async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let body: ApproveBody = parse_body(&body)?;
    let outcome = state
        .workflow
        .approve(id, &caller.actor, caller.via, body.comment)
        .await?;
    let request = state.workflow.get(id).await?;
    let (have, need) = match outcome {
        ApprovalOutcome::Recorded { have, need } => (have, need),
        ApprovalOutcome::Approved { have } => (have, request.details.approvals_required),
    };
    Ok(Json(json!({
        "outcome": outcome,
        "approvals": have,
        "approvals_required": need,
        "request": state.present(&request),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

async fn reject(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let body: RejectBody = parse_body(&body)?;
    let reason = body
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "reason_required",
                "a rejection needs a reason: {\"reason\": \"...\"}",
            )
        })?;
    let request = state.workflow.reject(id, &caller.actor, &reason).await?;
    Ok(Json(json!({ "request": state.present(&request) })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    note: Option<String>,
}

async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let body: CancelBody = parse_body(&body)?;
    let request = state
        .workflow
        .cancel(id, &caller.actor, body.note.as_deref())
        .await?;
    Ok(Json(json!({ "request": state.present(&request) })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// Target name.
    target: Option<String>,
    /// The statement or script (one request; a leading `/* airlock: … */` is read).
    sql: Option<String>,
    reason: Option<String>,
    description: Option<String>,
    /// Rollback statement, reviewed and approved with the change.
    rollback: Option<String>,
    /// Row guard.
    max_rows: Option<i64>,
}

fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Creates a change request for a statement or a whole script, as the
/// caller, through the same path as a statement held in a session.
async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body: SubmitBody = parse_body(&body)?;
    let config = state.live.current();
    let target_name = given(body.target)
        .ok_or_else(|| ApiError::bad_request("a submission needs a \"target\""))?;
    let user = config.user(&caller.actor.name).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_user",
            format!("{} is no longer a configured user", caller.actor.name),
        )
    })?;
    let target = config.target(&target_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_target",
            format!("no target {target_name:?} in the configuration"),
        )
    })?;
    if !target.allows(user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "target_not_allowed",
            format!(
                "{} may not use target {:?} (allowed groups: {})",
                user.name,
                target.name,
                target.allowed_groups.join(", ")
            ),
        ));
    }
    if !target.protected {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_protected",
            format!(
                "target {:?} is not protected: changes run directly there, nothing to review",
                target.name
            ),
        ));
    }
    let raw = body.sql.unwrap_or_default();
    // A MySQL target's text is read by the MySQL lexer and classifier.
    let mysql_modes = airlock_sql::mysql_lexer::SqlModes::default();
    let mysql = target.engine == airlock_core::Engine::Mysql;
    let (directives, sql) = if mysql {
        airlock_sql::mysql::leading_directives_mysql(&raw, mysql_modes)
    } else {
        airlock_sql::leading_directives(&raw)
    };
    if let Some(bad) = directives.problems().first() {
        return Err(ApiError::bad_request(format!(
            "bad airlock comment at the start of the statement: {bad}"
        )));
    }
    let sql = sql.trim();
    let classification = airlock_sql::classify(sql);
    let mysql_verdict = mysql.then(|| airlock_sql::mysql::classify_mysql(sql, mysql_modes, &()));
    let (statement_count, read_only) = match &mysql_verdict {
        Some(v) => (v.statements.len(), v.passes()),
        None => (
            classification.statement_count,
            classification.read_only && classification.executes.is_empty(),
        ),
    };
    if sql.is_empty() || statement_count == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_statement",
            "the submission has no SQL statement",
        ));
    }
    if read_only {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "read_only",
            "every statement in the submission is read-only: nothing to review, run it directly through the proxy",
        ));
    }
    let mut settings = Directives::default();
    for key in [
        DirectiveKey::Reason,
        DirectiveKey::Description,
        DirectiveKey::Rollback,
        DirectiveKey::MaxRows,
    ] {
        if let Some(v) = directives.get(key) {
            settings.set(key, v.to_string());
        }
    }
    for (key, value) in [
        (DirectiveKey::Reason, given(body.reason)),
        (DirectiveKey::Description, given(body.description)),
        (DirectiveKey::Rollback, given(body.rollback)),
        (DirectiveKey::MaxRows, body.max_rows.map(|n| n.to_string())),
    ] {
        if let Some(v) = value {
            settings.set(key, v);
        }
    }
    if let Some(m) = settings.max_rows.as_deref() {
        if !m.trim().parse::<i64>().is_ok_and(|n| n >= 0) {
            return Err(ApiError::bad_request(format!(
                "max_rows must be a number of rows, not {m:?}"
            )));
        }
    }
    let application_name = if caller.via == "cli" {
        "airlock submit"
    } else {
        "airlock api"
    };
    let details = match &mysql_verdict {
        Some(v) => {
            let mut d = airlock_mysql::gate::request_details(
                user,
                target,
                &caller.addr,
                application_name,
                sql,
                v,
                mysql_modes,
            );
            d.apply_directives(&settings);
            d
        }
        None => airlock_pg::holding::request_details(
            user,
            target,
            &caller.addr,
            application_name,
            sql,
            classification.class,
            &settings,
        ),
    };
    let (status, created, request, note) = match state.workflow.hold(details).await {
        Ok(Held::Created(r)) => (StatusCode::CREATED, true, r, None),
        Ok(Held::StillPending(r)) => (
            StatusCode::OK,
            false,
            r,
            Some("the same statement is already pending approval: no new request was made"),
        ),
        Ok(Held::Approved(r)) => (
            StatusCode::OK,
            false,
            r,
            Some("the same statement is already approved: run it with `airlock requests run`"),
        ),
        Err(WorkflowError::Refused(Refusal::ReasonRequired { target })) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "reason_required",
                format!("target {target:?} requires a reason for changes: give --reason"),
            ))
        }
        Err(WorkflowError::Refused(refusal @ Refusal::TransactionControl { .. })) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                refusal.code(),
                refusal.to_string(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if created {
        tracing::info!(request = request.id.0, user = %user.name, target = %target.name, "change request submitted");
    }
    Ok((
        status,
        Json(json!({ "created": created, "note": note, "request": state.present(&request) })),
    ))
}

fn result_json(result: &RunResult) -> serde_json::Value {
    json!({
        "ok": result.error.is_none(),
        "rows_affected": result.rows_affected,
        "command_tag": result.command_tag,
        "duration_ms": result.duration_ms,
        "error": result.error,
    })
}

enum RunKind {
    Change,
    Rollback,
}

/// Runs an approved request (or the rollback of an executed one) once.
/// The run is its own task: a client that goes away does not interrupt it
/// between its start and its recorded result.
async fn run_request(
    state: ApiState,
    caller: Caller,
    id: &str,
    kind: RunKind,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(id)?;
    let runner = state.runner.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runs_unavailable",
            "this airlock process cannot run requests",
        )
    })?;
    let actor = caller.actor.clone();
    let task = tokio::spawn(async move {
        match kind {
            RunKind::Change => runner.run(id, &actor).await,
            RunKind::Rollback => runner.rollback(id, &actor).await,
        }
    });
    let ran: RunReport = task.await.map_err(|e| {
        tracing::error!(request = id.0, error = %e, "the run task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "the run of request {id} failed inside airlock: check `airlock requests show {}`",
                id.0
            ),
        )
    })??;
    let request: ChangeRequest = match ran.request {
        Some(r) => r,
        None => state.workflow.get(id).await?,
    };
    Ok(Json(
        json!({ "request": state.present(&request), "result": result_json(&ran.result) }),
    ))
}

async fn run(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    run_request(state, caller, &id, RunKind::Change).await
}

async fn rollback(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    run_request(state, caller, &id, RunKind::Rollback).await
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

async fn audit_events(
    State(state): State<ApiState>,
    _caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = q.after.unwrap_or(0).max(0);
    let limit = q
        .limit
        .unwrap_or(AUDIT_LIMIT_DEFAULT)
        .clamp(1, AUDIT_LIMIT_MAX);
    let events = state
        .workflow
        .store()
        .audit_events(after, limit)
        .await
        .map_err(WorkflowError::from)?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}

async fn audit_head(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let head = state
        .workflow
        .store()
        .audit_head()
        .await
        .map_err(WorkflowError::from)?;
    Ok(Json(
        json!({ "seq": head.seq, "hash": head.hash, "head": head.to_string() }),
    ))
}

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
}
