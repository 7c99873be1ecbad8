//! An in-process fake of the Slack Web API and Socket Mode, for end-to-end
//! tests of airlock's Slack integration (SPEC §6).
//!
//! [`FakeSlack::start`] runs an axum server (Web API, under
//! [`FakeSlack::api_url`]) and a websocket listener (Socket Mode) on
//! 127.0.0.1, on a thread with its own tokio runtime. It answers what
//! slack-morphism 2.31's response types deserialize:
//!
//! - `chat.postMessage` (a fresh unique `ts` and a `message` echoing the
//!   text and blocks), `chat.update` (only of a message it posted, else
//!   `message_not_found`), `chat.postEphemeral` (`message_ts`),
//!   `views.open` (the submitted view plus `id`, `team_id`, `hash`, `state`),
//!   `conversations.open` (`channel.id = "D" + user id`);
//! - `apps.connections.open` with an app-level (`xapp-`) token: the
//!   websocket URL. Bot-token methods refuse `xapp-` tokens and every method
//!   refuses a missing token, as Slack does (HTTP 200, `ok: false`).
//!
//! Channel names (`#reviews`) are answered with a channel id (`CREVIEWS`) and
//! a user id as a channel (`U1`) with its DM (`DU1`), as Slack does, so code
//! that updates a message by channel name fails here as it would there.
//!
//! Every call is recorded ([`SlackCall`]), failures can be injected
//! ([`FakeSlack::set_down`], [`FakeSlack::fail_next`]), and Socket Mode
//! interactions can be pushed to the connected client
//! ([`FakeSlack::socket_send_interaction`]). The free functions build signed
//! HTTP interaction payloads to post to airlock's `/slack/interactions`.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Team id the fake answers with and puts in payloads.
pub const TEAM_ID: &str = "T0FAKE";
/// App id (Socket Mode `hello`, payloads, views).
pub const APP_ID: &str = "A0FAKE";
/// Bot id of the app's messages.
pub const BOT_ID: &str = "B0FAKE";
/// Bot user id of the app's messages.
pub const BOT_USER_ID: &str = "U0FAKEBOT";

/// One Web API call the fake received, with what it answered.
#[derive(Debug, Clone)]
pub struct SlackCall {
    /// API method, e.g. `chat.postMessage`.
    pub method: String,
    /// The `Authorization: Bearer` token, if any.
    pub token: Option<String>,
    /// The request body (JSON; a form body becomes an object of strings).
    pub body: Value,
    /// HTTP status the fake answered.
    pub status: u16,
    /// Body the fake answered (JSON; `{"ok":false,...}` on failures).
    pub response: Value,
}

impl SlackCall {
    /// Answered HTTP 200 with `ok: true`.
    pub fn ok(&self) -> bool {
        self.status == 200 && self.response["ok"] == json!(true)
    }
}

enum SocketCommand {
    Send(String),
    Close,
}

struct Socket {
    id: u64,
    tx: mpsc::UnboundedSender<SocketCommand>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<SlackCall>,
    down: Option<u16>,
    failures: VecDeque<(u16, Option<u64>)>,
    counter: u64,
    posted: HashSet<(String, String)>,
    /// Channels posted to (a deleted message leaves its channel known).
    channels: HashSet<String>,
    sockets: Vec<Socket>,
    socket_connects: usize,
    acks: HashMap<String, Value>,
    /// Content calls still to refuse with `invalid_blocks`, whatever they hold.
    refuse_blocks: usize,
}

