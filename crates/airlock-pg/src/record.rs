//! The relay for unprotected targets of a family: everything is forwarded
//! as it arrives, and every statement that is not a read is recorded (who,
//! target, fingerprint, rows, duration, success) so that a later change
//! request on a higher environment can show its earlier runs (SPEC §5).
//! Recording is off the hot path: executions go through a bounded channel
//! to a background writer, and a full channel drops the record, never the
//! client's traffic. Result rows are never decoded; only CommandComplete,
//! ErrorResponse and ReadyForQuery are looked at.

use crate::appname::{AppName, ShowRows};
use crate::executor::written_rows;
use crate::frame;
use crate::relay::RelayError;
use crate::splice::{pump, FrameHandler};
use airlock_sql::{Classifier, StatementClass};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A non-read statement that ran, as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Statement text.
    pub sql: String,
    /// Its class.
    pub class: StatementClass,
    /// Rows affected (sum over CommandComplete tags), when reported.
    pub rows: Option<i64>,
    /// Time from sending to ReadyForQuery.
    pub duration_ms: i64,
    /// Error text, when it failed.
    pub error: Option<String>,
}

/// What the relay needs to classify and report.
pub struct Recording {
    /// The classifier (cached).
    pub classifier: Arc<Classifier>,
    /// Where observed executions go (bounded; full means dropped).
    pub sink: mpsc::Sender<Observed>,
    /// The session's `application_name` mapping.
    pub app_name: Arc<AppName>,
    /// Whether the session may go on after a configuration reload.
    pub standing: crate::standing::Standing,
}

struct Pending {
    group: u64,
    sql: String,
    class: StatementClass,
    started: Instant,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<VecDeque<Pending>>,
}

/// Relays an unprotected session and records its non-read statements.
pub async fn relay_recorded<C, U>(
    client: C,
    client_pending: BytesMut,
    upstream: U,
    upstream_pending: BytesMut,
    recording: Recording,
) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let shared = Arc::new(Shared::default());
    let up = watch_client(
        client_r,
        client_pending,
        upstream_w,
        recording.classifier,
        shared.clone(),
        recording.app_name.clone(),
        recording.standing,
    );
    let down = watch_upstream(
        upstream_r,
        upstream_pending,
        client_w,
        recording.sink,
        shared,
        recording.app_name,
    );
    let result = tokio::select! {
        r = up => r,
        r = down => r,
    };
    match result {
        Err(RelayError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Frame types whose body the client side must see whole.
fn wanted_from_client(tag: u8) -> bool {
    matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'S' | b'F')
}

/// Most prepared statements per session remembered as writes (to record
/// their executions); beyond, new ones go unrecorded.
const MAX_REMEMBERED_WRITES: usize = 10_000;

/// What the client side watches: statements sent, in response groups.
struct ClientWatch {
    classifier: Arc<Classifier>,
    shared: Arc<Shared>,
    app: Arc<AppName>,
    groups: u64,
    writes: HashMap<Vec<u8>, (String, StatementClass)>,
    bound: Option<Vec<u8>>,
    batch: Option<(String, StatementClass)>,
    standing: crate::standing::Standing,
}

impl FrameHandler for ClientWatch {
    fn wants(&self, tag: u8) -> bool {
        wanted_from_client(tag)
    }

    fn admit(&mut self, tag: u8) -> Result<(), RelayError> {
        if matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'F') {
            // A statement starts or a portal runs: a reload may have ended the session.
            self.standing.admit()?;
        }
        Ok(())
    }

    fn on_frame(&mut self, tag: u8, f: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        match tag {
            b'Q' => {
                let text = frame::query_sql(f)?;
                if !plainly_a_read(text) {
                    let sql = String::from_utf8_lossy(text).into_owned();
                    let c = self.classifier.classify(&sql);
                    if !c.read_only {
                        push(&self.shared, self.groups, sql, c.class);
                    }
                }
                self.groups += 1;
            }
            b'P' => {
                let (name, sql) = frame::parse_message(f)?;
                let sql = String::from_utf8_lossy(sql).into_owned();
                let c = self.classifier.classify(&sql);
                if c.read_only {
                    self.writes.remove(name);
                } else if self.writes.len() < MAX_REMEMBERED_WRITES
                    || self.writes.contains_key(name)
                {
                    self.writes.insert(name.to_vec(), (sql, c.class));
                }
            }
            b'B' => self.bound = Some(frame::bind_statement(f)?.to_vec()),
            b'E' => {
                if let Some(w) = self.bound.as_ref().and_then(|b| self.writes.get(b)) {
                    self.batch.get_or_insert_with(|| w.clone());
                }
            }
            b'S' => {
                if let Some((sql, class)) = self.batch.take() {
                    push(&self.shared, self.groups, sql, class);
                }
                self.groups += 1;
            }
            b'F' => self.groups += 1,
            _ => {}
        }
        crate::plain::client_frame(&self.app, tag, f)
    }

    fn on_streamed(&mut self, tag: u8) {
        // Unseen, so unrecorded; the response groups still line up.
        if matches!(tag, b'Q' | b'F') {
            self.groups += 1;
        }
        if tag == b'P' {
            // Its name is unknown: no earlier write may be credited with it.
            self.bound = None;
        }
    }
}

