//! `airlock audit verify|head|export`: work on the state store directly, no
//! server needed.

use crate::config_file;
use airlock_core::audit::{AuditFault, AuditViolation};
use airlock_core::{AuditEvent, AuditHead, ChainVerifier, Store};
use airlock_store::SqlStore;
use anyhow::Context;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Events read per page.
const PAGE: u32 = 1000;

/// What to do with the audit trail.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditAction {
    /// Check the hash chain; exit 1 and name the first bad event if it is broken.
    Verify {
        /// Configuration file (its `[store]` is read).
        #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
        /// A head kept elsewhere (`SEQ:HASH`, from `audit head` or the serve log):
        /// the chain must still contain it (detects a truncated or rewritten tail).
        #[arg(long)]
        head: Option<AuditHead>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the chain's head (`SEQ:HASH`).
    Head {
        /// Configuration file.
        #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every event to stdout (for a SIEM).
    Export {
        /// Configuration file.
        #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
        /// Output format (only `jsonl`: one JSON object per line).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

/// Runs an `audit` subcommand.
pub fn run(action: AuditAction) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match action {
            AuditAction::Verify { config, head, json } => {
                let store = open(&config).await?;
                let code = verify(&store, head, json).await;
                store.close().await;
                code
            }
            AuditAction::Head { config, json } => {
                let store = open(&config).await?;
                let head = store.audit_head().await.context("reading the audit head")?;
                store.close().await;
                if json {
                    println!(
                        "{}",
                        json!({ "seq": head.seq, "hash": head.hash, "head": head.to_string() })
                    );
                } else {
                    println!("{head}");
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditAction::Export { config, after, .. } => {
                let store = open(&config).await?;
                let r = export(&store, after).await;
                store.close().await;
                r.map(|()| ExitCode::SUCCESS)
            }
        }
    })
}

async fn open(path: &Path) -> anyhow::Result<SqlStore> {
    let config = config_file::load_for_store(path).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!("invalid config {}:\n{}", path.display(), lines.join("\n"))
    })?;
    SqlStore::from_config(&config.store).await.with_context(|| {
        format!(
            "opening the state store {}",
            airlock_core::config::redact_url(config.store.url())
        )
    })
}

/// Pages through the chain with two verifiers: one against the head the user
/// kept (if any), one against the store's own head row (read first, so events
/// appended meanwhile by a running server do not count as a mismatch).
async fn verify(
    store: &SqlStore,
    kept: Option<AuditHead>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let stored = store.audit_head().await.context("reading the audit head")?;
    let mut against_kept = ChainVerifier::new(kept.clone());
    let mut against_stored = ChainVerifier::new(Some(stored.clone()));
    let mut after = 0;
    let mut count: i64 = 0;
    let outcome: Result<AuditHead, (AuditViolation, &str)> = loop {
        let page = store
            .audit_events(after, PAGE)
            .await
            .context("reading audit events")?;
        let mut failed = None;
        for e in &page {
            if let Err(v) = against_kept.push(e) {
                failed = Some((v, "chain"));
                break;
            }
            if let Err(v) = against_stored.push(e) {
                failed = Some((v, "store head"));
                break;
            }
            count += 1;
        }
        if let Some(f) = failed {
            break Err(f);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => {
                break match against_kept.finish() {
                    Err(v) => Err((v, "chain")),
                    Ok(head) => match against_stored.finish() {
                        Err(v) => Err((v, "store head")),
                        Ok(_) => Ok(head),
                    },
                }
            }
        }
    };
    match outcome {
        Ok(head) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": true, "events": count, "head": head.to_string(), "checked_head": kept.map(|k| k.to_string()) })
                );
            } else {
                println!("audit chain ok: {count} events, head {head}");
                if let Some(k) = kept {
                    println!("contains the kept head {k}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((violation, against)) => {
            let message = match (&violation.what, against) {
                (AuditFault::Truncated { .. } | AuditFault::HeadMismatch { .. }, "store head") => {
                    format!("{violation} (against the store's own head row {stored})")
                }
                _ => violation.to_string(),
            };
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": false, "seq": violation.seq, "fault": violation.what, "message": message })
                );
            } else {
                println!("{message}");
            }
            eprintln!("audit verify: FAILED at event {}", violation.seq);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn export_line(e: &AuditEvent) -> serde_json::Value {
    let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
        .unwrap_or_else(|_| serde_json::Value::String(e.payload.clone()));
    json!({
        "seq": e.seq,
        "at": e.at.to_rfc3339(),
        "at_ms": e.at.0,
        "actor": e.actor,
        "kind": e.kind,
        "request_id": e.request_id,
        "payload": payload,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

async fn export(store: &SqlStore, mut after: i64) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let page = store
            .audit_events(after, PAGE)
            .await
            .context("reading audit events")?;
        for e in &page {
            writeln!(out, "{}", export_line(e)).context("writing to stdout")?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}
