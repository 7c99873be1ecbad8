//! Block Kit renderings of a change request: the review message (posted
//! once, then updated in place on every change), the reject modal and the
//! requester's direct messages. Pure: no I/O.
//!
//! Everything that comes from a person or a client (statement, reason,
//! description, summaries, application name, error texts) goes through
//! [`crate::text`], and every statement through the SQL redactor, so no
//! message can ping anyone, break the layout or show a password.

use crate::text::{code_block_within, cut, escape, escape_mrkdwn, fit, limits, link};
use airlock_core::{Approval, ChangeRequest, RequestStatus, RiskLevel};
use slack_morphism::prelude::*;

/// `action_id` of the Approve button.
pub const ACTION_APPROVE: &str = "airlock_approve";
/// `action_id` of the Reject button.
pub const ACTION_REJECT: &str = "airlock_reject";
/// `callback_id` of the reject modal.
pub const REJECT_MODAL: &str = "airlock_reject_reason";
/// `block_id` and `action_id` of the reason input in the reject modal.
pub const REASON_INPUT: &str = "reason";

/// What the review message shows.
#[derive(Debug, Clone, Copy)]
pub struct ReviewView<'a> {
    /// The request, as stored now.
    pub request: &'a ChangeRequest,
    /// Its approvals so far.
    pub approvals: &'a [Approval],
    /// The request page, when airlock has a public URL.
    pub link: Option<&'a str>,
    /// Statements longer than this are cut (with the link).
    pub statement_max_chars: usize,
    /// Confirm an Approve of a high-risk request.
    pub confirm_high_risk: bool,
    /// Redacts password literals and configured sensitive patterns.
    pub redactor: &'a airlock_sql::Redactor,
}

fn md(text: String) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text))
}

/// Plain text, escaped, within a section's limit.
fn plain(text: String) -> SlackBlockText {
    SlackBlockText::Plain(
        SlackBlockPlainText::new(fit(&escape(&text), limits::SECTION)).with_emoji(false),
    )
}

/// A section of mrkdwn (already escaped) within the limit.
fn md_section(text: String) -> SlackBlock {
    section(md(fit(&text, limits::SECTION)))
}

/// A section field of mrkdwn (already escaped) within the limit.
fn field(text: String) -> SlackBlockText {
    md(fit(&text, limits::FIELD))
}

/// `*title*` and `sql` as a code block, with `note` after it, within a
/// section's limit; `sql` is cut first to `max_chars` (the configured
/// length), then to what Block Kit allows once escaped.
fn code_section(
    title: &str,
    sql: &str,
    max_chars: usize,
    note: &str,
    link_to_rest: Option<&str>,
) -> SlackBlock {
    let (shown, cut_short) = cut(sql, max_chars);
    let reserve = title.chars().count() + note.chars().count() + 200;
    let (block, cut_more) = code_block_within(shown, limits::SECTION - reserve);
    let mut text = format!("{title}\n{block}");
    if cut_short || cut_more {
        text.push_str(&format!(
            "\n_cut: {} character(s) in all_",
            sql.chars().count()
        ));
        if let Some(url) = link_to_rest {
            text.push_str(&format!(" — {}", link(url, "full text")));
        }
    }
    text.push_str(note);
    md_section(text)
}

fn section(text: SlackBlockText) -> SlackBlock {
    SlackSectionBlock::new().with_text(text).into()
}

fn risk_badge(risk: RiskLevel) -> &'static str {
    match risk {
        RiskLevel::Low => "low risk",
        RiskLevel::Medium => "MEDIUM risk",
        RiskLevel::High => "HIGH risk",
        RiskLevel::Critical => "CRITICAL risk",
    }
}

fn utc(ts: airlock_core::Timestamp) -> String {
    // 2026-11-25T16:41:14.123Z → 2026-11-25 16:41 UTC
    let s = ts.to_rfc3339();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => s,
    }
}

/// A time each reader sees in their own time zone (Slack's `<!date^…>`),
/// with UTC where a client cannot format it.
fn local_time(ts: airlock_core::Timestamp) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        ts.0.div_euclid(1000),
        utc(ts)
    )
}

