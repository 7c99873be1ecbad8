//! Slack end to end (SPEC §6): a real `airlock serve` against the real local
//! PostgreSQL and the fake Slack of `tests/common/fake_slack.rs`. Review
//! messages, signed clicks, the reject modal, refusals, two approvers on
//! two processes sharing a PostgreSQL store, Slack outages and rate limits
//! across a restart, escaping and redaction.

mod common;

use common::fake_slack::{self, block_action, now_unix, post_interaction, view_submission};
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-airlock-test";
const CHANNEL: &str = "CREVIEW1";
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";
const MALLORY: &str = "U0MALLORY";
const BOB_API_TOKEN: &str = "bob-api-token-slack-tests-0123456789";
const ALICE_API_TOKEN: &str = "alice-api-token-slack-tests-0123456789";
const APPROVE: &str = "airlock_approve";
const REJECT: &str = "airlock_reject";
const WAIT: Duration = Duration::from_secs(30);

fn seed(db: &str) {
    fresh_db_with(
        db,
        "CREATE TABLE orders (id int PRIMARY KEY, state text); \
             INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 5) g",
    );
}

fn states(db: &str) -> String {
    admin_query(
        db,
        "SELECT string_agg(id || '=' || state, ',' ORDER BY id) FROM orders",
    )
}

/// The test config: carol is a second dba; the outbox's safety poll is
/// 10 minutes, so every message is delivered because a store event (or a
/// scheduled retry) woke the deliverer; everyone but a stranger is
/// mapped to a Slack user; reviews go to `CHANNEL`; `approvals` approvers.
fn config(db: &str, fake: &fake_slack::FakeSlack, approvals: u32) -> ProxyConfig {
    with_slack(ProxyConfig::for_db(db), fake, approvals)
}

/// `cfg` with the Slack settings of [`config`].
fn with_slack(cfg: ProxyConfig, fake: &fake_slack::FakeSlack, approvals: u32) -> ProxyConfig {
    let mut cfg = cfg.with_api_token("bob", BOB_API_TOKEN);
    cfg.users.push(UserSpec {
        name: "carol".into(),
        team: "platform".into(),
        groups: vec!["developers".into(), "dba".into()],
        password: "carol-pw-5Rt".into(),
    });
    cfg.slack_ids = [
        ("alice", ALICE),
        ("bob", BOB),
        ("carol", CAROL),
        ("mallory", MALLORY),
    ]
    .iter()
    .map(|(u, s)| (u.to_string(), s.to_string()))
    .collect();
    cfg.server_extra.push((
        "public_url".into(),
        toml_str("https://airlock.example.test"),
    ));
    cfg.env
        .push(("AIRLOCK_TEST_SLACK_BOT".into(), BOT_TOKEN.into()));
    cfg.env
        .push(("AIRLOCK_TEST_SLACK_SECRET".into(), SECRET.into()));
    cfg.extra_toml = format!(
        "[policy]\napprover_groups = [\"dba\"]\napprovals_required = {approvals}\nreview_channel = {}\n\n\
         [slack]\nmode = \"http\"\napi_url = {}\nbot_token_env = \"AIRLOCK_TEST_SLACK_BOT\"\n\
         signing_secret_env = \"AIRLOCK_TEST_SLACK_SECRET\"\nretry_initial = \"200ms\"\n\
         retry_max = \"1s\"\npoll_interval = \"10min\"\n",
        toml_str(CHANNEL),
        toml_str(&fake.api_url())
    );
    cfg
}

fn interactions_url(proxy: &Proxy) -> String {
    format!("http://127.0.0.1:{}/slack/interactions", proxy.http_port)
}

/// `alice` sends `sql` on the protected target with a reason; returns psql's output.
fn hold(proxy: &Proxy, db: &str, user: &str, reason: &str, sql: &str) -> Out {
    proxy.conn(user, &format!("{db}-prod")).psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        &format!("SET airlock.reason = '{}'", reason.replace('\'', "''")),
        "-c",
        sql,
    ])
}

fn blocks_text(call: &fake_slack::SlackCall) -> String {
    call.body["blocks"].to_string()
}

/// Whether a call's blocks are about request `id` (its header names it).
fn is_about(call: &fake_slack::SlackCall, id: i64) -> bool {
    blocks_text(call).contains(&format!("\"text\":\"#{id} · "))
}

