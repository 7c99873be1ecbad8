//! Proves `tests/common/fake_slack.rs` against the real slack-morphism
//! client: every Web API method airlock uses, the injected failures as
//! slack-morphism reports them, the interaction payload builders and
//! signatures (checked by slack-morphism's own verifier and axum listener),
//! and a Socket Mode session with an interaction, an ack and a reconnect.

mod common;

use common::fake_slack::*;
use common::wait_until;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Connector = SlackClientHyperConnector<HttpConnector>;
type Client = SlackClient<Connector>;

const BOT_TOKEN: &str = "xoxb-test";
const APP_TOKEN: &str = "xapp-test";

fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A slack-morphism client pointed at the fake (plain HTTP).
fn client(fake: &FakeSlack) -> Arc<Client> {
    Arc::new(SlackClient::new(
        SlackClientHyperConnector::with_connector(HttpConnector::new())
            .with_slack_api_url(&fake.api_url()),
    ))
}

fn token(value: &str) -> SlackApiToken {
    SlackApiToken::new(value.into())
}

fn review_blocks() -> Vec<SlackBlock> {
    vec![
        SlackSectionBlock::new()
            .with_text(md!("*Request #1* on orders-prod"))
            .into(),
        SlackActionsBlock::new(vec![
            SlackBlockButtonElement::new("Approve".into())
                .with_action_id("approve".into())
                .with_value("1".into())
                .into(),
            SlackBlockButtonElement::new("Reject".into())
                .with_action_id("reject".into())
                .with_value("1".into())
                .into(),
        ])
        .with_block_id("decision".into())
        .into(),
    ]
}

#[test]
fn web_api_methods_answer_what_slack_morphism_expects() {
    let fake = FakeSlack::start();
    let rt = runtime();
    let client = client(&fake);
    let bot = token(BOT_TOKEN);
    rt.block_on(async {
        let s = client.open_session(&bot);
        let content = SlackMessageContent::new()
            .with_text("request #1".into())
            .with_blocks(review_blocks());
        let posted = s
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                "C0REVIEW".into(),
                content.clone(),
            ))
            .await
            .expect("chat.postMessage");
        assert_eq!(posted.channel.0, "C0REVIEW");
        assert_eq!(posted.message.origin.ts, posted.ts);
        assert_eq!(posted.message.content.text.as_deref(), Some("request #1"));
        assert_eq!(
            posted.message.content.blocks.as_ref().map(Vec::len),
            Some(2)
        );

        let second = s
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                "#airlock-reviews".into(),
                content.clone(),
            ))
            .await
            .expect("second chat.postMessage");
        assert_ne!(second.ts, posted.ts, "every post gets a fresh ts");
        assert_eq!(second.channel.0, "CAIRLOCKREVIEWS", "names answer an id");

        let updated = s
            .chat_update(&SlackApiChatUpdateRequest::new(
                posted.channel.clone(),
                SlackMessageContent::new().with_text("approved by bob".into()),
                posted.ts.clone(),
            ))
            .await
            .expect("chat.update");
        assert_eq!(
            (updated.channel, updated.ts),
            (posted.channel.clone(), posted.ts.clone())
        );

        let unknown = s
            .chat_update(&SlackApiChatUpdateRequest::new(
                "C0REVIEW".into(),
                SlackMessageContent::new().with_text("x".into()),
                "1.000001".into(),
            ))
            .await;
        match unknown {
            Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "message_not_found"),
            other => panic!("update of an unknown ts: {other:?}"),
        }

        let dm = s
            .conversations_open(
                &SlackApiConversationsOpenRequest::new().with_users(vec!["U0ALICE".into()]),
            )
            .await
            .expect("conversations.open");
        assert_eq!(dm.channel.id.0, "DU0ALICE");

        let view = SlackView::Modal(
            SlackModalView::new(
                "Reject request #1".into(),
                vec![SlackInputBlock::new(
                    "Reason".into(),
                    SlackBlockPlainTextInputElement::new()
                        .with_action_id("reason".into())
                        .with_multiline(true)
                        .into(),
                )
                .with_block_id("reason".into())
                .into()],
            )
            .with_callback_id("reject_reason".into())
            .with_private_metadata("1".into())
            .with_submit("Reject".into()),
        );
        let opened = s
            .views_open(&SlackApiViewsOpenRequest::new("1.2.trigger".into(), view))
            .await
            .expect("views.open");
        assert!(!opened.view.state_params.id.0.is_empty());
        match opened.view.view {
            SlackView::Modal(m) => {
                assert_eq!(m.callback_id, Some("reject_reason".into()));
                assert_eq!(m.private_metadata.as_deref(), Some("1"));
            }
            other => panic!("views.open answered {other:?}"),
        }

        s.chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
            "C0REVIEW".into(),
            "U0MALLORY".into(),
            SlackMessageContent::new().with_text("you cannot approve your own request".into()),
        ))
        .await
        .expect("chat.postEphemeral");
    });

    let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.update",
            "chat.update",
            "conversations.open",
            "views.open",
            "chat.postEphemeral"
        ]
    );
    assert!(fake
        .calls()
        .iter()
        .all(|c| c.token.as_deref() == Some(BOT_TOKEN)));
    let posts = fake.wait_for("chat.postMessage", 2, Duration::from_secs(1));
    assert_eq!(posts[0].body["channel"], "C0REVIEW");
    assert_eq!(posts[0].body["text"], "request #1");
    assert_eq!(
        posts[0].body["blocks"][1]["elements"][0]["action_id"],
        "approve"
    );
    assert_eq!(
        fake.calls_to("chat.update").len(),
        1,
        "the refused update is not ok"
    );
    assert_eq!(
        fake.calls_to("conversations.open")[0].body["users"],
        json!(["U0ALICE"])
    );
    let ephemeral = &fake.calls_to("chat.postEphemeral")[0];
    assert_eq!(ephemeral.body["user"], "U0MALLORY");
    assert!(ephemeral.response["message_ts"].is_string());
}

