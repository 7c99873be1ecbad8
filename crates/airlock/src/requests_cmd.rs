//! `airlock requests …`: the CLI on top of the JSON API.

use crate::client::ApiClient;
use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// How long the CLI waits for a run or rollback: as long as the statement
/// may take upstream (the run goes on in airlock if the CLI gives up).
const RUN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Where the API is, who calls it, how to print.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Base URL of airlock's HTTP listener.
    #[arg(
        long,
        env = "AIRLOCK_URL",
        default_value = "http://127.0.0.1:6480",
        global = true
    )]
    pub url: String,
    /// API token (from `airlock token`; its hash is the user's api_token_sha256).
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to do with requests.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RequestsAction {
    /// List change requests, newest first.
    List {
        /// Only these statuses (comma-separated: pending,approved,…).
        #[arg(long)]
        status: Option<String>,
        /// Only on this target.
        #[arg(long)]
        target: Option<String>,
        /// Only this requester's.
        #[arg(long)]
        requester: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one request with its context and approvals.
    Show {
        /// Request number (`42` or `#42`).
        id: String,
    },
    /// Approve a request.
    Approve {
        /// Request number.
        id: String,
        /// Optional comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request, with a reason the requester sees.
    Reject {
        /// Request number.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Cancel your own request (or anyone's, as an admin).
    Cancel {
        /// Request number.
        id: String,
        /// Optional note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Run your approved request once (exit status 1 when it failed).
    Run {
        /// Request number.
        id: String,
    },
    /// Run the approved rollback of your executed request (exit status 1 when it failed).
    Rollback {
        /// Request number.
        id: String,
    },
}

fn request_number(text: &str) -> anyhow::Result<i64> {
    Ok(text
        .parse::<airlock_core::RequestId>()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .0)
}

/// Appends `key=value` to a query string, percent-encoding the value.
fn push_query(q: &mut String, key: &str, value: &str) {
    q.push(if q.is_empty() { '?' } else { '&' });
    q.push_str(key);
    q.push('=');
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            q.push(b as char);
        } else {
            let _ = write!(q, "%{b:02X}");
        }
    }
}

/// Runs a `requests` subcommand.
pub fn run(api: ApiArgs, action: RequestsAction) -> anyhow::Result<ExitCode> {
    let mut client = ApiClient::new(&api.url, api.token.clone())?;
    let (method, path, body) = match &action {
        RequestsAction::List {
            status,
            target,
            requester,
            limit,
        } => {
            let mut q = String::new();
            for (k, v) in [
                ("status", status),
                ("target", target),
                ("requester", requester),
            ] {
                if let Some(v) = v {
                    push_query(&mut q, k, v);
                }
            }
            if let Some(l) = limit {
                push_query(&mut q, "limit", &l.to_string());
            }
            (Method::GET, format!("/api/v1/requests{q}"), None)
        }
        RequestsAction::Show { id } => (
            Method::GET,
            format!("/api/v1/requests/{}", request_number(id)?),
            None,
        ),
        RequestsAction::Approve { id, comment } => (
            Method::POST,
            format!("/api/v1/requests/{}/approve", request_number(id)?),
            Some(json!({ "comment": comment })),
        ),
        RequestsAction::Reject { id, reason } => (
            Method::POST,
            format!("/api/v1/requests/{}/reject", request_number(id)?),
            Some(json!({ "reason": reason })),
        ),
        RequestsAction::Cancel { id, note } => (
            Method::POST,
            format!("/api/v1/requests/{}/cancel", request_number(id)?),
            Some(json!({ "note": note })),
        ),
        RequestsAction::Run { id } => {
            client = client.with_timeout(RUN_TIMEOUT);
            (
                Method::POST,
                format!("/api/v1/requests/{}/run", request_number(id)?),
                None,
            )
        }
        RequestsAction::Rollback { id } => {
            client = client.with_timeout(RUN_TIMEOUT);
            (
                Method::POST,
                format!("/api/v1/requests/{}/rollback", request_number(id)?),
                None,
            )
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, value) = runtime.block_on(client.call(method, &path, body))?;
    finish(&action, api.json, status, &value)
}

/// Prints an API answer (the error of a refused call on stderr) and gives
/// the exit status: failure when the call was refused or the run failed.
pub(crate) fn finish(
    action: &RequestsAction,
    json: bool,
    status: hyper::StatusCode,
    value: &Value,
) -> anyhow::Result<ExitCode> {
    if !status.is_success() {
        let code = value["error"]["code"].as_str().unwrap_or("error");
        let message = value["error"]["message"].as_str().unwrap_or("(no message)");
        if json {
            println!("{value}");
        }
        eprintln!("airlock: {message} ({code}, HTTP {})", status.as_u16());
        return Ok(ExitCode::FAILURE);
    }
    let run_failed = matches!(
        action,
        RequestsAction::Run { .. } | RequestsAction::Rollback { .. }
    ) && value["result"]["ok"].as_bool() != Some(true);
    if json {
        println!("{value}");
    } else {
        print!("{}", human(action, value));
    }
    if run_failed {
        if !json {
            eprintln!(
                "airlock: request #{} {}: {}",
                text(&value["request"]["id"]),
                text(&value["request"]["status"]),
                text(&value["result"]["error"])
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn time(v: &Value) -> String {
    v.as_i64().map_or_else(
        || "-".to_string(),
        |ms| airlock_core::Timestamp(ms).to_rfc3339(),
    )
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn human(action: &RequestsAction, v: &Value) -> String {
    let mut out = String::new();
    match action {
        RequestsAction::List { .. } => {
            let empty = Vec::new();
            let list = v["requests"].as_array().unwrap_or(&empty);
            if list.is_empty() {
                out.push_str("no requests\n");
                return out;
            }
            let _ = writeln!(
                out,
                "{:<6} {:<12} {:<20} {:<12} {:<24} SUMMARY",
                "ID", "STATUS", "TARGET", "REQUESTER", "CREATED"
            );
            for r in list {
                let _ = writeln!(
                    out,
                    "{:<6} {:<12} {:<20} {:<12} {:<24} {}",
                    format!("#{}", text(&r["id"])),
                    text(&r["status"]),
                    text(&r["target"]),
                    text(&r["requester"]),
                    time(&r["created_at"]),
                    one_line(&text(&r["summary"]), 60)
                );
            }
        }
        RequestsAction::Show { .. } => {
            let r = &v["request"];
            let _ = writeln!(out, "Request #{} — {}", text(&r["id"]), text(&r["status"]));
            for (label, key) in [
                ("Requester", "requester"),
                ("Team", "team"),
                ("Target", "target"),
                ("Environment", "environment"),
                ("Class", "class"),
                ("Risk", "risk"),
                ("Reason", "reason"),
                ("Description", "description"),
                ("Summary", "summary"),
                ("Row estimate", "row_estimate"),
                ("Max rows", "max_rows"),
                ("Rollback", "rollback_sql"),
                ("Decided by", "decided_by"),
                ("Decision", "decision_reason"),
            ] {
                if !r[key].is_null() {
                    let _ = writeln!(out, "{label:<13} {}", text(&r[key]));
                }
            }
            let _ = writeln!(out, "{:<13} {}", "Created", time(&r["created_at"]));
            let _ = writeln!(out, "{:<13} {}", "Expires", time(&r["expires_at"]));
            if let Some(reasons) = r["risk_reasons"].as_array().filter(|a| !a.is_empty()) {
                let _ = writeln!(out, "Risk reasons:");
                for reason in reasons {
                    let _ = writeln!(out, "  - {}", text(reason));
                }
            }
            let _ = writeln!(out, "Statement:");
            for line in text(&r["statement"]).lines() {
                let _ = writeln!(out, "  {line}");
            }
            match r["earlier_runs"].as_array().filter(|a| !a.is_empty()) {
                None => {
                    let _ = writeln!(out, "Earlier runs: none");
                }
                Some(runs) => {
                    let _ = writeln!(out, "Earlier runs:");
                    for run in runs {
                        let _ = writeln!(
                            out,
                            "  {} on {} by {}: rows {}, {} ms, {}",
                            time(&run["when"]),
                            text(&run["target"]),
                            text(&run["who"]),
                            text(&run["rows"]),
                            text(&run["duration_ms"]),
                            if run["success"].as_bool() == Some(true) {
                                "ok"
                            } else {
                                "failed"
                            }
                        );
                    }
                }
            }
            let approvals = v["approvals"].as_array().map_or(&[][..], Vec::as_slice);
            let _ = writeln!(
                out,
                "Approvals: {}/{}",
                approvals.len(),
                text(&r["approvals_required"])
            );
            for a in approvals {
                let _ = writeln!(
                    out,
                    "  {} at {} via {}{}",
                    text(&a["approver"]),
                    time(&a["at"]),
                    text(&a["via"]),
                    a["comment"]
                        .as_str()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                );
            }
        }
        RequestsAction::Approve { id, .. } => {
            let now_approved = v["outcome"]["outcome"].as_str() == Some("approved");
            let _ = writeln!(
                out,
                "{} #{} ({}/{} approvals){}",
                if now_approved {
                    "approved"
                } else {
                    "approval recorded for"
                },
                id.trim_start_matches('#'),
                text(&v["approvals"]),
                text(&v["approvals_required"]),
                if now_approved {
                    ": the requester can run it now"
                } else {
                    ""
                }
            );
        }
        RequestsAction::Reject { id, reason } => {
            let _ = writeln!(out, "rejected #{}: {reason}", id.trim_start_matches('#'));
        }
        RequestsAction::Cancel { id, .. } => {
            let _ = writeln!(out, "cancelled #{}", id.trim_start_matches('#'));
        }
        RequestsAction::Run { .. } | RequestsAction::Rollback { .. } => {
            let r = &v["request"];
            let res = &v["result"];
            let _ = write!(out, "request #{}: {}", text(&r["id"]), text(&r["status"]));
            if !res["command_tag"].is_null() {
                let _ = write!(out, ", {}", text(&res["command_tag"]));
            }
            if !res["rows_affected"].is_null() {
                let _ = write!(out, ", {} row(s) affected", text(&res["rows_affected"]));
            }
            let _ = writeln!(out, ", {} ms", text(&res["duration_ms"]));
        }
    }
    out
}