/// Waits (up to `WAIT`) for an answered-ok call of `method` that `matches`.
fn wait_call(
    fake: &fake_slack::FakeSlack,
    method: &str,
    what: &str,
    matches: impl Fn(&fake_slack::SlackCall) -> bool,
) -> fake_slack::SlackCall {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(c) = fake.calls_to(method).into_iter().find(|c| matches(c)) {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {method} {what}: {}",
            fake.describe_calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text_of(call: &fake_slack::SlackCall) -> &str {
    call.body["text"].as_str().unwrap_or("")
}

/// The review message of request `id` (its `chat.postMessage` to the channel).
fn review_post(fake: &fake_slack::FakeSlack, id: i64) -> fake_slack::SlackCall {
    wait_call(
        fake,
        "chat.postMessage",
        &format!("review message for #{id}"),
        |c| c.body["channel"] == CHANNEL && is_about(c, id),
    )
}

/// Waits for a `chat.update` of `ts` whose blocks contain `needle`.
fn wait_update(fake: &fake_slack::FakeSlack, ts: &str, needle: &str) -> fake_slack::SlackCall {
    wait_call(
        fake,
        "chat.update",
        &format!("of {ts} showing {needle:?}"),
        |c| c.body["ts"] == ts && blocks_text(c).contains(needle),
    )
}

/// Waits for an ephemeral message to `user` containing `needle`.
fn wait_ephemeral(fake: &fake_slack::FakeSlack, user: &str, needle: &str) {
    wait_call(
        fake,
        "chat.postEphemeral",
        &format!("to {user} saying {needle:?}"),
        |c| c.body["user"] == user && text_of(c).contains(needle),
    );
}

/// Waits for a DM to `user` (via `conversations.open`) containing `needle`.
fn wait_dm(fake: &fake_slack::FakeSlack, user: &str, needle: &str) {
    let dm = format!("D{user}");
    wait_call(
        fake,
        "chat.postMessage",
        &format!("DM to {user} saying {needle:?}"),
        |c| c.body["channel"] == dm.as_str() && text_of(c).contains(needle),
    );
}

fn click(proxy: &Proxy, user: &str, action: &str, id: i64, ts: &str) -> (u16, String) {
    post_interaction(
        &interactions_url(proxy),
        SECRET,
        now_unix(),
        &block_action(user, action, &id.to_string(), CHANNEL, ts),
    )
}

/// GET on airlock's HTTP listener, with Basic credentials; (status, body).
fn http_get(port: u16, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let headers: Vec<(&str, String)> = basic
        .map(|(u, t)| vec![("Authorization", basic_auth(u, t))])
        .unwrap_or_default();
    let (status, _, body) = http_raw(port, "GET", path, &headers, "");
    (status, body)
}

/// `airlock requests show N --json` as bob.
fn request_json(proxy: &Proxy, id: i64) -> Value {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["requests", "show", &id.to_string(), "--json"])
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", BOB_API_TOKEN);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    serde_json::from_str(&out.stdout()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()))
}

fn status(proxy: &Proxy, id: i64) -> String {
    let v = request_json(proxy, id);
    v["status"]
        .as_str()
        .or_else(|| v["request"]["status"].as_str())
        .unwrap_or_else(|| panic!("no status in {v}"))
        .to_string()
}

/// The audit trail, from `airlock audit export`.
fn audit(proxy: &Proxy) -> Vec<Value> {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["audit", "export", "--format", "jsonl", "--config"])
        .arg(&proxy.config_path)
        .env_remove("AIRLOCK_CONFIG")
        .env(UPSTREAM_PASSWORD_ENV, UPSTREAM_PASSWORD)
        .envs(proxy.config.env.iter().map(|(k, v)| (k, v)));
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    out.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn review_message_approve_click_run_updates_and_dms() {
    let db = "airlock_t_slack_flow";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let proxy = Proxy::start(config(db, &fake, 1));

    // An earlier run of the same statement shape on dev.
    let dev = proxy.conn("alice", &format!("{db}-dev"));
    let ran = dev.psql(&["-c", "UPDATE orders SET state = 'new' WHERE id = 5"]);
    assert!(ran.stdout().contains("UPDATE 1"), "{}", ran.describe());
    assert!(
        common::requests::wait_for_executions(&proxy, &format!("{db}-dev"), 1),
        "the dev run was not recorded"
    );

    let update = "UPDATE orders SET state = 'shipped' WHERE id = 1";
    let out = proxy.conn("alice", &format!("{db}-prod")).psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'ship order 1 for ticket OPS-7'",
        "-c",
        "SET airlock.rollback = 'UPDATE orders SET state = ''new'' WHERE id = 1'",
        "-c",
        update,
    ]);
    assert!(out.stderr().contains("AL001"), "{}", out.describe());

    // One review message, to the policy's channel, with the whole context.
    let post = review_post(&fake, 1);
    let posts: Vec<_> = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == CHANNEL)
        .collect();
    assert_eq!(posts.len(), 1, "{}", fake.describe_calls());
    assert_eq!(post.token.as_deref(), Some(BOT_TOKEN));
    let blocks = blocks_text(&post);
    for needle in [
        update,
        "alice",
        "payments",
        &format!("{db}-prod"),
        "prod",
        "ship order 1 for ticket OPS-7",
        "Summary:",
        "Earlier runs in lower environments",
        &format!("dev on {db}-dev by alice"),
        APPROVE,
        REJECT,
        "https://airlock.example.test/requests/1",
    ] {
        assert!(blocks.contains(needle), "{needle:?} missing: {blocks}");
    }
    let ts = post.response["ts"].as_str().expect("ts").to_string();
    assert!(
        out.stderr()
            .contains("request #1 is at https://airlock.example.test/requests/1"),
        "the NOTICE carries the link: {}",
        out.describe()
    );

    // The link's page: the whole statement, for a signed-in user only.
    let (st, page) = http_get(proxy.http_port, "/requests/1", None);
    assert_eq!(st, 401, "{page}");
    let (st, page) = http_get(proxy.http_port, "/requests/1", Some(("bob", "wrong-token")));
    assert_eq!(st, 401, "{page}");
    let (st, page) = http_get(proxy.http_port, "/requests/1", Some(("bob", BOB_API_TOKEN)));
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains("UPDATE orders SET state = &#39;shipped&#39; WHERE id = 1"),
        "{page}"
    );
    assert!(page.contains("ship order 1 for ticket OPS-7"), "{page}");

    // Bob approves with a signed click: approved, the message says by whom,
    // alice is told.
    let (st, body) = click(&proxy, BOB, APPROVE, 1, &ts);
    assert_eq!(st, 200, "{body}");
    assert_eq!(status(&proxy, 1), "approved");
    let approved = wait_update(&fake, &ts, "Approved* by bob");
    assert!(
        !blocks_text(&approved).contains(APPROVE),
        "no buttons once decided"
    );
    wait_dm(&fake, ALICE, "approved by bob");
    wait_ephemeral(&fake, BOB, "You approved #1");

    // Alice re-sends: it runs, once; the message shows the row count; DM.
    let out = hold(&proxy, db, "alice", "ship order 1 for ticket OPS-7", update);
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    assert_eq!(states(db), "1=shipped,2=new,3=new,4=new,5=new");
    wait_update(&fake, &ts, "Executed* — 1 row(s)");
    wait_dm(&fake, ALICE, "was executed: 1 row(s)");

    // A click on a request that is no longer pending changes nothing.
    let (st, _) = click(&proxy, CAROL, APPROVE, 1, &ts);
    assert_eq!(st, 200);
    wait_ephemeral(&fake, CAROL, "You cannot approve #1");
    assert_eq!(status(&proxy, 1), "executed");

    // The pre-approved rollback runs on one call; the message follows.
    let out =
        proxy
            .conn("alice", &format!("{db}-prod"))
            .psql(&["-X", "-c", "CALL airlock.rollback(1)"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(states(db), "1=new,2=new,3=new,4=new,5=new");
    wait_update(&fake, &ts, "Rolled back* — 1 row(s)");

    // Every update went to the one message; never a second post.
    let posts = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == CHANNEL)
        .count();
    assert_eq!(posts, 1, "{}", fake.describe_calls());
    let opened = fake.calls_to("conversations.open");
    assert!(
        opened
            .iter()
            .all(|c| c.body["users"].to_string().contains(ALICE)),
        "{}",
        fake.describe_calls()
    );
}