#[test]
fn injected_failures_surface_as_slack_morphism_errors() {
    let fake = FakeSlack::start();
    let rt = runtime();
    let client = client(&fake);
    let bot = token(BOT_TOKEN);
    let post = || async {
        client
            .open_session(&bot)
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                "C0REVIEW".into(),
                SlackMessageContent::new().with_text("hi".into()),
            ))
            .await
    };
    rt.block_on(async {
        fake.fail_next(1, 429, Some(1));
        match post().await {
            Err(SlackClientError::RateLimitError(e)) => {
                assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
                assert_eq!(e.code.as_deref(), Some("ratelimited"));
            }
            other => panic!("expected a rate limit error, got {other:?}"),
        }
        post().await.expect("the failure was for one call only");

        fake.fail_next(2, 500, None);
        for _ in 0..2 {
            match post().await {
                Err(SlackClientError::HttpError(e)) => assert_eq!(e.status_code.as_u16(), 500),
                other => panic!("expected an HTTP error, got {other:?}"),
            }
        }

        fake.set_down(Some(503));
        for _ in 0..3 {
            match post().await {
                Err(SlackClientError::HttpError(e)) => {
                    assert_eq!(e.status_code.as_u16(), 503);
                    assert!(e
                        .http_response_body
                        .unwrap_or_default()
                        .contains("fatal_error"));
                }
                other => panic!("expected an HTTP error, got {other:?}"),
            }
        }
        fake.set_down(None);
        post().await.expect("back up");

        let wrong_token = client
            .open_session(&token(APP_TOKEN))
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                "C0REVIEW".into(),
                SlackMessageContent::new().with_text("hi".into()),
            ))
            .await;
        match wrong_token {
            Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "not_allowed_token_type"),
            other => panic!("an app token must not post: {other:?}"),
        }
    });
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 200, 500, 500, 503, 503, 503, 200, 200]);
    assert_eq!(fake.calls_to("chat.postMessage").len(), 2);
}

#[test]
#[should_panic(expected = "expected 1 ok call(s) of views.open")]
fn wait_for_panics_with_the_calls() {
    let fake = FakeSlack::start();
    fake.wait_for("views.open", 1, Duration::from_millis(100));
}