/// The line at the top that says where the request stands.
pub fn status_line(r: &ChangeRequest, approvals: &[Approval]) -> String {
    let by = |names: Vec<&str>| {
        names
            .iter()
            .map(|n| escape_mrkdwn(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let approvers = by(approvals.iter().map(|a| a.approver.as_str()).collect());
    let decided = r
        .decided_by
        .as_deref()
        .map(escape_mrkdwn)
        .unwrap_or_default();
    let run = &r.run;
    match r.status {
        RequestStatus::Pending if approvals.is_empty() => format!(
            ":hourglass_flowing_sand: *Pending review* — needs {} approval(s)",
            r.details.approvals_required
        ),
        RequestStatus::Pending => format!(
            ":hourglass_flowing_sand: *Pending review* — {} of {} approvals ({approvers})",
            approvals.len(),
            r.details.approvals_required
        ),
        RequestStatus::Approved => format!(
            ":white_check_mark: *Approved* by {approvers} — waiting for {} to run it",
            escape_mrkdwn(&r.details.requester)
        ),
        RequestStatus::Rejected => format!(":no_entry: *Rejected* by {decided}"),
        RequestStatus::Expired => ":alarm_clock: *Expired*".to_string(),
        RequestStatus::Cancelled => format!(":heavy_multiplication_x: *Cancelled* by {decided}"),
        RequestStatus::Running => format!(
            ":gear: *Running* (approved by {approvers}, started by {})",
            escape_mrkdwn(run.by.as_deref().unwrap_or("?"))
        ),
        RequestStatus::Executed => format!(
            ":white_check_mark: *Executed* — {} row(s) in {} ms (approved by {approvers})",
            run.rows_affected.map_or("?".into(), |n| n.to_string()),
            run.duration_ms.unwrap_or(0)
        ),
        RequestStatus::Failed => ":x: *Failed* — rolled back, nothing changed".to_string(),
        RequestStatus::Unknown => {
            ":warning: *Outcome unknown* — airlock stopped during the run; an admin must settle it"
                .to_string()
        }
        RequestStatus::RollingBack => ":rewind: *Rolling back*".to_string(),
        RequestStatus::RolledBack => format!(
            ":rewind: *Rolled back* — {} row(s) in {} ms",
            r.rollback_run
                .rows_affected
                .map_or("?".into(), |n| n.to_string()),
            r.rollback_run.duration_ms.unwrap_or(0)
        ),
        RequestStatus::RollbackFailed => ":x: *Rollback failed*".to_string(),
    }
}

/// The notification text (push notifications, and where blocks are not):
/// who wants what, where — `alice: UPDATE of accounts on orders-prod
/// (high risk)` — and the state once it is no longer pending.
pub fn fallback_text(r: &ChangeRequest) -> String {
    let d = &r.details;
    let what = d
        .summary
        .split(':')
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    let what = if what.is_empty() {
        d.class.as_str()
    } else {
        what
    };
    let (what, _) = cut(what, 120);
    let mut text = format!(
        "{}: {} on {} ({})",
        escape(&d.requester),
        escape(what),
        escape(&d.target),
        risk_badge(d.risk).to_lowercase()
    );
    if r.status != RequestStatus::Pending {
        text.push_str(&format!(" — {}", r.status.as_str()));
    }
    text
}

/// The review message: context, statement, decision state and, while the
/// request is pending, the Approve and Reject buttons.
pub fn review_message(v: ReviewView<'_>) -> SlackMessageContent {
    let r = v.request;
    let d = &r.details;
    let mut blocks: Vec<SlackBlock> = Vec::new();

    let header = format!(
        "#{} · {} · {}",
        r.id.0,
        d.target,
        risk_badge(d.risk).to_lowercase()
    );
    let header = fit(&escape(&header), limits::HEADER);
    blocks.push(SlackHeaderBlock::new(SlackBlockPlainText::new(header).into()).into());
    blocks.push(md_section(status_line(r, v.approvals)));

    let team = if d.team.is_empty() {
        String::new()
    } else {
        format!(" ({})", escape_mrkdwn(&d.team))
    };
    let family = d
        .family
        .as_deref()
        .map(|f| format!(" · family {}", escape_mrkdwn(f)))
        .unwrap_or_default();
    let mut fields = vec![
        field(format!(
            "*Requester*\n{}{team}",
            escape_mrkdwn(&d.requester)
        )),
        field(format!(
            "*Target*\n{} ({}){family}",
            escape_mrkdwn(&d.target),
            escape_mrkdwn(&d.environment)
        )),
        field(format!(
            "*Application*\n{}",
            escape_mrkdwn(if d.application_name.is_empty() {
                "(none)"
            } else {
                &d.application_name
            })
        )),
        field(format!(
            "*Class*\n{}{}",
            escape_mrkdwn(d.class.as_str()),
            if d.tables.is_empty() {
                String::new()
            } else {
                format!(" on {}", escape_mrkdwn(&d.tables.join(", ")))
            }
        )),
        field(format!(
            "*Row estimate*\n{}",
            d.row_estimate
                .map_or("not available".to_string(), |n| format!("~{n:.0} row(s)"))
        )),
        field(format!(
            "*Risk*\n{}{}",
            d.risk,
            if d.risk_reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", escape_mrkdwn(&d.risk_reasons.join("; ")))
            }
        )),
    ];
    if let Some(max) = d.max_rows {
        fields.push(field(format!("*Row guard*\nat most {max} row(s)")));
    }
    blocks.push(SlackSectionBlock::new().with_fields(fields).into());

    blocks.push(section(plain(format!(
        "Reason: {}",
        d.reason.as_deref().unwrap_or("(none given)")
    ))));
    if let Some(desc) = &d.description {
        blocks.push(section(plain(format!("Description: {desc}"))));
    }
    blocks.push(section(plain(format!("Summary: {}", d.summary))));
    if let Some(ai) = &d.ai_summary {
        blocks.push(section(plain(format!(
            "AI summary (generated, unverified): {ai}"
        ))));
    }

    let runs = if d.earlier_runs.is_empty() {
        ":warning: *No earlier run* of this statement in a lower environment".to_string()
    } else {
        let mut lines = vec!["*Earlier runs in lower environments*".to_string()];
        for run in d.earlier_runs.iter().take(5) {
            lines.push(format!(
                "• {} on {} by {}, {}: {} row(s), {} ms, {}",
                escape_mrkdwn(&run.environment),
                escape_mrkdwn(&run.target),
                escape_mrkdwn(&run.who),
                local_time(run.when),
                run.rows.map_or("?".into(), |n| n.to_string()),
                run.duration_ms,
                if run.success { "succeeded" } else { "FAILED" }
            ));
        }
        if d.earlier_runs.len() > 5 {
            lines.push(format!("…and {} more", d.earlier_runs.len() - 5));
        }
        lines.join("\n")
    };
    blocks.push(md_section(runs));

    let statement = v.redactor.redact(&d.statement);
    let params = if d.params.is_empty() {
        String::new()
    } else {
        format!("\n_with {} bound parameter(s)_", d.params.len())
    };
    blocks.push(code_section(
        "*Statement*",
        &statement,
        v.statement_max_chars,
        &params,
        v.link,
    ));

    blocks.push(match &d.rollback_sql {
        Some(sql) => code_section(
            "*Rollback* (runs without a second review)",
            &v.redactor.redact(sql),
            v.statement_max_chars,
            "",
            v.link,
        ),
        None => md_section("*Rollback*: none given".to_string()),
    });

    match r.status {
        RequestStatus::Rejected | RequestStatus::Cancelled => {
            if let Some(reason) = &r.decision_reason {
                blocks.push(section(plain(format!("Why: {reason}"))));
            }
        }
        RequestStatus::Failed | RequestStatus::Unknown => {
            if let Some(err) = &r.run.error {
                let (err, _) = cut(err, 1000);
                blocks.push(section(plain(format!("Error: {err}"))));
            }
        }
        RequestStatus::RollbackFailed => {
            if let Some(err) = &r.rollback_run.error {
                let (err, _) = cut(err, 1000);
                blocks.push(section(plain(format!("Rollback error: {err}"))));
            }
        }
        _ => {}
    }

    if r.status == RequestStatus::Pending {
        blocks.push(decision_buttons(r, v.confirm_high_risk));
    }

    let mut context = format!(
        "Request #{} · fingerprint `{}` · created {}",
        r.id.0,
        escape(&d.fingerprint.chars().take(16).collect::<String>()),
        local_time(d.created_at)
    );
    if let Some(url) = v.link {
        context.push_str(&format!(" · {}", link(url, "open the request")));
    }
    blocks.push(
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(fit(&context, limits::CONTEXT)),
        )])
        .into(),
    );
    blocks.truncate(limits::BLOCKS);

    SlackMessageContent::new()
        .with_text(fallback_text(r))
        .with_blocks(blocks)
}