#[test]
fn refused_clicks_are_audited_answered_and_change_nothing() {
    let db = "airlock_t_slack_refusals";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let proxy = Proxy::start(config(db, &fake, 1));
    let url = interactions_url(&proxy);

    // #1 by alice, approved by carol with an accepted click.
    assert!(hold(
        &proxy,
        db,
        "alice",
        "r1",
        "UPDATE orders SET state = 'a' WHERE id = 1"
    )
    .stderr()
    .contains("AL001"));
    // #2 by bob (a dba himself), for the other refusals.
    assert!(hold(
        &proxy,
        db,
        "bob",
        "r2",
        "UPDATE orders SET state = 'b' WHERE id = 2"
    )
    .stderr()
    .contains("AL001"));
    let ts1 = review_post(&fake, 1).response["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let ts2 = review_post(&fake, 2).response["ts"]
        .as_str()
        .unwrap()
        .to_string();

    let accepted = block_action(CAROL, APPROVE, "1", CHANNEL, &ts1);
    let now = now_unix();
    let (st, body) = post_interaction(&url, SECRET, now, &accepted);
    assert_eq!(st, 200, "{body}");
    assert_eq!(status(&proxy, 1), "approved");

    // A replay of the accepted payload (same timestamp and signature).
    let (st, body) = post_interaction(&url, SECRET, now, &accepted);
    assert_eq!(st, 401, "{body}");
    wait_ephemeral(&fake, CAROL, "already processed");

    // Wrong signature: refused, audited, and nothing is sent on its behalf.
    let forged = block_action(BOB, APPROVE, "2", CHANNEL, &ts2);
    let body_text = fake_slack::interaction_body(&forged);
    let ts_now = now_unix();
    let (st, _) = fake_slack::post_interaction_raw(
        &url,
        Some(&ts_now.to_string()),
        Some(&fake_slack::sign("not-the-secret", ts_now, &body_text)),
        &body_text,
    );
    assert_eq!(st, 401);
    // Unsigned.
    let (st, _) = fake_slack::post_interaction_raw(&url, None, None, &body_text);
    assert_eq!(st, 401);

    // Correctly signed, but 6 minutes old.
    let (st, _) = post_interaction(
        &url,
        SECRET,
        now_unix() - 360,
        &block_action(CAROL, APPROVE, "2", CHANNEL, &ts2),
    );
    assert_eq!(st, 401);
    wait_ephemeral(&fake, CAROL, "more than 5 minutes");

    // Authentic clicks the rules refuse.
    let (st, _) = click(&proxy, "U0STRANGER", APPROVE, 2, &ts2);
    assert_eq!(st, 200);
    wait_ephemeral(&fake, "U0STRANGER", "not mapped to an airlock user");
    let (st, _) = click(&proxy, BOB, APPROVE, 2, &ts2);
    assert_eq!(st, 200);
    wait_ephemeral(&fake, BOB, "You cannot approve #2");
    let (st, _) = click(&proxy, MALLORY, APPROVE, 2, &ts2);
    assert_eq!(st, 200);
    wait_ephemeral(&fake, MALLORY, "You cannot approve #2");
    // Mallory cannot open the reject dialog either.
    let (st, _) = click(&proxy, MALLORY, REJECT, 2, &ts2);
    assert_eq!(st, 200);
    wait_ephemeral(&fake, MALLORY, "You cannot reject #2");
    assert!(
        fake.calls_to("views.open").is_empty(),
        "{}",
        fake.describe_calls()
    );

    // Nothing changed: #2 is pending with no approval, #1 has one approval.
    assert_eq!(status(&proxy, 2), "pending");
    let one = request_json(&proxy, 1);
    assert_eq!(
        one["approvals"].as_array().map(|a| a.len()),
        Some(1),
        "{one}"
    );
    assert_eq!(states(db), "1=new,2=new,3=new,4=new,5=new");

    // Every refusal is in the audit trail.
    let events = audit(&proxy);
    let refused: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "interaction.refused" || e["kind"] == "decision.refused")
        .map(|e| format!("{} {} {}", e["kind"], e["actor"], e["payload"]))
        .collect();
    let has = |actor: &str, what: &str| {
        refused
            .iter()
            .any(|r| r.contains(actor) && r.to_lowercase().contains(what))
    };
    assert!(has("slack:U0CAROL", "replayed"), "{refused:#?}");
    assert!(has("slack-unverified:U0BOB", "signature"), "{refused:#?}");
    assert!(
        has("slack-unverified:?", "not signed") || has("slack-unverified:U0BOB", "not signed"),
        "{refused:#?}"
    );
    assert!(has("slack:U0CAROL", "5 minutes"), "{refused:#?}");
    assert!(has("slack:U0STRANGER", "not mapped"), "{refused:#?}");
    assert!(has("\"bob\"", "own"), "{refused:#?}");
    assert!(has("\"mallory\"", "approve"), "{refused:#?}");
    assert!(has("\"mallory\"", "reject"), "{refused:#?}");
}

