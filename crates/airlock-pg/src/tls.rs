//! TLS for the Postgres listener and upstreams: the shared setup of
//! `airlock-tls`, with the Postgres ALPN on the acceptor.

pub use airlock_tls::*;

/// The acceptor for Postgres clients (ALPN "postgresql" for direct TLS).
pub fn server_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    airlock_tls::server_acceptor(cert, key, &[b"postgresql"])
}
