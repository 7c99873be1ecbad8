//! The request page, `GET /requests/{id}`: what the links in NOTICEs and
//! Slack messages open. An HTML rendering of one change request (the whole
//! statement, redacted, with its context, approvals and runs) and, while it
//! is pending, Approve and Reject forms for reviewers who are not on Slack
//! (`POST /requests/{id}/approve|reject`, the same workflow rules as
//! everywhere else).
//!
//! Browsers cannot send bearer tokens, so the page takes HTTP Basic
//! authentication with the airlock user name and that user's API token
//! (the same token the CLI uses); put airlock behind TLS when the page is
//! reached over a network. Because browsers resend Basic credentials on
//! their own, a form post is accepted only when its `Origin` (or, lacking
//! it, `Referer`) is this listener itself or `server.public_url`: another
//! site cannot make a signed-in reviewer's browser decide. Everything shown
//! is HTML-escaped.

use crate::api::{token_hash, ApiState};
use airlock_core::{
    Actor, Approval, ApprovalOutcome, ChangeRequest, RequestId, RequestStatus, RunRecord,
    WorkflowError,
};
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use std::fmt::Write;

/// The page's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/requests/{id}", get(request_page))
        .route("/requests/{id}/approve", axum::routing::post(approve_form))
        .route("/requests/{id}/reject", axum::routing::post(reject_form))
        .with_state(state)
}

/// Escapes text for HTML element content and attribute values.
// Five replacements; a templating crate would be more than this needs.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"airlock\", charset=\"UTF-8\"",
        )],
        format!("{why}: sign in with your airlock user name and API token\n"),
    )
        .into_response()
}

/// The user the Basic credentials belong to, if the token is theirs.
fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Actor, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("authentication required")?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or("Basic authentication required")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("malformed credentials")?;
    let (user, token) = decoded.split_once(':').ok_or("malformed credentials")?;
    match state.actor_for_token_hash(&token_hash(token)) {
        Some(actor) if actor.name == user => Ok(actor),
        _ => Err("unknown user or token"),
    }
}

async fn request_page(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let viewer = match authenticate(&state, &headers) {
        Ok(actor) => actor.name,
        Err(why) => return unauthorized(why),
    };
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such request\n").into_response();
    };
    let workflow = state.workflow();
    let request = match workflow.get(RequestId(id)).await {
        Ok(r) => r,
        Err(WorkflowError::NotFound(_)) => {
            return (StatusCode::NOT_FOUND, "no such request\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "request page");
            return (StatusCode::SERVICE_UNAVAILABLE, "the state store failed\n").into_response();
        }
    };
    let approvals = workflow.approvals(request.id).await.unwrap_or_default();
    Html(render(&state.present(&request), &approvals, &viewer)).into_response()
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// Whether a form post comes from this listener's own pages (CSRF guard).
fn same_origin(state: &ApiState, headers: &HeaderMap) -> bool {
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match header_text(header::ORIGIN) {
        Some(o) => Some(o),
        None => header_text(header::REFERER).and_then(origin_of),
    };
    let Some(claimed) = claimed else {
        return false;
    };
    let mut allowed: Vec<String> = Vec::new();
    if let Some(host) = header_text(header::HOST) {
        allowed.push(format!("http://{host}"));
        allowed.push(format!("https://{host}"));
    }
    if let Some(origin) = state.public_url().as_deref().and_then(origin_of) {
        allowed.push(origin.to_string());
    }
    allowed.iter().any(|a| a.eq_ignore_ascii_case(claimed))
}

fn message_page(status: StatusCode, id: i64, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>airlock request #{id}</title></head>\
         <body><p>{}</p><p><a href=\"/requests/{id}\">Back to request #{id}</a></p></body></html>\n",
        html(text)
    );
    (status, Html(body)).into_response()
}

/// Checks credentials, origin and the id of a form post.
fn form_caller(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Actor, RequestId), Box<Response>> {
    let actor = authenticate(state, headers).map_err(|why| Box::new(unauthorized(why)))?;
    let id = id
        .parse::<i64>()
        .map_err(|_| Box::new((StatusCode::NOT_FOUND, "no such request\n").into_response()))?;
    if !same_origin(state, headers) {
        return Err(Box::new(message_page(
            StatusCode::FORBIDDEN,
            id,
            "refused: the form was not posted from airlock's own page",
        )));
    }
    Ok((actor, RequestId(id)))
}

fn decision_failed(id: RequestId, e: WorkflowError) -> Response {
    match e {
        WorkflowError::Refused(r) => {
            message_page(StatusCode::CONFLICT, id.0, &format!("Refused: {r}"))
        }
        WorkflowError::NotFound(_) => (StatusCode::NOT_FOUND, "no such request\n").into_response(),
        other => {
            tracing::error!(error = %other, request = id.0, "a decision from the request page failed");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                id.0,
                "airlock could not record the decision",
            )
        }
    }
}

fn back_to(id: RequestId) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/requests/{}", id.0))],
    )
        .into_response()
}