#[test]
fn reject_with_a_reason_from_the_modal_reaches_the_waiting_session() {
    let db = "airlock_t_slack_reject";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let proxy = Proxy::start(config(db, &fake, 1));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let mut cmd = alice.psql_cmd(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'bulk fix'",
        "-c",
        "SET airlock.wait = '60s'",
        "-c",
        "DELETE FROM orders WHERE state = 'new'",
    ]);
    cmd.env("PGPASSWORD", &alice.password);
    let session = Background::spawn(cmd);
    let ts = review_post(&fake, 1).response["ts"]
        .as_str()
        .unwrap()
        .to_string();

    // Reject opens the modal right in the click's handling.
    let (st, body) = click(&proxy, BOB, REJECT, 1, &ts);
    assert_eq!(st, 200, "{body}");
    let opened = fake.wait_for("views.open", 1, WAIT);
    let view = &opened[0].body["view"];
    assert_eq!(view["type"], "modal", "{view}");
    let metadata = view["private_metadata"]
        .as_str()
        .expect("metadata")
        .to_string();
    assert_eq!(
        status(&proxy, 1),
        "pending",
        "a click alone rejects nothing"
    );

    let reason = "use the nightly batch job <!channel> *now*";
    let (st, body) = post_interaction(
        &interactions_url(&proxy),
        SECRET,
        now_unix(),
        &view_submission(
            BOB,
            "airlock_reject_reason",
            &metadata,
            "reason",
            "reason",
            reason,
        ),
    );
    assert_eq!(st, 200, "{body}");

    let out = session.wait(WAIT);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr().contains("use the nightly batch job"),
        "the waiting session must get the reason: {}",
        out.describe()
    );
    assert_eq!(status(&proxy, 1), "rejected");
    let update = wait_update(&fake, &ts, "Rejected* by bob");
    let text = blocks_text(&update);
    assert!(text.contains("use the nightly batch job"), "{text}");
    assert!(
        !text.contains("<!channel>"),
        "the reason must be escaped: {text}"
    );
    wait_dm(&fake, ALICE, "rejected by bob");
    assert_eq!(states(db), "1=new,2=new,3=new,4=new,5=new");
}

