//! The request page, `GET /requests/{id}`: what the links in NOTICEs and
//! Slack messages open. A read-only HTML rendering of one change request
//! (the whole statement, redacted, with its context, approvals and runs).
//!
//! Browsers cannot send bearer tokens, so the page takes HTTP Basic
//! authentication with the airlock user name and that user's API token
//! (the same token the CLI uses); put airlock behind TLS when the page is
//! reached over a network. Everything shown is HTML-escaped.

use crate::api::{token_hash, ApiState};
use airlock_core::{Approval, ChangeRequest, RequestId, RunRecord, WorkflowError};
use axum::extract::{Path, State};
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
fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<String, &'static str> {
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
        Some(actor) if actor.name == user => Ok(actor.name.clone()),
        _ => Err("unknown user or token"),
    }
}

async fn request_page(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let viewer = match authenticate(&state, &headers) {
        Ok(u) => u,
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
    o.push_str("</table><h2>Statement</h2><pre>");
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