async fn approve_form(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (actor, id) = match form_caller(&state, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match state.workflow().approve(id, &actor, "web", None).await {
        Ok(ApprovalOutcome::Approved { .. } | ApprovalOutcome::Recorded { .. }) => back_to(id),
        Err(e) => decision_failed(id, e),
    }
}

/// The reject form's fields.
#[derive(Debug, serde::Deserialize)]
struct RejectForm {
    reason: String,
}

async fn reject_form(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<RejectForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (actor, id) = match form_caller(&state, &headers, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let reason = form
        .map(|Form(f)| f.reason.trim().to_string())
        .unwrap_or_default();
    if reason.is_empty() {
        return message_page(StatusCode::BAD_REQUEST, id.0, "A rejection needs a reason.");
    }
    match state.workflow().reject(id, &actor, &reason).await {
        Ok(_) => back_to(id),
        Err(e) => decision_failed(id, e),
    }
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        "<tr><th>{}</th><td>{}</td></tr>",
        html(label),
        html(value)
    );
}

fn run_rows(out: &mut String, label: &str, run: &RunRecord) {
    if run.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if let Some(by) = &run.by {
        parts.push(format!("by {by}"));
    }
    if let Some(at) = run.started_at {
        parts.push(format!("started {}", at.to_rfc3339()));
    }
    if let Some(rows) = run.rows_affected {
        parts.push(format!("{rows} row(s)"));
    }
    if let Some(tag) = &run.command_tag {
        parts.push(tag.clone());
    }
    if let Some(ms) = run.duration_ms {
        parts.push(format!("{ms} ms"));
    }
    if let Some(e) = &run.error {
        parts.push(format!("error: {e}"));
    }
    row(out, label, &parts.join(" · "));
}

/// The page's HTML.
pub fn render(r: &ChangeRequest, approvals: &[Approval], viewer: &str) -> String {
    let d = &r.details;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>airlock request #{id}</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}th{{text-align:left;vertical-align:top;padding-right:1em}}pre{{background:#f4f4f4;padding:1em;white-space:pre-wrap}}</style>\
         </head><body><h1>Request #{id} · {status}</h1><p>Signed in as {viewer}.</p><table>",
        id = r.id.0,
        status = html(r.status.as_str()),
        viewer = html(viewer),
    );
    row(
        &mut o,
        "Requester",
        &format!("{} ({})", d.requester, d.team),
    );
    row(
        &mut o,
        "Target",
        &format!("{} ({})", d.target, d.environment),
    );
    if let Some(f) = &d.family {
        row(&mut o, "Family", f);
    }
    row(&mut o, "Application", &d.application_name);
    row(&mut o, "Client", &d.client_addr);
    row(&mut o, "Class", d.class.as_str());
    row(&mut o, "Tables", &d.tables.join(", "));
    row(
        &mut o,
        "Risk",
        &format!("{} {}", d.risk, d.risk_reasons.join("; ")),
    );
    row(
        &mut o,
        "Row estimate",
        &d.row_estimate
            .map_or("not available".into(), |n| format!("about {n:.0} row(s)")),
    );
    row(&mut o, "Reason", d.reason.as_deref().unwrap_or("(none)"));
    if let Some(desc) = &d.description {
        row(&mut o, "Description", desc);
    }
    row(&mut o, "Summary", &d.summary);
    if let Some(ai) = &d.ai_summary {
        row(&mut o, "AI summary (unverified)", ai);
    }
    row(&mut o, "Fingerprint", &d.fingerprint);
    row(&mut o, "Created", &d.created_at.to_rfc3339());
    row(&mut o, "Expires", &d.expires_at.to_rfc3339());
    row(
        &mut o,
        "Approvals",
        &format!(
            "{} of {}: {}",
            approvals.len(),
            d.approvals_required,
            approvals
                .iter()
                .map(|a| format!("{} via {} at {}", a.approver, a.via, a.at.to_rfc3339()))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    if let Some(by) = &r.decided_by {
        row(
            &mut o,
            "Decided by",
            &format!("{by}: {}", r.decision_reason.as_deref().unwrap_or("")),
        );
    }
    run_rows(&mut o, "Run", &r.run);
    run_rows(&mut o, "Rollback run", &r.rollback_run);
    o.push_str("</table>");
    if r.status == RequestStatus::Pending && viewer != d.requester {
        let _ = write!(
            o,
            "<h2>Decide</h2><form method=\"post\" action=\"/requests/{id}/approve\"><button type=\"submit\">Approve</button></form>\
             <form method=\"post\" action=\"/requests/{id}/reject\"><p><label>Reason for rejecting<br>\
             <textarea name=\"reason\" rows=\"3\" cols=\"60\" required></textarea></label></p>\
             <button type=\"submit\">Reject</button></form>",
            id = r.id.0
        );
    }
    o.push_str("<h2>Statement</h2><pre>");
    // `request` comes through `ApiState::present`: statements are redacted.
    o.push_str(&html(&d.statement));
    o.push_str("</pre>");
    if !d.params.is_empty() {
        let _ = write!(o, "<p>With {} bound parameter(s).</p>", d.params.len());
    }
    o.push_str("<h2>Rollback</h2>");
    match &d.rollback_sql {
        Some(sql) => {
            o.push_str("<pre>");
            o.push_str(&html(sql));
            o.push_str("</pre>");
        }
        None => o.push_str("<p>None given.</p>"),
    }
    o.push_str("<h2>Earlier runs in lower environments</h2>");
    if d.earlier_runs.is_empty() {
        o.push_str(
            "<p><strong>None</strong>: this statement never ran in a lower environment.</p>",
        );
    } else {
        o.push_str("<table><tr><th>When</th><th>Where</th><th>Who</th><th>Rows</th><th>ms</th><th>Outcome</th></tr>");
        for e in &d.earlier_runs {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&e.when.to_rfc3339()),
                html(&e.target),
                html(&e.environment),
                html(&e.who),
                e.rows.map_or("?".into(), |n| n.to_string()),
                e.duration_ms,
                if e.success { "succeeded" } else { "failed" }
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::html;

    #[test]
    fn html_escapes_markup() {
        assert_eq!(
            html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
