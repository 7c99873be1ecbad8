//! The JSON API under `/api/v1`: change requests and the audit trail, for
//! the CLI and scripts. Every call needs `Authorization: Bearer <token>`,
//! where the token's SHA-256 is a user's `api_token_sha256` in the config.
//! Errors are `{"error": {"code": "...", "message": "..."}}`.

use airlock_core::{
    Actor, ApprovalOutcome, Config, Refusal, RequestFilter, RequestId, RequestStatus, Workflow,
    WorkflowError,
};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
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
use std::collections::HashMap;
use std::sync::Arc;

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
    /// Lowercase hex SHA-256 of a token → the user it belongs to.
    tokens: Arc<HashMap<String, Actor>>,
}

impl ApiState {
    /// Builds the state from the workflow and the users' token hashes.
    pub fn new(workflow: Workflow, config: &Config) -> Self {
        let tokens = config
            .users
            .iter()
            .filter_map(|u| {
                u.api_token_sha256.as_ref().map(|h| {
                    (
                        h.to_ascii_lowercase(),
                        Actor::new(u.name.clone(), u.groups.clone()),
                    )
                })
            })
            .collect();
        ApiState {
            workflow,
            tokens: Arc::new(tokens),
        }
    }
}

/// The `/api/v1` routes (to be merged into the HTTP router).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/requests", get(list_requests))
        .route("/api/v1/requests/{id}", get(show_request))
        .route("/api/v1/requests/{id}/approve", post(approve))
        .route("/api/v1/requests/{id}/reject", post(reject))
        .route("/api/v1/requests/{id}/cancel", post(cancel))
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
        }
    }
}

/// The authenticated caller and how they called (`cli` or `http`).
struct Caller {
    actor: Actor,
    via: &'static str,
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
            .tokens
            .get(&token_hash(token))
            .cloned()
            .ok_or_else(|| unauthorized("unknown API token"))?;
        let via = match parts.headers.get(header::USER_AGENT) {
            Some(ua) if ua.as_bytes().starts_with(b"airlock-cli") => "cli",
            _ => "http",
        };
        Ok(Caller { actor, via })
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
    let requests = state.workflow.list(&filter).await?;
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
    Ok(Json(json!({ "request": request, "approvals": approvals })))
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
        "request": request,
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
    Ok(Json(json!({ "request": request })))
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
    Ok(Json(json!({ "request": request })))
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