#[test]
fn two_approvals_across_two_processes_sharing_a_postgres_store() {
    let db = "airlock_t_slack_two";
    seed(db);
    let store = fresh_pg_store("slack_two");
    let fake = fake_slack::FakeSlack::start();
    let mut cfg = config(db, &fake, 2);
    cfg.store_url = Some(store);
    let first = Proxy::start(cfg.clone());
    let second = Proxy::start(cfg);

    assert!(hold(
        &first,
        db,
        "alice",
        "needs two",
        "UPDATE orders SET state = 'x' WHERE id = 3"
    )
    .stderr()
    .contains("AL001"));
    let ts = review_post(&fake, 1).response["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = click(&first, BOB, APPROVE, 1, &ts);
    assert_eq!(st, 200, "{body}");
    wait_update(&fake, &ts, "1 of 2 approvals (bob)");
    assert_eq!(status(&first, 1), "pending");
    // Bob again, on the other process: distinct approvers only.
    let (st, body) = click(&second, BOB, APPROVE, 1, &ts);
    assert_eq!(st, 200, "{body}");
    wait_ephemeral(&fake, BOB, "You cannot approve #1");
    assert_eq!(status(&first, 1), "pending");
    // The second click lands on the other process.
    let (st, body) = click(&second, CAROL, APPROVE, 1, &ts);
    assert_eq!(st, 200, "{body}");
    assert_eq!(status(&second, 1), "approved");
    wait_update(&fake, &ts, "Approved* by bob, carol");
    wait_dm(&fake, ALICE, "approved by bob, carol");
    // One review message in all, whichever process delivered.
    let posts = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == CHANNEL)
        .count();
    assert_eq!(posts, 1, "{}", fake.describe_calls());
}

#[test]
fn slack_outage_and_rate_limits_lose_nothing_across_a_restart() {
    let db = "airlock_t_slack_outage";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let state = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(db, &fake, 1);
    cfg.store_url = Some(format!(
        "sqlite://{}?mode=rwc",
        state.path().join("state.db").display()
    ));

    fake.set_down(Some(503));
    let proxy = Proxy::start(cfg.clone());
    for id in 1..=3 {
        let out = hold(
            &proxy,
            db,
            "alice",
            &format!("change {id}"),
            &format!("UPDATE orders SET state = 'o{id}' WHERE id = {id}"),
        );
        assert!(out.stderr().contains("AL001"), "{}", out.describe());
    }
    // Bob decides on #1 through the CLI while Slack is down.
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["requests", "approve", "1"])
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", BOB_API_TOKEN);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    // Attempts were made and failed.
    let deadline = std::time::Instant::now() + WAIT;
    while fake.calls().iter().filter(|c| c.status == 503).count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            fake.describe_calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        fake.calls().iter().all(|c| !c.ok()),
        "{}",
        fake.describe_calls()
    );

    // Restart airlock while Slack is still down.
    proxy.signal("TERM");
    let mut proxy = proxy;
    assert!(
        proxy.wait_exit(Duration::from_secs(20)).is_some(),
        "airlock did not stop"
    );
    drop(proxy);
    let proxy = Proxy::start(cfg);

    // Slack comes back rate-limiting, then healthy.
    fake.fail_next(2, 429, Some(1));
    fake.set_down(None);
    for id in 1..=3 {
        review_post(&fake, id);
    }
    let ts1 = review_post(&fake, 1).response["ts"]
        .as_str()
        .unwrap()
        .to_string();
    wait_update(&fake, &ts1, "Approved* by bob");
    wait_dm(&fake, ALICE, "#1");

    // Exactly one review message per request, and each request's calls in
    // order: its post before any update of it.
    let calls = fake.calls();
    for id in 1..=3 {
        let posts: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.ok()
                    && c.method == "chat.postMessage"
                    && c.body["channel"] == CHANNEL
                    && is_about(c, id)
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(posts.len(), 1, "request #{id}: {}", fake.describe_calls());
    }
    let first_post_1 = calls
        .iter()
        .position(|c| c.ok() && c.method == "chat.postMessage" && c.response["ts"] == ts1.as_str())
        .expect("post of #1");
    let first_update_1 = calls
        .iter()
        .position(|c| c.ok() && c.method == "chat.update" && c.body["ts"] == ts1.as_str())
        .expect("update of #1");
    assert!(first_post_1 < first_update_1, "{}", fake.describe_calls());
    assert!(
        calls.iter().any(|c| c.status == 429),
        "the rate limit was exercised: {}",
        fake.describe_calls()
    );
    drop(proxy);
}