/// The review message cut to what any Slack accepts — header, who wants
/// what where, the link and (while pending) the buttons — for when Slack
/// refused the full one (`why`, its error).
pub fn minimal_review_message(
    r: &ChangeRequest,
    link_to: Option<&str>,
    why: &str,
    confirm_high_risk: bool,
) -> SlackMessageContent {
    let d = &r.details;
    let header = format!(
        "#{} · {} · {}",
        r.id.0,
        d.target,
        risk_badge(d.risk).to_lowercase()
    );
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(
            SlackBlockPlainText::new(fit(&escape(&header), limits::HEADER)).into(),
        )
        .into(),
        md_section(format!(
            "*{}* wants to run a {} on *{}* ({}): {}",
            escape_mrkdwn(&d.requester),
            escape_mrkdwn(d.class.as_str()),
            escape_mrkdwn(&d.target),
            escape_mrkdwn(&d.environment),
            r.status.as_str()
        )),
    ];
    let note = match link_to {
        Some(url) => format!(
            "The full review message could not be posted (Slack: {}); {}",
            escape(why),
            link(url, "read the request before deciding")
        ),
        None => format!(
            "The full review message could not be posted (Slack: {}); read it with `airlock requests show {}` before deciding",
            escape(why),
            r.id.0
        ),
    };
    blocks.push(md_section(note));
    if r.status == RequestStatus::Pending {
        blocks.push(decision_buttons(r, confirm_high_risk));
    }
    SlackMessageContent::new()
        .with_text(fallback_text(r))
        .with_blocks(blocks)
}