async fn watch_client<R, W>(
    client: R,
    buf: BytesMut,
    upstream: W,
    classifier: Arc<Classifier>,
    shared: Arc<Shared>,
    app: Arc<AppName>,
    standing: crate::standing::Standing,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut handler = ClientWatch {
        classifier,
        shared,
        app,
        groups: 0,
        writes: HashMap::new(),
        bound: None,
        batch: None,
        standing,
    };
    pump(client, buf, upstream, &mut handler).await
}

/// A fast pre-filter for recording only (never for holding): a single
/// SELECT/SHOW/FETCH/VALUES/TABLE without any write keyword is a read. On an
/// unprotected target this only decides what is remembered for "earlier
/// runs", and it keeps statements whose literals change every time (which
/// miss the classification cache) off the parser on the hot path.
fn plainly_a_read(sql: &[u8]) -> bool {
    let trimmed = sql.trim_ascii();
    let body = trimmed.strip_suffix(b";").unwrap_or(trimmed);
    let first: Vec<u8> = body
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .map(u8::to_ascii_lowercase)
        .collect();
    if !matches!(
        first.as_slice(),
        b"select" | b"show" | b"fetch" | b"values" | b"table"
    ) {
        return false;
    }
    if body.contains(&b';') {
        return false;
    }
    let lower = body.to_ascii_lowercase();
    const WRITES: [&[u8]; 8] = [
        b"insert", b"update", b"delete", b"merge", b"into", b"nextval", b"setval", b"lo_",
    ];
    !WRITES
        .iter()
        .any(|w| lower.windows(w.len()).any(|x| x == *w))
}

/// Most statements awaiting their answer (a client pipelining without
/// reading); beyond, new ones go unrecorded.
const MAX_PENDING: usize = 10_000;

fn push(shared: &Shared, group: u64, sql: String, class: StatementClass) {
    if let Ok(mut p) = shared.pending.lock() {
        if p.len() >= MAX_PENDING {
            return;
        }
        p.push_back(Pending {
            group,
            sql,
            class,
            started: Instant::now(),
        });
    }
}

async fn watch_upstream<R, W>(
    upstream: R,
    buf: BytesMut,
    client: W,
    sink: mpsc::Sender<Observed>,
    shared: Arc<Shared>,
    app: Arc<AppName>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut handler = Outcomes {
        sink,
        shared,
        app,
        show: ShowRows::default(),
        ready_seen: 0,
        rows: None,
        error: None,
    };
    pump(upstream, buf, client, &mut handler).await
}

/// The upstream-to-client side: outcomes of recorded statements, and the
/// client's view of `application_name`.
struct Outcomes {
    sink: mpsc::Sender<Observed>,
    shared: Arc<Shared>,
    app: Arc<AppName>,
    show: ShowRows,
    ready_seen: u64,
    rows: Option<i64>,
    error: Option<String>,
}

impl FrameHandler for Outcomes {
    fn wants(&self, tag: u8) -> bool {
        matches!(tag, b'C' | b'E' | b'Z') || self.show.wants(&self.app, tag)
    }