#[test]
fn hostile_text_is_escaped_and_passwords_redacted_in_slack() {
    let db = "airlock_t_slack_escape";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let mut cfg = config(db, &fake, 1);
    cfg.extra_toml
        .push_str("\n[redaction]\npatterns = [\"tok_[a-z0-9]+\"]\n");
    let proxy = Proxy::start(cfg);
    let out = hold(
        &proxy,
        db,
        "alice",
        "<!channel> <@U123> *bold* ~strike~ `code` ```",
        "ALTER ROLE airlock_t_nobody PASSWORD 'hunter2'",
    );
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let out = hold(
        &proxy,
        db,
        "alice",
        "backticks",
        "UPDATE orders SET state = '```<!here>```' WHERE id = 4",
    );
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let first = review_post(&fake, 1);
    let second = review_post(&fake, 2);
    for post in [&first, &second] {
        let all = post.body.to_string();
        assert!(!all.contains("hunter2"), "password reached Slack: {all}");
        for bad in ["<!channel>", "<@U123>", "<!here>"] {
            assert!(!all.contains(bad), "{bad} reached Slack unescaped: {all}");
        }
    }
    assert!(blocks_text(&first).contains("&lt;!channel&gt;"));
    assert!(blocks_text(&first).contains("PASSWORD"));

    // A configured sensitive pattern is redacted too, in Slack, the API and the page.
    let out = hold(
        &proxy,
        db,
        "alice",
        "rotate",
        "UPDATE orders SET state = 'tok_s3cr3t' WHERE id = 5",
    );
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let third = review_post(&fake, 3);
    assert!(
        !third.body.to_string().contains("tok_s3cr3t"),
        "{}",
        third.body
    );
    assert!(
        blocks_text(&third).contains("state = '***'"),
        "{}",
        third.body
    );
    for id in [1, 3] {
        let shown = request_json(&proxy, id).to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok_s3cr3t"),
            "the API must redact: {shown}"
        );
        let (st, page) = http_get(
            proxy.http_port,
            &format!("/requests/{id}"),
            Some(("bob", BOB_API_TOKEN)),
        );
        assert_eq!(st, 200, "{page}");
        assert!(
            !page.contains("hunter2") && !page.contains("tok_s3cr3t"),
            "the page must redact: {page}"
        );
    }
    // The statement block of #2 holds exactly one code block.
    let statement = second.body["blocks"]
        .as_array()
        .and_then(|b| {
            b.iter().find_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .filter(|t| t.starts_with("*Statement*"))
                    .map(str::to_string)
            })
        })
        .expect("statement block");
    assert_eq!(statement.matches("```").count(), 2, "{statement}");
}

#[test]
fn socket_mode_clicks_follow_the_same_rules_and_survive_a_dropped_socket() {
    let db = "airlock_t_slack_socket";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let mut cfg = config(db, &fake, 1);
    // Socket Mode: no signing secret, the app-level token opens the socket.
    cfg.extra_toml = cfg
        .extra_toml
        .replace("mode = \"http\"", "mode = \"socket\"")
        .replace(
            "signing_secret_env = \"AIRLOCK_TEST_SLACK_SECRET\"",
            "app_token_env = \"AIRLOCK_TEST_SLACK_APP\"",
        );
    cfg.env
        .push(("AIRLOCK_TEST_SLACK_APP".into(), "xapp-airlock-test".into()));
    let proxy = Proxy::start(cfg);
    let deadline = std::time::Instant::now() + WAIT;
    while fake.socket_connections() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "airlock opened no socket: {}",
            fake.describe_calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The HTTP endpoint is not served in Socket Mode.
    let (st, _) = click(&proxy, BOB, APPROVE, 1, "1.1");
    assert_eq!(st, 404);

    for id in 1..=2 {
        let out = hold(
            &proxy,
            db,
            "alice",
            "via socket",
            &format!("UPDATE orders SET state = 's' WHERE id = {id}"),
        );
        assert!(out.stderr().contains("AL001"), "{}", out.describe());
    }
    let ts1 = review_post(&fake, 1).response["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let ts2 = review_post(&fake, 2).response["ts"]
        .as_str()
        .unwrap()
        .to_string();

    // The requester's own click is refused over the socket as over HTTP.
    assert!(fake.socket_send_interaction(block_action(ALICE, APPROVE, "1", CHANNEL, &ts1), WAIT));
    wait_ephemeral(&fake, ALICE, "You cannot approve #1");
    assert_eq!(status(&proxy, 1), "pending");
    // A mapped dba approves.
    assert!(fake.socket_send_interaction(block_action(BOB, APPROVE, "1", CHANNEL, &ts1), WAIT));
    wait_update(&fake, &ts1, "Approved* by bob");
    assert_eq!(status(&proxy, 1), "approved");

    // The socket drops: airlock reconnects and the next click works.
    let connects = fake.socket_connects();
    fake.drop_sockets();
    let deadline = std::time::Instant::now() + WAIT;
    while fake.socket_connects() <= connects || fake.socket_connections() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "airlock did not reconnect: {}",
            fake.describe_calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fake.socket_send_interaction(block_action(CAROL, APPROVE, "2", CHANNEL, &ts2), WAIT));
    wait_update(&fake, &ts2, "Approved* by carol");
    assert_eq!(status(&proxy, 2), "approved");
}