/// The Approve and Reject buttons of a pending request; with `confirm`,
/// Approve of a high- or critical-risk request asks first.
fn decision_buttons(r: &ChangeRequest, confirm: bool) -> SlackBlock {
    let id = r.id.0.to_string();
    let mut approve =
        SlackBlockButtonElement::new(SlackBlockPlainText::new("Approve".into()).into())
            .with_action_id(ACTION_APPROVE.into())
            .with_value(id.clone())
            .with_style(SlackBlockButtonStyle::Primary);
    if confirm && r.details.risk >= RiskLevel::High {
        let text = format!(
            "Approve #{} — a {} change on {} by {}? It can run as soon as you confirm.",
            r.id.0,
            risk_badge(r.details.risk).to_lowercase(),
            r.details.target,
            r.details.requester
        );
        approve = approve.with_confirm(SlackBlockConfirmItem::new(
            SlackBlockPlainTextOnly::from("Approve this change?"),
            SlackBlockText::Plain(SlackBlockPlainText::new(fit(&escape(&text), 300))),
            SlackBlockPlainTextOnly::from("Approve"),
            SlackBlockPlainTextOnly::from("Not yet"),
        ));
    }
    SlackActionsBlock::new(vec![
        approve.into(),
        SlackBlockButtonElement::new(SlackBlockPlainText::new("Reject".into()).into())
            .with_action_id(ACTION_REJECT.into())
            .with_value(id)
            .with_style(SlackBlockButtonStyle::Danger)
            .into(),
    ])
    .with_block_id("decision".into())
    .into()
}

/// The modal that asks a reviewer why they reject; `metadata` comes back with the submission.
pub fn reject_modal(r: &ChangeRequest, metadata: String) -> SlackView {
    let what = format!(
        "Reject request #{} by {} on {}? The developer sees your reason.",
        r.id.0, r.details.requester, r.details.target
    );
    SlackView::Modal(
        SlackModalView::new(
            SlackBlockPlainText::new(format!("Reject #{}", r.id.0)).into(),
            vec![
                section(plain(what)),
                SlackInputBlock::new(
                    SlackBlockPlainText::new("Reason".into()).into(),
                    SlackInputBlockElement::PlainTextInput(
                        SlackBlockPlainTextInputElement::new()
                            .with_action_id(REASON_INPUT.into())
                            .with_multiline(true)
                            .with_min_length(1)
                            .with_max_length(2000),
                    ),
                )
                .with_block_id(REASON_INPUT.into())
                .into(),
            ],
        )
        .with_callback_id(REJECT_MODAL.into())
        .with_private_metadata(metadata)
        .with_submit(SlackBlockPlainText::new("Reject".into()).into())
        .with_close(SlackBlockPlainText::new("Cancel".into()).into()),
    )
}

