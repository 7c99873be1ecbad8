//! The relay for unprotected targets outside a family: bytes go through as
//! they arrive; only the frames that carry `application_name` are looked at
//! (see [`crate::appname`]): Query and Parse towards the upstream,
//! ParameterStatus and the row of `SHOW application_name` towards the client.

use crate::appname::{self, AppName, ShowRows};
use crate::frame;
use crate::relay::{is_disconnect, RelayError};
use crate::splice::{pump, FrameHandler};
use crate::standing::Standing;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Relays an unprotected session.
pub async fn relay_plain<C, U>(
    client: C,
    client_pending: BytesMut,
    upstream: U,
    upstream_pending: BytesMut,
    app: Arc<AppName>,
    standing: Standing,
) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let mut upward = ClientSide {
        app: app.clone(),
        standing,
    };
    let mut downward = Downstream {
        app,
        rows: ShowRows::default(),
    };
    let up = pump(client_r, client_pending, upstream_w, &mut upward);
    let down = pump(upstream_r, upstream_pending, client_w, &mut downward);
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
        b'Q' => app.client_sql(frame::query_sql(f)?).map(|sql| {
            let mut q = BytesMut::new();
            frame::put_query(&mut q, &sql);
            q
        }),
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

/// The client-to-upstream side: statements are checked against reloads and
/// relabelled where they set `application_name`.
struct ClientSide {
    app: Arc<AppName>,
    standing: Standing,
}

impl FrameHandler for ClientSide {
    fn wants(&self, tag: u8) -> bool {
        matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'F')
    }

    fn admit(&mut self, _tag: u8) -> Result<(), RelayError> {
        // A statement starts or a portal runs: a reload may have ended the session.
        self.standing.admit()
    }

    fn on_frame(&mut self, tag: u8, frame: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        client_frame(&self.app, tag, frame)
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
