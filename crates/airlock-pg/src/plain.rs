//! The relay for unprotected targets outside a family: bytes go through as
//! they arrive; only the frames that carry `application_name` are looked at
//! (see [`crate::appname`]): Query and Parse towards the upstream,
//! ParameterStatus and the row of `SHOW application_name` towards the client.

use crate::appname::{self, AppName, ShowRows};
use crate::frame;
use crate::relay::{is_disconnect, RelayError};
use crate::splice::{write_spliced, Fns, FrameHandler, Splices, Walker};
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Read size of each direction.
const CHUNK: usize = 64 * 1024;

/// Relays an unprotected session.
pub async fn relay_plain<C, U>(
    client: C,
    client_pending: BytesMut,
    upstream: U,
    upstream_pending: BytesMut,
    app: Arc<AppName>,
) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let up = client_to_upstream(client_r, client_pending, upstream_w, app.clone());
    let down = upstream_to_client(upstream_r, upstream_pending, client_w, app);
    let result = tokio::select! {
        r = up => r,
        r = down => r,
    };
    match result {
        Err(RelayError::Io(e)) if is_disconnect(&e) => Ok(()),
        other => other,
    }
}

/// Rewrites a client Query or Parse that sets `application_name`.
pub fn client_frame(app: &AppName, tag: u8, f: &[u8]) -> Result<Option<BytesMut>, RelayError> {
    Ok(match tag {
        b'Q' => app
            .client_sql(frame::query_sql(f)?)
            .map(|sql| appname::query_frame(&sql)),
        b'P' => {
            let (name, sql) = frame::parse_message(f)?;
            app.client_parse(name, sql)
                .and_then(|sql| appname::replace_parse_sql(f, &sql))
        }
        b'B' => {
            app.client_bind(frame::bind_statement(f)?);
            None
        }
        _ => None,
    })
}

async fn client_to_upstream<R, W>(
    mut client: R,
    mut buf: BytesMut,
    mut upstream: W,
    app: Arc<AppName>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut walker = Walker::default();
    let mut splices = Splices::new();
    let mut handler = Fns(
        |t| matches!(t, b'Q' | b'P' | b'B'),
        |t, f: &[u8]| client_frame(&app, t, f),
    );
    loop {
        let pos = walker.walk(&buf, &mut handler, &mut splices)?;
        if pos > 0 {
            write_spliced(&mut upstream, &buf, pos, &mut splices).await?;
            let _ = buf.split_to(pos);
        }
        buf.reserve(CHUNK);
        if client.read_buf(&mut buf).await? == 0 {
            let _ = upstream.shutdown().await;
            return Ok(());
        }
    }
}

async fn upstream_to_client<R, W>(
    mut upstream: R,
    mut buf: BytesMut,
    mut client: W,
    app: Arc<AppName>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut walker = Walker::default();
    let mut splices = Splices::new();
    let mut handler = Downstream {
        app,
        rows: ShowRows::default(),
    };
    loop {
        let pos = walker.walk(&buf, &mut handler, &mut splices)?;
        if pos > 0 {
            write_spliced(&mut client, &buf, pos, &mut splices).await?;
            let _ = buf.split_to(pos);
        }
        buf.reserve(CHUNK);
        if upstream.read_buf(&mut buf).await? == 0 {
            // A clean close towards the client (close_notify over TLS).
            let _ = client.shutdown().await;
            return Ok(());
        }
    }
}

/// The upstream-to-client side: only `application_name` frames matter.
struct Downstream {
    app: Arc<AppName>,
    rows: ShowRows,
}

impl FrameHandler for Downstream {
    fn wants(&self, tag: u8) -> bool {
        self.rows.wants(&self.app, tag)
    }

    fn on_frame(&mut self, tag: u8, frame: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        Ok(self.rows.on_frame(&self.app, tag, frame))
    }
}