/// The direct message that tells the requester the request reached
/// `status` (which may lie behind its current one: a quick approve-and-run
/// still sends "approved"), with what the request holds now, and the
/// purpose it is recorded under (so it is sent once): approval, rejection,
/// the outcome of the run and the rollback.
pub fn requester_dm_for(
    r: &ChangeRequest,
    status: RequestStatus,
    approvals: &[Approval],
) -> Option<(String, String)> {
    let id = r.id.0;
    let target = escape(&r.details.target);
    let (purpose, text) = match status {
        RequestStatus::Approved => (
            "approved",
            format!(
                ":white_check_mark: Your request #{id} on {target} was approved by {}. Re-send the statement in your session, or run `CALL airlock.run({id})`.",
                approvals
                    .iter()
                    .map(|a| escape(&a.approver))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        RequestStatus::Rejected => (
            "rejected",
            format!(
                ":no_entry: Your request #{id} on {target} was rejected by {}: {}",
                escape(r.decided_by.as_deref().unwrap_or("a reviewer")),
                escape_mrkdwn(r.decision_reason.as_deref().unwrap_or("(no reason)"))
            ),
        ),
        RequestStatus::Executed => (
            "executed",
            format!(
                ":white_check_mark: Your request #{id} on {target} was executed: {} row(s) in {} ms.",
                r.run.rows_affected.map_or("?".into(), |n| n.to_string()),
                r.run.duration_ms.unwrap_or(0)
            ),
        ),
        RequestStatus::Failed => (
            "failed",
            format!(
                ":x: Your request #{id} on {target} failed and was rolled back: {}",
                escape_mrkdwn(cut(r.run.error.as_deref().unwrap_or("?"), 500).0)
            ),
        ),
        RequestStatus::RolledBack => (
            "rolled_back",
            format!(
                ":rewind: Your request #{id} on {target} was rolled back: {} row(s).",
                r.rollback_run
                    .rows_affected
                    .map_or("?".into(), |n| n.to_string())
            ),
        ),
        _ => return None,
    };
    Some((purpose.to_string(), text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::request::{Engine, RequestDetails, RunRecord};
    use airlock_core::{EarlierRun, RequestId, Timestamp};
    use airlock_sql::StatementClass;
    use std::time::Duration;

    const T0: Timestamp = Timestamp(1_795_000_000_000);

    fn request(statement: &str) -> ChangeRequest {
        ChangeRequest {
            id: RequestId(42),
            status: RequestStatus::Pending,
            details: RequestDetails {
                requester: "alice".into(),
                team: "payments".into(),
                groups: vec!["developers".into()],
                application_name: "psql".into(),
                client_addr: "127.0.0.1:50000".into(),
                target: "orders-prod".into(),
                family: Some("orders".into()),
                environment: "prod".into(),
                engine: Engine::Postgres,
                statement: statement.into(),
                params: Vec::new(),
                fingerprint: "abcdef0123456789abcdef".into(),
                class: StatementClass::Write,
                statement_count: 1,
                transactional: true,
                tables: vec!["public.orders".into()],
                summary: "Updates rows of public.orders.".into(),
                ai_summary: None,
                risk: RiskLevel::High,
                risk_reasons: vec!["no WHERE clause".into()],
                row_estimate: Some(1200.0),
                earlier_runs: Vec::new(),
                reason: Some("ticket OPS-1".into()),
                description: None,
                rollback_sql: Some("UPDATE orders SET state = 'new'".into()),
                max_rows: None,
                approvals_required: 2,
                approver_groups: vec!["dba".into()],
                run_window: Duration::from_secs(3600),
                created_at: T0,
                expires_at: T0.plus(Duration::from_secs(86_400)),
            },
            approved_at: None,
            run_deadline: None,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            run: RunRecord::default(),
            rollback_run: RunRecord::default(),
            updated_at: T0,
        }
    }

    fn json_of(r: &ChangeRequest, approvals: &[Approval], max: usize) -> String {
        let content = review_message(ReviewView {
            request: r,
            approvals,
            link: Some("https://airlock.example/requests/42"),
            statement_max_chars: max,
            confirm_high_risk: true,
            redactor: &airlock_sql::Redactor::default(),
        });
        serde_json::to_string(&content).expect("serializes")
    }

    fn approval(who: &str) -> Approval {
        Approval {
            request_id: RequestId(42),
            approver: who.into(),
            at: T0,
            via: "slack".into(),
            comment: None,
        }
    }

    #[test]
    fn pending_message_carries_the_context_and_both_buttons() {
        let r = request("UPDATE orders SET state = 'shipped'");
        let json = json_of(&r, &[], 2500);
        // Who wants what where, in the notification a phone shows.
        assert!(
            json.starts_with(
                "{\"text\":\"alice: Updates rows of public.orders on orders-prod (high risk)\""
            ),
            "{json}"
        );
        // Reason and earlier runs before the statement; the decision after it.
        let at = |needle: &str| {
            json.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} in {json}"))
        };
        assert!(at("ticket OPS-1") < at("*Statement*"));
        assert!(at("No earlier run") < at("*Statement*"));
        assert!(at("*Statement*") < at(ACTION_APPROVE));
        // Approve of a high-risk change asks first; of a low-risk one not.
        assert!(json.contains("\"confirm\":{\"title\":{\"type\":\"plain_text\",\"text\":\"Approve this change?\"}"), "{json}");
        let mut low = r.clone();
        low.details.risk = RiskLevel::Low;
        assert!(!json_of(&low, &[], 2500).contains("\"confirm\""));
        // Times in each reader's zone.
        assert!(
            json.contains("<!date^1795000000^{date_short_pretty} {time}|2026-11-18 11:06 UTC>"),
            "{json}"
        );
        for needle in [
            "#42 · orders-prod · high risk",
            "alice",
            "payments",
            "orders-prod",
            "family orders",
            "UPDATE orders SET state = 'shipped'",
            "ticket OPS-1",
            "Updates rows of public.orders.",
            "~1200 row(s)",
            "No earlier run",
            "UPDATE orders SET state = 'new'",
            ACTION_APPROVE,
            ACTION_REJECT,
            "\"value\":\"42\"",
            "https://airlock.example/requests/42",
        ] {
            assert!(json.contains(needle), "{needle:?} missing from {json}");
        }
    }

    #[test]
    fn decided_messages_have_no_buttons_and_say_what_happened() {
        let mut r = request("DELETE FROM orders WHERE id = 1");
        let json = json_of(&r, &[approval("bob")], 2500);
        assert!(json.contains("1 of 2 approvals (bob)"), "{json}");
        r.status = RequestStatus::Executed;
        r.run.rows_affected = Some(3);
        r.run.duration_ms = Some(12);
        let json = json_of(&r, &[approval("bob"), approval("carol")], 2500);
        assert!(json.contains("*Executed* — 3 row(s) in 12 ms"), "{json}");
        assert!(json.contains("bob, carol"), "{json}");
        assert!(!json.contains(ACTION_APPROVE) && !json.contains(ACTION_REJECT));
        r.status = RequestStatus::Rejected;
        r.decided_by = Some("bob".into());
        r.decision_reason = Some("use the batch job".into());
        let json = json_of(&r, &[], 2500);
        assert!(json.contains("Rejected* by bob") && json.contains("use the batch job"));
    }

    #[test]
    fn every_status_has_its_own_line_and_only_pending_has_buttons() {
        let mut r = request("DELETE FROM orders WHERE id = 1");
        r.run.error = Some("deadlock detected".into());
        r.rollback_run.error = Some("rollback went wrong".into());
        r.decision_reason = Some("withdrawn".into());
        r.decided_by = Some("alice".into());
        let mut lines = std::collections::HashSet::new();
        for status in RequestStatus::ALL {
            r.status = status;
            let line = status_line(&r, &[]);
            assert!(
                lines.insert(line.clone()),
                "{status:?} shares its line: {line}"
            );
            let json = json_of(&r, &[], 2500);
            assert_eq!(
                json.contains(ACTION_APPROVE),
                status == RequestStatus::Pending,
                "{status:?}: {json}"
            );
            match status {
                RequestStatus::Failed | RequestStatus::Unknown => {
                    assert!(json.contains("deadlock detected"), "{json}")
                }
                RequestStatus::RollbackFailed => {
                    assert!(json.contains("rollback went wrong"), "{json}")
                }
                RequestStatus::Cancelled => assert!(json.contains("withdrawn"), "{json}"),
                _ => {}
            }
        }
    }

    #[test]
    fn earlier_runs_are_listed() {
        let mut r = request("UPDATE orders SET state = 'x' WHERE id = 1");
        r.details.earlier_runs = vec![EarlierRun {
            who: "alice".into(),
            when: T0,
            target: "orders-qa".into(),
            environment: "qa".into(),
            rows: Some(1),
            duration_ms: 7,
            success: true,
        }];
        let json = json_of(&r, &[], 2500);
        assert!(json.contains("qa on orders-qa by alice"), "{json}");
        assert!(json.contains("1 row(s), 7 ms, succeeded"), "{json}");
        assert!(!json.contains("No earlier run"));
    }

    #[test]
    fn hostile_text_cannot_ping_or_break_out_and_passwords_are_redacted() {
        let mut r = request("ALTER ROLE app PASSWORD 'hunter2'; SELECT '```<!channel>```'");
        r.details.reason = Some("<!channel> <@U123> *urgent* ```".into());
        r.details.description = Some("<https://evil.example|login here>".into());
        r.details.summary = "<!here> summary".into();
        r.details.ai_summary = Some("<!everyone> trust me".into());
        r.details.application_name = "<@U999>`app`".into();
        let json = json_of(&r, &[], 2500);
        assert!(!json.contains("hunter2"), "{json}");
        for bad in [
            "<!channel>",
            "<@U123>",
            "<!here>",
            "<!everyone>",
            "<@U999>",
            "<https://evil",
        ] {
            assert!(
                !json.contains(bad),
                "{bad:?} reached Slack unescaped: {json}"
            );
        }
        assert!(json.contains("&lt;!channel&gt;"));
        // The statement's own triple backticks cannot close its code block.
        let content = review_message(ReviewView {
            request: &r,
            approvals: &[],
            link: None,
            statement_max_chars: 2500,
            confirm_high_risk: true,
            redactor: &airlock_sql::Redactor::default(),
        });
        let blocks = serde_json::to_value(&content.blocks).expect("blocks");
        let statement = blocks
            .as_array()
            .and_then(|b| {
                b.iter().find_map(|b| {
                    b.pointer("/text/text")
                        .and_then(|t| t.as_str())
                        .filter(|t| t.starts_with("*Statement*"))
                })
            })
            .expect("statement block");
        assert_eq!(statement.matches("```").count(), 2, "{statement}");
    }

    #[test]
    fn long_statements_are_cut_with_a_link() {
        let long = format!("UPDATE orders SET note = '{}'", "x".repeat(5000));
        let json = json_of(&request(&long), &[], 300);
        assert!(json.contains("_cut: 5027 character(s) in all_"), "{json}");
        assert!(json.contains("|full text>"), "{json}");
        assert!(
            json.len() < 5000,
            "the message was not cut: {} bytes",
            json.len()
        );
    }

    #[test]
    fn requester_dms_exist_for_decisions_and_outcomes_only() {
        let mut r = request("DELETE FROM orders WHERE id = 1");
        assert!(requester_dm_for(&r, r.status, &[]).is_none());
        r.status = RequestStatus::Approved;
        let (purpose, text) = requester_dm_for(&r, r.status, &[approval("bob")]).expect("dm");
        assert_eq!(purpose, "approved");
        assert!(text.contains("approved by bob") && text.contains("airlock.run(42)"));
        r.status = RequestStatus::Rejected;
        r.decided_by = Some("bob".into());
        r.decision_reason = Some("<!channel> no".into());
        let (purpose, text) = requester_dm_for(&r, r.status, &[]).expect("dm");
        assert_eq!(purpose, "rejected");
        assert!(text.contains("&lt;!channel&gt; no"), "{text}");
        r.status = RequestStatus::Executed;
        r.run.rows_affected = Some(5);
        assert_eq!(
            requester_dm_for(&r, r.status, &[]).expect("dm").0,
            "executed"
        );
    }
}