#[test]
fn payload_builders_deserialize_as_interaction_events() {
    let click = block_action("U0BOB", "approve", "42", "C0REVIEW", "1700000000.000101");
    match serde_json::from_value::<SlackInteractionEvent>(click.clone()) {
        Ok(SlackInteractionEvent::BlockActions(ev)) => {
            assert_eq!(ev.user.map(|u| u.id.0), Some("U0BOB".into()));
            let action = &ev.actions.expect("actions")[0];
            assert_eq!(action.action_id.0, "approve");
            assert_eq!(
                action.block_id.as_ref().map(|b| b.0.as_str()),
                Some("decision")
            );
            assert_eq!(action.value.as_deref(), Some("42"));
            match ev.container {
                SlackInteractionActionContainer::Message(m) => {
                    assert_eq!(m.message_ts.0, "1700000000.000101");
                    assert_eq!(m.channel_id.map(|c| c.0), Some("C0REVIEW".into()));
                }
                other => panic!("container {other:?}"),
            }
            assert_eq!(ev.channel.map(|c| c.id.0), Some("C0REVIEW".into()));
            assert!(!ev.trigger_id.0.is_empty());
            assert!(ev.response_url.is_some());
        }
        other => panic!("block_action does not deserialize as BlockActions: {other:?}"),
    }
    let again = block_action("U0BOB", "approve", "42", "C0REVIEW", "1700000000.000101");
    assert_ne!(
        again["trigger_id"], click["trigger_id"],
        "trigger ids are unique"
    );

    let submit = view_submission(
        "U0BOB",
        "reject_reason",
        "42",
        "reason",
        "reason_input",
        "no",
    );
    match serde_json::from_value::<SlackInteractionEvent>(submit) {
        Ok(SlackInteractionEvent::ViewSubmission(ev)) => {
            assert_eq!(ev.user.id.0, "U0BOB");
            let SlackView::Modal(modal) = &ev.view.view else {
                panic!("not a modal: {:?}", ev.view.view)
            };
            assert_eq!(modal.callback_id, Some("reject_reason".into()));
            assert_eq!(modal.private_metadata.as_deref(), Some("42"));
            let state = ev.view.state_params.state.expect("state");
            let value = &state.values[&"reason".into()][&"reason_input".into()];
            assert_eq!(value.value.as_deref(), Some("no"));
        }
        other => panic!("view_submission does not deserialize as ViewSubmission: {other:?}"),
    }
}

#[test]
fn signatures_match_slack_morphism_verifier() {
    let now = now_unix();
    let body = interaction_body(&block_action("U1", "approve", "1", "C1", "1.2"));
    assert!(body.starts_with("payload=%7B"), "{body}");
    let verifier = SlackEventSignatureVerifier::new(&"s3cret".to_string().into());
    verifier
        .verify(&sign("s3cret", now, &body), &body, &now.to_string())
        .expect("a correct signature verifies");
    assert!(verifier
        .verify(&sign("other", now, &body), &body, &now.to_string())
        .is_err());
    assert!(verifier
        .verify(
            &sign("s3cret", now - 600, &body),
            &body,
            &(now - 600).to_string()
        )
        .is_err());
}

/// What slack-morphism's axum listener handed to the route.
async fn interaction_route(
    axum::Extension(event): axum::Extension<SlackInteractionEvent>,
) -> String {
    let v = serde_json::to_value(&event).expect("serialize event");
    v["type"].as_str().unwrap_or("?").to_string()
}

