//! `airlock submit`: a statement or a whole script file as ONE change
//! request, through the API (the same path as a statement held in a session).

use crate::client::ApiClient;
use crate::requests_cmd::ApiArgs;
use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What to submit.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Protected target the change is for.
    #[arg(long)]
    pub target: String,
    /// SQL file (`-` for stdin); the whole file is one request, run atomically.
    #[arg(long)]
    pub file: PathBuf,
    /// Why the change is needed.
    #[arg(long)]
    pub reason: Option<String>,
    /// A longer description for reviewers.
    #[arg(long)]
    pub description: Option<String>,
    /// File with the rollback statement, reviewed with the change.
    #[arg(long, conflicts_with = "rollback")]
    pub rollback_file: Option<PathBuf>,
    /// The rollback statement, reviewed with the change.
    #[arg(long)]
    pub rollback: Option<String>,
    /// Row guard: more rows affected rolls the change back.
    #[arg(long)]
    pub max_rows: Option<i64>,
}

fn read_sql(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading SQL from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs `airlock submit`.
pub fn run(api: ApiArgs, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let sql = read_sql(&args.file)?;
    let rollback = match (&args.rollback_file, &args.rollback) {
        (Some(f), _) => Some(read_sql(f)?),
        (None, r) => r.clone(),
    };
    let client = ApiClient::new(&api.url, api.token.clone())?;
    let body = json!({
        "target": args.target,
        "sql": sql,
        "reason": args.reason,
        "description": args.description,
        "rollback": rollback,
        "max_rows": args.max_rows,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, value) =
        runtime.block_on(client.call(Method::POST, "/api/v1/requests", Some(body)))?;
    if !status.is_success() {
        let code = value["error"]["code"].as_str().unwrap_or("error");
        let message = value["error"]["message"].as_str().unwrap_or("(no message)");
        if api.json {
            println!("{value}");
        }
        eprintln!("airlock: {message} ({code}, HTTP {})", status.as_u16());
        return Ok(ExitCode::FAILURE);
    }
    if api.json {
        println!("{value}");
    } else {
        print!("{}", human(&value));
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

fn human(v: &Value) -> String {
    let r = &v["request"];
    let mut out = String::new();
    if v["created"].as_bool() == Some(true) {
        let groups = r["approver_groups"]
            .as_array()
            .map(|g| g.iter().map(text).collect::<Vec<_>>().join(", "))
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "the target's groups".to_string());
        out.push_str(&format!(
            "request #{} created on {} ({}): {} approval(s) needed from {}\n",
            text(&r["id"]),
            text(&r["target"]),
            text(&r["status"]),
            text(&r["approvals_required"]),
            groups
        ));
        out.push_str(&format!("summary: {}\n", text(&r["summary"])));
        out.push_str(&format!("risk: {}", text(&r["risk"])));
        if let Some(reasons) = r["risk_reasons"].as_array().filter(|a| !a.is_empty()) {
            let reasons: Vec<String> = reasons.iter().map(text).collect();
            out.push_str(&format!(" ({})", reasons.join("; ")));
        }
        out.push('\n');
        out.push_str(&format!(
            "once approved: airlock requests run {}\n",
            text(&r["id"])
        ));
    } else {
        out.push_str(&format!(
            "request #{} ({}): {}\n",
            text(&r["id"]),
            text(&r["status"]),
            text(&v["note"])
        ));
    }
    out
}