    fn on_frame(&mut self, tag: u8, f: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        let replaced = self.show.on_frame(&self.app, tag, f);
        match tag {
            b'C' => {
                if let Some(n) = written_rows(&frame::command_tag(f)) {
                    self.rows = Some(self.rows.unwrap_or(0) + n);
                }
            }
            b'E' if self.error.is_none() => self.error = Some(frame::error_summary(f)),
            b'Z' => {
                let ready_seen = self.ready_seen;
                let done = self.shared.pending.lock().ok().and_then(|mut p| {
                    while p.front().is_some_and(|x| x.group < ready_seen) {
                        p.pop_front();
                    }
                    if p.front().is_some_and(|x| x.group == ready_seen) {
                        p.pop_front()
                    } else {
                        None
                    }
                });
                if let Some(d) = done {
                    let observed = Observed {
                        sql: d.sql,
                        class: d.class,
                        rows: self.rows.take(),
                        duration_ms: d.started.elapsed().as_millis() as i64,
                        error: self.error.take(),
                    };
                    // Full channel: the record is dropped, the session never waits.
                    let _ = self.sink.try_send(observed);
                }
                self.rows = None;
                self.error = None;
                self.ready_seen += 1;
            }
            _ => {}
        }
        Ok(replaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{put_command_complete, put_query, split_frame};
    use tokio::io::duplex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_recording_prefilter_lets_only_plain_reads_skip_the_parser() {
        assert!(plainly_a_read(
            b"SELECT abalance FROM pgbench_accounts WHERE aid = 7;"
        ));
        assert!(plainly_a_read(b"  show search_path"));
        for not_plain in [
            &b"UPDATE t SET a = 1"[..],
            b"SELECT 1; DELETE FROM t",
            b"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            b"SELECT nextval('s')",
            b"SELECT * INTO t2 FROM t",
            b"select * from t where x in (select 1) ; update t set a = 1",
        ] {
            assert!(
                !plainly_a_read(not_plain),
                "{}",
                String::from_utf8_lossy(not_plain)
            );
        }
    }

    #[tokio::test]
    async fn writes_are_recorded_with_rows_and_reads_are_not() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (proxy_upstream, mut upstream) = duplex(1 << 16);
        let (tx, mut rx) = mpsc::channel(16);
        let relay = tokio::spawn(relay_recorded(
            proxy_client,
            BytesMut::new(),
            proxy_upstream,
            BytesMut::new(),
            Recording {
                classifier: Arc::new(Classifier::new(16)),
                sink: tx,
                app_name: Arc::new(AppName::new("alice")),
                standing: crate::standing::Standing::fixed(),
            },
        ));
        let mut q = BytesMut::new();
        put_query(&mut q, "SELECT 1");
        put_query(&mut q, "UPDATE t SET a = 1 WHERE id = 7");
        client.write_all(&q).await.expect("write");
        let mut got = BytesMut::new();
        while got.len() < q.len() {
            upstream.read_buf(&mut got).await.expect("read");
        }
        assert_eq!(&got[..], &q[..], "forwarded unchanged");
        let mut answer = BytesMut::new();
        put_command_complete(&mut answer, "SELECT 1");
        answer.extend_from_slice(b"Z\0\0\0\x05I");
        put_command_complete(&mut answer, "UPDATE 3");
        answer.extend_from_slice(b"Z\0\0\0\x05I");
        upstream.write_all(&answer).await.expect("write");
        let observed = rx.recv().await.expect("recorded");
        assert_eq!(observed.sql, "UPDATE t SET a = 1 WHERE id = 7");
        assert_eq!(observed.rows, Some(3));
        assert_eq!(observed.error, None);
        let mut seen = BytesMut::new();
        while seen.len() < answer.len() {
            client.read_buf(&mut seen).await.expect("read");
        }
        let mut n = 0;
        while split_frame(&mut seen).expect("frames").is_some() {
            n += 1;
        }
        assert_eq!(n, 4);
        drop((client, upstream));
        relay.await.expect("join").expect("clean end");
        assert!(rx.try_recv().is_err(), "the SELECT is not recorded");
    }
}

#[cfg(test)]
mod flush_tests {
    use super::*;
    use crate::frame::put_query;
    use std::time::Duration;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, BufWriter};

    /// Both sides hold written bytes until flushed, as a TLS stream does:
    /// the relay must flush before it waits, or the answer never arrives.
    #[tokio::test]
    async fn answers_reach_a_buffering_client_and_queries_a_buffering_upstream() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (proxy_upstream, mut upstream) = duplex(1 << 16);
        let (tx, _rx) = mpsc::channel(16);
        let _relay = tokio::spawn(relay_recorded(
            BufWriter::new(proxy_client),
            BytesMut::new(),
            BufWriter::new(proxy_upstream),
            BytesMut::new(),
            Recording {
                classifier: Arc::new(Classifier::new(16)),
                sink: tx,
                app_name: Arc::new(AppName::new("alice")),
                standing: crate::standing::Standing::fixed(),
            },
        ));
        let mut q = BytesMut::new();
        put_query(&mut q, "SELECT 1");
        client.write_all(&q).await.expect("write");
        let mut got = BytesMut::new();
        while got.len() < q.len() {
            tokio::time::timeout(Duration::from_secs(5), upstream.read_buf(&mut got))
                .await
                .expect("the query stayed in the relay's write buffer")
                .expect("read");
        }
        let answer = b"C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I";
        upstream.write_all(answer).await.expect("write");
        let mut seen = Vec::new();
        while seen.len() < answer.len() {
            tokio::time::timeout(Duration::from_secs(5), client.read_buf(&mut seen))
                .await
                .expect("the answer stayed in the relay's write buffer")
                .expect("read");
        }
        assert_eq!(&seen[..], &answer[..]);
    }
}