impl FakeState {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

struct Shared {
    state: Mutex<FakeState>,
    socket_url: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake; stopped on drop.
pub struct FakeSlack {
    shared: Arc<Shared>,
    api_port: u16,
    socket_port: u16,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSlack {
    /// Starts the fake on free ports of 127.0.0.1.
    pub fn start() -> FakeSlack {
        let api = TcpListener::bind("127.0.0.1:0").expect("fake slack: bind the API port");
        let ws = TcpListener::bind("127.0.0.1:0").expect("fake slack: bind the socket port");
        let api_port = api.local_addr().expect("api addr").port();
        let socket_port = ws.local_addr().expect("socket addr").port();
        api.set_nonblocking(true).expect("nonblocking");
        ws.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState::default()),
            socket_url: format!("ws://127.0.0.1:{socket_port}/socket"),
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-slack".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake slack: tokio runtime");
                rt.block_on(async move {
                    let api = tokio::net::TcpListener::from_std(api).expect("api listener");
                    let ws = tokio::net::TcpListener::from_std(ws).expect("socket listener");
                    let app = Router::new()
                        .route("/api/{method}", post(api_call).get(api_call))
                        .with_state(thread_shared.clone());
                    tokio::select! {
                        r = axum::serve(api, app) => {
                            if let Err(e) = r {
                                eprintln!("[fake slack] API server stopped: {e}");
                            }
                        }
                        _ = accept_sockets(ws, thread_shared) => {}
                        _ = stop => {}
                    }
                });
            })
            .expect("fake slack: spawn thread");
        FakeSlack {
            shared,
            api_port,
            socket_port,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Web API base URL (`http://127.0.0.1:PORT/api`), for `with_slack_api_url`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.api_port)
    }

    /// The Socket Mode URL `apps.connections.open` hands out.
    pub fn socket_url(&self) -> String {
        self.shared.socket_url.clone()
    }

    /// Every call so far, in arrival order (failed ones too).
    pub fn calls(&self) -> Vec<SlackCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of `method` answered 200 with `ok: true`, in order.
    pub fn calls_to(&self, method: &str) -> Vec<SlackCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == method && c.ok())
            .cloned()
            .collect()
    }

    /// Waits until at least `n` ok calls of `method` exist and returns them
    /// all; panics listing every call on timeout.
    pub fn wait_for(&self, method: &str, n: usize, timeout: Duration) -> Vec<SlackCall> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls_to(method);
            if calls.len() >= n {
                return calls;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake slack: expected {n} ok call(s) of {method} within {timeout:?}, got {}; all calls:\n{}",
                    calls.len(),
                    self.describe_calls()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A readable list of all calls (for assertion messages).
    pub fn describe_calls(&self) -> String {
        let calls = self.calls();
        if calls.is_empty() {
            return "  (none)".into();
        }
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let body = c.body.to_string();
                format!(
                    "  #{i} {} status={} ok={} token={:?} body={} response={}",
                    c.method,
                    c.status,
                    c.ok(),
                    c.token,
                    super::cut(&body, 600),
                    super::cut(&c.response.to_string(), 300)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Deletes a posted message, as a person in Slack can: later
    /// `chat.update`s of it answer `message_not_found`.
    pub fn delete_message(&self, channel: &str, ts: &str) {
        self.shared
            .lock()
            .posted
            .remove(&(channel.to_string(), ts.to_string()));
    }

    /// `Some(status)`: answer every API call with that status and
    /// `{"ok":false,"error":"fatal_error"}` (as text/plain); `None`: back up.
    pub fn set_down(&self, status: Option<u16>) {
        self.shared.lock().down = status;
    }

    /// Answers the next `n` API calls with `status` (JSON
    /// `{"ok":false,"error":"ratelimited"}` for 429, `fatal_error`
    /// otherwise) and, if given, a `Retry-After` header in seconds.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        let mut st = self.shared.lock();
        for _ in 0..n {
            st.failures.push_back((status, retry_after_secs));
        }
    }

    /// Refuses the next `n` `chat.postMessage`/`chat.update` calls that carry
    /// blocks with `invalid_blocks`, as if they broke a limit.
    pub fn refuse_blocks_next(&self, n: usize) {
        self.shared.lock().refuse_blocks = n;
    }

    /// Socket Mode connections currently open.
    pub fn socket_connections(&self) -> usize {
        self.shared.lock().sockets.len()
    }

    /// Socket Mode connections accepted since the start (reconnects count).
    pub fn socket_connects(&self) -> usize {
        self.shared.lock().socket_connects
    }

    /// Sends an `interactive` envelope with `payload` to the newest open
    /// socket (waiting for one within `timeout`); true when the client
    /// acknowledged it (`{"envelope_id": ...}`) within `timeout`.
    /// `accepts_response_payload` is true for `view_submission` and
    /// `block_suggestion`, as with Slack.
    pub fn socket_send_interaction(&self, payload: Value, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let envelope_id = envelope_id();
        let accepts = matches!(
            payload["type"].as_str(),
            Some("view_submission" | "block_suggestion")
        );
        let frame = json!({
            "type": "interactive",
            "envelope_id": envelope_id,
            "payload": payload,
            "accepts_response_payload": accepts,
        })
        .to_string();
        loop {
            let sent = self
                .shared
                .lock()
                .sockets
                .last()
                .is_some_and(|s| s.tx.send(SocketCommand::Send(frame.clone())).is_ok());
            if sent {
                break;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            if self.shared.lock().acks.contains_key(&envelope_id) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every acknowledgement frame received over Socket Mode, by envelope id.
    pub fn socket_acks(&self) -> HashMap<String, Value> {
        self.shared.lock().acks.clone()
    }

    /// Closes every open socket (a websocket Close frame), to test reconnects.
    pub fn drop_sockets(&self) {
        for s in self.shared.lock().sockets.drain(..) {
            let _ = s.tx.send(SocketCommand::Close);
        }
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Web API
// ---------------------------------------------------------------------------

async fn api_call(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let body = match query {
        // A GET method's arguments are in the query string.
        Some(q) if body.is_empty() => form_object(q.as_bytes()).unwrap_or_else(|| json!({})),
        _ => parse_body(&headers, &body),
    };
    let mut st = shared.lock();
    let (status, response, retry_after, json_type) = if let Some(code) = st.down {
        (code, err("fatal_error"), None, false)
    } else if let Some((code, retry_after)) = st.failures.pop_front() {
        let error = if code == 429 {
            "ratelimited"
        } else {
            "fatal_error"
        };
        (code, err(error), retry_after, true)
    } else {
        let answer = answer(
            &mut st,
            &method,
            token.as_deref(),
            &body,
            &shared.socket_url,
        );
        (200, answer, None, true)
    };
    st.calls.push(SlackCall {
        method,
        token,
        body,
        status,
        response: response.clone(),
    });
    drop(st);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if json_type {
        "application/json; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut res = (code, response.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// JSON body, or a form body as an object of strings, or `{}` when empty.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Value {
    if body.is_empty() {
        return json!({});
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        if let Some(v) = form_object(body) {
            return v;
        }
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A form-encoded string as a JSON object of strings.
fn form_object(form: &[u8]) -> Option<Value> {
    let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(form).ok()?;
    Some(Value::Object(
        pairs.into_iter().map(|(k, v)| (k, v.into())).collect(),
    ))
}

fn err(error: &str) -> Value {
    json!({"ok": false, "error": error})
}

/// The channel id Slack would answer for a channel given by name or user id.
fn channel_id(channel: &str) -> String {
    if let Some(name) = channel.strip_prefix('#') {
        let id: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_uppercase();
        format!("C{id}")
    } else if channel.starts_with('U') || channel.starts_with('W') {
        format!("D{channel}")
    } else {
        channel.to_string()
    }
}

/// Copies the message content fields Slack echoes back.
fn echo_content(body: &Value, into: &mut Map<String, Value>) {
    for key in ["text", "blocks", "attachments", "metadata"] {
        if let Some(v) = body.get(key) {
            into.insert(key.into(), v.clone());
        }
    }
}

/// The 200 answer to a healthy API call.
fn answer(
    st: &mut FakeState,
    method: &str,
    token: Option<&str>,
    body: &Value,
    socket_url: &str,
) -> Value {
    let Some(token) = token else {
        return err("not_authed");
    };
    let app_token = token.starts_with("xapp-");
    if method == "apps.connections.open" {
        return if app_token {
            json!({"ok": true, "url": socket_url})
        } else {
            err("not_allowed_token_type")
        };
    }
    if app_token {
        return err("not_allowed_token_type");
    }
    let str_field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if matches!(method, "chat.postMessage" | "chat.update") && body.get("blocks").is_some() {
        if st.refuse_blocks > 0 {
            st.refuse_blocks -= 1;
            return json!({"ok": false, "error": "invalid_blocks", "errors": ["forced by the test"]});
        }
        let problems = super::block_kit::problems(body);
        if !problems.is_empty() {
            return json!({"ok": false, "error": "invalid_blocks", "errors": problems});
        }
    }
    match method {
        "chat.postMessage" => {
            let Some(channel) = str_field("channel") else {
                return err("channel_not_found");
            };
            let channel = channel_id(channel);
            let ts = format!("1700000000.{:06}", 100 + st.next());
            st.posted.insert((channel.clone(), ts.clone()));
            st.channels.insert(channel.clone());
            let mut message = Map::new();
            message.insert("type".into(), "message".into());
            message.insert("ts".into(), ts.clone().into());
            message.insert("user".into(), BOT_USER_ID.into());
            message.insert("bot_id".into(), BOT_ID.into());
            message.insert("app_id".into(), APP_ID.into());
            message.insert("team".into(), TEAM_ID.into());
            echo_content(body, &mut message);
            json!({"ok": true, "channel": channel, "ts": ts, "message": message})
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (str_field("channel"), str_field("ts")) else {
                return err("invalid_arguments");
            };
            if !st.posted.contains(&(channel.to_string(), ts.to_string())) {
                return if st.channels.contains(channel) {
                    err("message_not_found")
                } else {
                    err("channel_not_found")
                };
            }
            let mut message = Map::new();
            message.insert("type".into(), "message".into());
            message.insert("user".into(), BOT_USER_ID.into());
            message.insert("bot_id".into(), BOT_ID.into());
            echo_content(body, &mut message);
            json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "text": body.get("text").cloned().unwrap_or_else(|| "".into()),
                "message": message,
            })
        }
        "chat.postEphemeral" => {
            if str_field("channel").is_none() {
                return err("channel_not_found");
            }
            if str_field("user").is_none() {
                return err("user_not_in_channel");
            }
            json!({"ok": true, "message_ts": format!("1700000000.{:06}", 100 + st.next())})
        }
        "views.open" => {
            if str_field("trigger_id").is_none() {
                return err("invalid_arguments");
            }
            let Some(view) = body.get("view").and_then(Value::as_object) else {
                return err("invalid_arguments");
            };
            let n = st.next();
            let id = format!("V0FAKE{n:06}");
            let mut view = view.clone();
            view.insert("id".into(), id.clone().into());
            view.insert("team_id".into(), TEAM_ID.into());
            view.insert("state".into(), json!({"values": {}}));
            view.insert("hash".into(), format!("1700000000.fake{n}").into());
            view.insert("root_view_id".into(), id.into());
            view.insert("app_id".into(), APP_ID.into());
            view.insert("bot_id".into(), BOT_ID.into());
            json!({"ok": true, "view": view})
        }
        "conversations.open" => {
            if let Some(channel) = str_field("channel") {
                return json!({"ok": true, "channel": {"id": channel}});
            }
            // slack-morphism sends `users` as a JSON array; Slack documents a
            // comma-separated string. Accept both.
            let first_user = match body.get("users") {
                Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
                Some(Value::String(s)) => s.split(',').next().map(|u| u.trim().to_string()),
                _ => None,
            };
            match first_user.filter(|u| !u.is_empty()) {
                Some(user) => json!({
                    "ok": true,
                    "no_op": false,
                    "already_open": false,
                    "channel": {"id": format!("D{user}"), "created": 1700000000, "is_im": true, "user": user},
                }),
                None => err("users_list_not_supplied"),
            }
        }
        _ => err("unknown_method"),
    }
}

// ---------------------------------------------------------------------------
// Socket Mode
// ---------------------------------------------------------------------------

async fn accept_sockets(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(serve_socket(tcp, shared.clone()));
            }
            Err(e) => {
                eprintln!("[fake slack] socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_socket(tcp: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut ws = match tokio_tungstenite::accept_async(tcp).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("[fake slack] websocket handshake failed: {e}");
            return;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, open) = {
        let mut st = shared.lock();
        let id = st.next();
        st.socket_connects += 1;
        st.sockets.push(Socket { id, tx });
        (id, st.sockets.len())
    };
    let hello = json!({
        "type": "hello",
        "num_connections": open,
        "connection_info": {"app_id": APP_ID},
        "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
    });
    if ws.send(Message::text(hello.to_string())).await.is_ok() {
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(SocketCommand::Send(text)) => {
                        if ws.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                    Some(SocketCommand::Close) | None => {
                        let _ = ws.close(None).await;
                        break;
                    }
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        if let Some(envelope) = frame["envelope_id"].as_str() {
                            shared.lock().acks.insert(envelope.to_string(), frame.clone());
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    // Pings are answered by tungstenite on the next read.
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    shared.lock().sockets.retain(|s| s.id != id);
}

/// A unique, uuid-shaped envelope id.
fn envelope_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        nanos >> 32,
        (nanos >> 16) & 0xffff,
        nanos & 0xfff,
        n & 0xfff,
        n
    )
}

// ---------------------------------------------------------------------------
// Signed HTTP interactions (Slack -> airlock)
// ---------------------------------------------------------------------------

/// Current Unix time in seconds (for `X-Slack-Request-Timestamp`).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Slack's v0 signature: `v0=` + hex HMAC-SHA256(secret, `v0:{ts}:{body}`).
pub fn sign(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The form body Slack posts: `payload=<url-encoded JSON>`.
pub fn interaction_body(payload: &Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form-encode payload")
}

/// Posts `payload` to `url` as Slack does, correctly signed with `secret`
/// at timestamp `ts`; returns (HTTP status, response body).
pub fn post_interaction(url: &str, secret: &str, ts: i64, payload: &Value) -> (u16, String) {
    let body = interaction_body(payload);
    let signature = sign(secret, ts, &body);
    post_interaction_raw(url, Some(&ts.to_string()), Some(&signature), &body)
}

/// Posts a form `body` with the given (possibly forged or missing)
/// timestamp and signature headers; returns (HTTP status, response body).
pub fn post_interaction_raw(
    url: &str,
    ts_header: Option<&str>,
    signature_header: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut headers = vec![(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(ts) = ts_header {
        headers.push(("X-Slack-Request-Timestamp", ts.to_string()));
    }
    if let Some(sig) = signature_header {
        headers.push(("X-Slack-Signature", sig.to_string()));
    }
    http_post(url, &headers, body)
}

/// A blocking HTTP/1.1 POST to a plain `http://` URL; (status, body).
fn http_post(url: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (status, _, payload) = super::http_request(authority, "POST", path, headers, body);
    (status, payload)
}

// ---------------------------------------------------------------------------
// Interaction payloads (deserialize into slack-morphism's SlackInteractionEvent)
// ---------------------------------------------------------------------------

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn user_json(user_id: &str) -> Value {
    let name = user_id.to_ascii_lowercase();
    json!({"id": user_id, "username": name, "name": name, "team_id": TEAM_ID})
}

/// A `block_actions` payload: `user_id` clicked the button `action_id`
/// (block `decision`, `value`) on the message `message_ts` in `channel`.
pub fn block_action(
    user_id: &str,
    action_id: &str,
    value: &str,
    channel: &str,
    message_ts: &str,
) -> Value {
    let n = unique();
    json!({
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_json(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": false,
        },
        "trigger_id": format!("1700000000.{n}.fake{n:08x}"),
        "channel": {"id": channel, "name": "review"},
        "message": {
            "type": "message",
            "ts": message_ts,
            "text": "airlock review request",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
        },
        "response_url": format!("https://hooks.slack.com/actions/{TEAM_ID}/{n}/fake"),
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "decision",
            "value": value,
            "text": {"type": "plain_text", "text": action_id, "emoji": true},
            "action_ts": format!("{}.{:06}", now_unix(), n % 1_000_000),
        }],
        "state": {"values": {}},
    })
}

/// A modal `view_submission` payload from `user_id`: the view has
/// `callback_id` and `private_metadata`, and
/// `view.state.values[block_id][action_id]` is a `plain_text_input` = `value`.
pub fn view_submission(
    user_id: &str,
    callback_id: &str,
    private_metadata: &str,
    block_id: &str,
    action_id: &str,
    value: &str,
) -> Value {
    let n = unique();
    let view_id = format!("V0FAKE{n:06}");
    json!({
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_json(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": format!("1700000000.{n}.fake{n:08x}"),
        "view": {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "title": {"type": "plain_text", "text": "Reject request"},
            "submit": {"type": "plain_text", "text": "Reject"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{
                "type": "input",
                "block_id": block_id,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": action_id, "multiline": true},
            }],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": {block_id: {action_id: {"type": "plain_text_input", "value": value}}}},
            "hash": format!("1700000000.fake{n}"),
            "root_view_id": view_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "clear_on_close": false,
            "notify_on_close": false,
        },
        "response_urls": [],
    })
}