#[test]
fn a_review_message_deleted_in_slack_is_posted_again() {
    let db = "airlock_t_slack_deleted";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let proxy = Proxy::start(config(db, &fake, 1));
    let update = "UPDATE orders SET state = 'd' WHERE id = 2";
    let out = hold(&proxy, db, "alice", "r", update);
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let ts = review_post(&fake, 1).response["ts"]
        .as_str()
        .expect("ts")
        .to_string();
    fake.delete_message(CHANNEL, &ts);

    let mut cmd = Command::new(airlock_bin());
    cmd.args(["requests", "approve", "1"])
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", BOB_API_TOKEN);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());

    // A second review message for #1, showing the approval; later updates follow it.
    let again = wait_call(&fake, "chat.postMessage", "re-post of #1", |c| {
        c.body["channel"] == CHANNEL
            && is_about(c, 1)
            && blocks_text(c).contains("Approved* by bob")
    });
    let new_ts = again.response["ts"].as_str().expect("ts").to_string();
    assert_ne!(new_ts, ts);
    let out = hold(&proxy, db, "alice", "r", update);
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    wait_update(&fake, &new_ts, "Executed* — 1 row(s)");
}

/// The whole flow on a protected MariaDB target, reviewed in Slack: the
/// held UPDATE's review message carries the earlier run on the dev target,
/// bob's signed click approves it, alice's re-send returns the affected
/// rows, the message and her DM say so, the rollback restores the rows,
/// and the audit chain verifies.
#[test]
fn a_mysql_change_is_approved_in_slack_and_runs_on_resend() {
    let (dev_schema, prod_schema) = ("airlock_t_slack_my_dev", "airlock_t_slack_my_prod");
    for s in [dev_schema, prod_schema] {
        fresh_schema(s);
        mariadb_admin(&format!(
            "CREATE TABLE `{s}`.orders (id INT PRIMARY KEY, state VARCHAR(20));
             INSERT INTO `{s}`.orders VALUES (1, 'new'), (2, 'new'), (3, 'new')"
        ));
    }
    let fake = fake_slack::FakeSlack::start();
    let base = ProxyConfig::mariadb_family(dev_schema, prod_schema);
    let proxy = Proxy::start(with_slack(base, &fake, 1));
    let states = || {
        mariadb_admin(&format!(
            "SELECT GROUP_CONCAT(CONCAT(id, '=', state) ORDER BY id) FROM `{prod_schema}`.orders"
        ))
        .trim()
        .to_string()
    };

    proxy
        .mysql(
            "alice",
            &[
                dev_schema,
                "-e",
                "UPDATE orders SET state = 'new' WHERE id = 3",
            ],
            None,
        )
        .assert_success("the run on dev");
    assert!(
        common::requests::wait_for_executions(&proxy, dev_schema, 1),
        "the dev run was not recorded"
    );
    let update = "UPDATE orders SET state = 'shipped' WHERE id = 1";
    let script = format!(
        "SET @airlock_reason = 'ship order 1 for OPS-9';\n\
         SET @airlock_rollback = 'UPDATE orders SET state = ''new'' WHERE id = 1';\n{update};\n"
    );
    let held = proxy.mysql("alice", &["--force", prod_schema], Some(script.as_bytes()));
    assert!(
        held.stderr().contains("ERROR 50001 (AL001)")
            && held
                .stderr()
                .contains("https://airlock.example.test/requests/1"),
        "{}",
        held.describe()
    );

    let post = review_post(&fake, 1);
    let blocks = blocks_text(&post);
    for needle in [
        update,
        "alice",
        prod_schema,
        "ship order 1 for OPS-9",
        "Earlier runs in lower environments",
        &format!("dev on {dev_schema} by alice"),
        APPROVE,
    ] {
        assert!(blocks.contains(needle), "{needle:?} missing: {blocks}");
    }
    let ts = post.response["ts"].as_str().expect("ts").to_string();
    let (st, body) = click(&proxy, BOB, APPROVE, 1, &ts);
    assert_eq!(st, 200, "{body}");
    wait_update(&fake, &ts, "Approved* by bob");
    wait_dm(&fake, ALICE, "approved by bob");
    assert_eq!(states(), "1=new,2=new,3=new", "approval alone runs nothing");

    let ran = proxy.mysql("alice", &["-vvv", prod_schema, "-e", update], None);
    ran.assert_success("the re-send");
    assert!(
        ran.stdout().contains("1 row affected"),
        "{}",
        ran.describe()
    );
    assert_eq!(states(), "1=shipped,2=new,3=new");
    wait_update(&fake, &ts, "Executed* — 1 row(s)");
    wait_dm(&fake, ALICE, "was executed: 1 row(s)");

    proxy
        .mysql(
            "alice",
            &[prod_schema, "-e", "CALL airlock.rollback(1)"],
            None,
        )
        .assert_success("the rollback");
    assert_eq!(states(), "1=new,2=new,3=new");
    assert_eq!(status(&proxy, 1), "rolled_back");
    proxy.assert_audit_verifies();
}

