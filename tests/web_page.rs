//! The request page (`/requests/N`, the link in NOTICEs and Slack): HTTP
//! Basic with the user's API token, and Approve / Reject forms for
//! reviewers who are not on Slack, guarded against cross-site posts and
//! bound by the same workflow rules as the CLI.

mod common;

use common::*;
use serde_json::Value;

const ALICE_TOKEN: &str = "alice-web-token-0123456789abcdef";
const BOB_TOKEN: &str = "bob-web-token-0123456789abcdef";
const MALLORY_TOKEN: &str = "mallory-web-token-0123456789abcdef";
const PUBLIC_URL: &str = "https://airlock.example.test";

fn status_of(port: u16, id: i64) -> String {
    let (st, _, body) = http_raw(
        port,
        "GET",
        &format!("/api/v1/requests/{id}"),
        &[("Authorization", format!("Bearer {BOB_TOKEN}"))],
        "",
    );
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["request"]["status"].as_str().expect("status").to_string()
}

fn post_form(
    port: u16,
    path: &str,
    user: (&str, &str),
    origin: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut headers = vec![
        ("Authorization", basic_auth(user.0, user.1)),
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        ),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o.to_string()));
    }
    http_raw(port, "POST", path, &headers, body)
}

#[test]
fn reviewers_decide_on_the_request_page_and_cross_site_posts_are_refused() {
    let db = "airlock_t_web_page";
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    );
    let mut cfg = ProxyConfig::for_db(db)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN)
        .with_api_token("mallory", MALLORY_TOKEN);
    cfg.server_extra
        .push(("public_url".into(), toml_str(PUBLIC_URL)));
    let proxy = Proxy::start(cfg);
    let port = proxy.http_port;
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    for id in 1..=2 {
        let out = alice.psql(&[
            "-X",
            "-c",
            "SET airlock.reason = 'web'",
            "-c",
            &format!("UPDATE t SET v = 'x' WHERE id = {id}"),
        ]);
        assert!(
            out.stderr().contains("held for approval"),
            "{}",
            out.describe()
        );
    }
    let own = format!("http://127.0.0.1:{port}");

    // Only signed-in users see it; reviewers get the forms, the requester does not.
    let (st, _, _) = http_raw(port, "GET", "/requests/1", &[], "");
    assert_eq!(st, 401);
    let (st, _, page) = http_raw(
        port,
        "GET",
        "/requests/1",
        &[("Authorization", basic_auth("bob", BOB_TOKEN))],
        "",
    );
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains("/requests/1/approve") && page.contains("/requests/1/reject"),
        "{page}"
    );
    let (_, _, page) = http_raw(
        port,
        "GET",
        "/requests/1",
        &[("Authorization", basic_auth("alice", ALICE_TOKEN))],
        "",
    );
    assert!(!page.contains("/requests/1/approve"), "{page}");

    // Cross-site or origin-less posts decide nothing.
    for origin in [None, Some("https://evil.example")] {
        let (st, _, body) = post_form(port, "/requests/1/approve", ("bob", BOB_TOKEN), origin, "");
        assert_eq!(st, 403, "{origin:?}: {body}");
    }
    let (st, _, _) = post_form(
        port,
        "/requests/1/approve",
        ("bob", "wrong"),
        Some(&own),
        "",
    );
    assert_eq!(st, 401);
    assert_eq!(status_of(port, 1), "pending");

    // From the page itself: approved, and back to the page.
    let (st, head, body) = post_form(
        port,
        "/requests/1/approve",
        ("bob", BOB_TOKEN),
        Some(&own),
        "",
    );
    assert_eq!(st, 303, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("location: /requests/1"),
        "{head}"
    );
    assert_eq!(status_of(port, 1), "approved");

    // The workflow's rules hold here too: mallory is no approver.
    let (st, _, body) = post_form(
        port,
        "/requests/2/approve",
        ("mallory", MALLORY_TOKEN),
        Some(&own),
        "",
    );
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("Refused"), "{body}");
    // A rejection needs a reason; through the public URL's origin it is accepted.
    let (st, _, _) = post_form(
        port,
        "/requests/2/reject",
        ("bob", BOB_TOKEN),
        Some(PUBLIC_URL),
        "reason=+",
    );
    assert_eq!(st, 400);
    let (st, _, body) = post_form(
        port,
        "/requests/2/reject",
        ("bob", BOB_TOKEN),
        Some(PUBLIC_URL),
        "reason=use+the+%3Cb%3Ebatch%3C%2Fb%3E+job",
    );
    assert_eq!(st, 303, "{body}");
    assert_eq!(status_of(port, 2), "rejected");
    let (_, _, page) = http_raw(
        port,
        "GET",
        "/requests/2",
        &[("Authorization", basic_auth("bob", BOB_TOKEN))],
        "",
    );
    assert!(
        page.contains("use the &lt;b&gt;batch&lt;/b&gt; job"),
        "{page}"
    );
    assert!(
        !page.contains("/requests/2/approve"),
        "no forms once decided: {page}"
    );

    // The decisions are audited with where they came from.
    let (_, _, body) = http_raw(
        port,
        "GET",
        "/api/v1/requests/1",
        &[("Authorization", format!("Bearer {BOB_TOKEN}"))],
        "",
    );
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["approvals"][0]["via"], "web", "{v}");
}