#[test]
fn signed_posts_pass_slack_morphism_axum_listener() {
    const SECRET: &str = "signing-s3cret";
    let fake = FakeSlack::start();
    let rt = runtime();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!(
        "http://127.0.0.1:{}/slack/interactions",
        listener.local_addr().expect("addr").port()
    );
    let env = Arc::new(SlackClientEventsListenerEnvironment::new(client(&fake)));
    let events = SlackEventsAxumListener::new(env);
    let app = axum::Router::new().route(
        "/slack/interactions",
        axum::routing::post(interaction_route).layer(
            events
                .events_layer(&SECRET.to_string().into())
                .with_event_extractor(SlackEventsExtractors::interaction_event()),
        ),
    );
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        axum::serve(listener, app).await.expect("serve");
    });

    let now = now_unix();
    let click = block_action("U0BOB", "approve", "1", "C0REVIEW", "1700000000.000101");
    assert_eq!(
        post_interaction(&url, SECRET, now, &click),
        (200, "block_actions".to_string())
    );
    let submit = view_submission("U0BOB", "reject_reason", "1", "reason", "reason", "risky");
    assert_eq!(
        post_interaction(&url, SECRET, now, &submit),
        (200, "view_submission".to_string())
    );

    let body = interaction_body(&click);
    let forged = [
        (
            Some(now.to_string()),
            Some(sign("wrong", now, &body)),
            body.clone(),
        ),
        (
            Some(now.to_string()),
            Some(sign(SECRET, now, &body)),
            body.replace("U0BOB", "U0EVE"),
        ),
        (
            Some((now - 600).to_string()),
            Some(sign(SECRET, now - 600, &body)),
            body.clone(),
        ),
        (None, Some(sign(SECRET, now, &body)), body.clone()),
        (Some(now.to_string()), None, body.clone()),
    ];
    for (ts, sig, body) in forged {
        let (status, answer) = post_interaction_raw(&url, ts.as_deref(), sig.as_deref(), &body);
        assert_ne!(
            status, 200,
            "forged post accepted ({ts:?} {sig:?}): {answer}"
        );
    }
}

/// Interactions the Socket Mode callback saw.
#[derive(Default)]
struct Seen(Mutex<Vec<SlackInteractionEvent>>);

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let state = state.read().await;
    let seen: &Arc<Seen> = state.get_user_state().expect("user state");
    seen.0.lock().unwrap().push(event);
    Ok(())
}

#[test]
fn socket_mode_connects_acks_and_reconnects() {
    let fake = FakeSlack::start();
    let rt = runtime();
    let seen = Arc::new(Seen::default());
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client(&fake)).with_user_state(seen.clone()),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new().with_interaction_events(on_interaction);
    // Default config: two connections, the second one 5 s after the first.
    let listener =
        SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
    rt.block_on(async {
        listener
            .listen_for(&token(APP_TOKEN))
            .await
            .expect("listen_for");
        listener.start().await;
    });
    let open = |n: usize| fake.socket_connections() == n;
    assert!(
        wait_until(Duration::from_secs(20), || open(2)),
        "slack-morphism did not open 2 sockets: {}; calls:\n{}",
        fake.socket_connections(),
        fake.describe_calls()
    );
    let opens = fake.calls_to("apps.connections.open");
    assert!(opens.iter().all(|c| c.token.as_deref() == Some(APP_TOKEN)));
    assert_eq!(opens[0].response["url"], json!(fake.socket_url()));

    let click = block_action("U0BOB", "approve", "7", "C0REVIEW", "1700000000.000101");
    assert!(
        fake.socket_send_interaction(click, Duration::from_secs(5)),
        "no ack"
    );
    let count = || seen.0.lock().unwrap().len();
    assert_eq!(count(), 1);
    match &seen.0.lock().unwrap()[0] {
        SlackInteractionEvent::BlockActions(ev) => {
            assert_eq!(
                ev.actions.as_ref().expect("actions")[0].action_id.0,
                "approve"
            )
        }
        other => panic!("callback saw {other:?}"),
    }
    let acks: Vec<Value> = fake.socket_acks().into_values().collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].as_object().map(|o| o.len()),
        Some(1),
        "a bare ack: {acks:?}"
    );

    let connects = fake.socket_connects();
    fake.drop_sockets();
    assert_eq!(fake.socket_connections(), 0);
    assert!(
        wait_until(Duration::from_secs(10), || open(2)
            && fake.socket_connects() >= connects + 2),
        "slack-morphism did not reconnect: {} open, {} connects",
        fake.socket_connections(),
        fake.socket_connects()
    );
    let submit = view_submission("U0BOB", "reject_reason", "7", "reason", "reason", "no");
    assert!(
        fake.socket_send_interaction(submit, Duration::from_secs(5)),
        "no ack after reconnect"
    );
    assert!(matches!(
        seen.0.lock().unwrap()[1],
        SlackInteractionEvent::ViewSubmission(_)
    ));

    rt.block_on(listener.shutdown());
    assert!(
        wait_until(Duration::from_secs(10), || open(0)),
        "sockets still open after shutdown: {}",
        fake.socket_connections()
    );
}