/// A 10 kB statement full of `<` and `&` and a 4 kB reason still make a
/// review message Slack accepts (the fake enforces Block Kit's limits);
/// when Slack refuses one anyway, the minimal message goes out instead,
/// with the buttons, and the fallback is counted.
#[test]
fn review_messages_stay_within_block_kit_limits_or_fall_back() {
    let db = "airlock_t_slack_limits";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let proxy = Proxy::start(config(db, &fake, 1));
    let noise = "<&".repeat(5000);
    let update = format!("UPDATE orders SET state = 'x' WHERE id = 1 /* {noise} */");
    let reason = "because <&> ".repeat(350);
    let out = hold(&proxy, db, "alice", &reason, &update);
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let post = review_post(&fake, 1);
    let blocks = blocks_text(&post);
    let problems = common::block_kit::problems(&post.body);
    assert!(problems.is_empty(), "{problems:?}");
    for needle in [
        "*Statement*",
        "UPDATE orders SET state = 'x' WHERE id = 1 /* &lt;&amp;",
        "_cut: ",
        "Reason: because &lt;&amp;&gt;",
        APPROVE,
    ] {
        assert!(blocks.contains(needle), "{needle:?} missing: {blocks}");
    }

    // Slack refuses the next message anyway: the minimal one goes out.
    fake.refuse_blocks_next(1);
    let out = hold(
        &proxy,
        db,
        "alice",
        "second",
        "UPDATE orders SET state = 'y' WHERE id = 2",
    );
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let fallback = review_post(&fake, 2);
    let blocks = blocks_text(&fallback);
    for needle in [
        "could not be posted (Slack: invalid_blocks)",
        "https://airlock.example.test/requests/2",
        APPROVE,
        REJECT,
    ] {
        assert!(blocks.contains(needle), "{needle:?} missing: {blocks}");
    }
    let ts = fallback.response["ts"].as_str().expect("ts").to_string();
    let (code, body) = click(&proxy, BOB, APPROVE, 2, &ts);
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&proxy, 2), "approved");
    let (_, metrics) = http_get(proxy.http_port, "/metrics", None);
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("slack_delivery_errors") && l.contains("outcome=\"fallback\"")),
        "{metrics}"
    );
}

/// DMs follow the request's events, not its state when delivery catches
/// up: approved and run within 100 ms while Slack is down still sends
/// "approved" before "executed"; a rollback during a 429 period still
/// sends "rolled back"; each once, in order.
#[test]
fn every_dm_goes_out_once_in_order_however_fast_the_request_moves() {
    let db = "airlock_t_slack_dm_order";
    seed(db);
    let fake = fake_slack::FakeSlack::start();
    let cfg = config(db, &fake, 1).with_api_token("alice", ALICE_API_TOKEN);
    let proxy = Proxy::start(cfg);
    let out = proxy.conn("alice", &format!("{db}-prod")).psql(&[
        "-X",
        "-c",
        "SET airlock.reason = 'quick'",
        "-c",
        "SET airlock.rollback = 'UPDATE orders SET state = ''new'' WHERE id = 3'",
        "-c",
        "UPDATE orders SET state = 'fast' WHERE id = 3",
    ]);
    assert!(
        out.stderr().contains("held for approval as request #1"),
        "{}",
        out.describe()
    );
    review_post(&fake, 1);
    let cli = |token: &str, args: &[&str]| common::requests::requests_cli(&proxy, token, args);
    // Slack is down while the request is approved and run (within about
    // 100 ms): delivery catches up only once the request is executed.
    fake.set_down(Some(503));
    let started = std::time::Instant::now();
    cli(BOB_API_TOKEN, &["approve", "1"]).assert_success("approve");
    cli(ALICE_API_TOKEN, &["run", "1"]).assert_success("run");
    eprintln!("approved and ran in {:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    fake.set_down(None);
    wait_dm(&fake, ALICE, "was executed: 1 row(s)");
    // Slack rate-limits the next calls; the rollback's DM waits, and comes.
    fake.fail_next(3, 429, Some(1));
    cli(ALICE_API_TOKEN, &["rollback", "1"]).assert_success("rollback");
    wait_dm(&fake, ALICE, "was rolled back");
    let dms: Vec<String> = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.ok() && c.body["channel"] == format!("D{ALICE}").as_str())
        .map(|c| text_of(&c).to_string())
        .collect();
    let kinds: Vec<&str> = dms
        .iter()
        .map(|t| {
            if t.contains("approved by bob") {
                "approved"
            } else if t.contains("was executed") {
                "executed"
            } else if t.contains("was rolled back") {
                "rolled back"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(kinds, ["approved", "executed", "rolled back"], "{dms:#?}");
    assert_eq!(states(db), "1=new,2=new,3=new,4=new,5=new");
}
