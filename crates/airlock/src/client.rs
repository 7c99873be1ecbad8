//! A small HTTP/1.1 client for the CLI's calls to the JSON API (plain HTTP;
//! put a TLS-terminating proxy or an SSH tunnel in front for remote use).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long one API call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an API call failed before an answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not usable.
    #[error("bad API URL {0:?}: {1}")]
    BadUrl(String, &'static str),
    /// Connecting, sending or reading failed.
    #[error("calling {url}: {message}")]
    Transport {
        /// What was called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server did not answer JSON.
    #[error("{url} answered HTTP {status} with a body that is not JSON")]
    NotJson {
        /// What was called.
        url: String,
        /// HTTP status.
        status: StatusCode,
    },
}

/// Where the API is and who calls it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    host: String,
    port: u16,
    prefix: String,
    token: Option<String>,
    timeout: Duration,
}

impl ApiClient {
    /// `url` is `http://HOST[:PORT][/PREFIX]`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let bad = |why| ClientError::BadUrl(url.to_string(), why);
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(bad(
                "https is not supported by the CLI yet: use http:// (e.g. through an SSH tunnel)",
            ));
        } else {
            return Err(bad("must start with http://"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("bad port")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_string(), 80),
            }
        };
        let prefix = path.trim_end_matches('/');
        Ok(ApiClient {
            host,
            port,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
            token: token.filter(|t| !t.trim().is_empty()),
            timeout: CALL_TIMEOUT,
        })
    }

    /// How long one call may take (a run can take as long as its statement).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}{}", self.host, self.port, self.prefix, path)
    }

    /// Calls `path` (with its query) and returns the status and the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), ClientError> {
        let url = self.url(path);
        match tokio::time::timeout(self.timeout, self.call_inner(method, path, body)).await {
            Ok(Ok((status, bytes))) => match serde_json::from_slice(&bytes) {
                Ok(v) => Ok((status, v)),
                Err(_) => Err(ClientError::NotJson { url, status }),
            },
            Ok(Err(message)) => Err(ClientError::Transport { url, message }),
            Err(_) => Err(ClientError::Transport {
                url,
                message: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        }
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), String> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let conn_task = tokio::spawn(conn);
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.prefix, path))
            .header(hyper::header::HOST, host_header)
            .header(
                hyper::header::USER_AGENT,
                concat!("airlock-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let payload = match body {
            Some(v) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        conn_task.abort();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let c = ApiClient::new("http://127.0.0.1:6480", None).expect("url");
        assert_eq!(
            (c.host.as_str(), c.port, c.prefix.as_str()),
            ("127.0.0.1", 6480, "")
        );
        let c = ApiClient::new("http://airlock.internal/base/", Some(" ".into())).expect("url");
        assert_eq!((c.port, c.prefix.as_str()), (80, "/base"));
        assert!(c.token.is_none());
        let c = ApiClient::new("http://[::1]:7000", None).expect("url");
        assert_eq!((c.host.as_str(), c.port), ("::1", 7000));
        assert!(ApiClient::new("https://x", None).is_err());
        assert!(ApiClient::new("ftp://x", None).is_err());
        assert!(ApiClient::new("http://x:notaport", None).is_err());
        assert!(ApiClient::new("http://", None).is_err());
    }
}
