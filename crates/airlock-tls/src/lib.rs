//! TLS configuration shared by the wire crates: the client-facing acceptor
//! and the upstream connectors (one per TLS mode), all with rustls on the
//! ring provider and the same record-size cap.

pub mod stream;

use airlock_core::UpstreamTlsMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// A TLS setup problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {message}")]
    Pem {
        /// File.
        path: String,
        /// Problem.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Largest TLS record airlock writes, header included. PostgreSQL never
/// sends records over 8 KB, and libpq in non-blocking mode (psycopg, async
/// drivers) can stall for good on a larger one: OpenSSL keeps decrypted bytes
/// that do not fit libpq's free buffer while the socket never becomes
/// readable again. Every airlock TLS config, towards clients and upstreams,
/// uses this cap.
pub const MAX_TLS_RECORD: usize = 8192;

/// rustls counts the 5-byte record header in `max_fragment_size` but not the
/// AEAD expansion: at most 24 bytes (TLS 1.2 GCM: explicit nonce and tag;
/// TLS 1.3: tag and content type take 17).
const MAX_FRAGMENT: usize = MAX_TLS_RECORD - 24;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no certificate found"));
    }
    Ok(certs)
}

/// Builds the acceptor for client connections from PEM files, offering
/// the `alpn` protocols (Postgres 17 direct TLS negotiates "postgresql").
pub fn server_acceptor(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let mut config = server_config(cert, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The rustls configuration behind [`server_acceptor`].
fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    config.max_fragment_size = Some(MAX_FRAGMENT);
    Ok(config)
}

/// Builds the connector for one upstream's TLS mode (`None` for `disable`).
pub fn upstream_connector(
    mode: UpstreamTlsMode,
    ca_file: Option<&Path>,
) -> Result<Option<tokio_rustls::TlsConnector>, TlsError> {
    Ok(upstream_config(mode, ca_file)?.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c))))
}

/// The rustls configuration behind [`upstream_connector`].
fn upstream_config(
    mode: UpstreamTlsMode,
    ca_file: Option<&Path>,
) -> Result<Option<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let mut config = match mode {
        UpstreamTlsMode::Disable => return Ok(None),
        UpstreamTlsMode::Prefer | UpstreamTlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth(),
        UpstreamTlsMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            let path = ca_file.unwrap_or(Path::new("/etc/ssl/certs/ca-certificates.crt"));
            for cert in load_certs(path)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.max_fragment_size = Some(MAX_FRAGMENT);
    Ok(Some(config))
}

/// The server name to verify for an upstream host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|e| TlsError::Pem {
        path: host.to_string(),
        message: format!("not a valid TLS server name: {e}"),
    })
}

/// `sslmode=require` semantics: encrypted, certificate not checked (as libpq).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A self-signed certificate for `localhost` made with the openssl CLI.
    fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl req failed");
        (cert, key)
    }

    /// Moves every pending TLS byte from `from` to `to`, returning the bytes.
    fn pump(
        from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    ) -> Vec<u8> {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).expect("write_tls");
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).expect("read_tls");
            to.process_new_packets().expect("process");
            // Drain the plaintext so the receiver keeps accepting records.
            let mut sink = [0u8; 16 * 1024];
            while matches!(to.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
        wire
    }

    /// Lengths of the TLS records in `wire` (header included).
    fn record_sizes(wire: &[u8]) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut rest = wire;
        while rest.len() >= 5 {
            let n = 5 + u16::from_be_bytes([rest[3], rest[4]]) as usize;
            sizes.push(n);
            rest = &rest[n.min(rest.len())..];
        }
        sizes
    }

    #[test]
    fn records_to_clients_and_upstreams_stay_within_8_kb() {
        let dir = std::env::temp_dir().join(format!("airlock-tls-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (cert, key) = self_signed(&dir);
        let server_cfg = Arc::new(server_config(&cert, &key).expect("server config"));
        let client_cfg = Arc::new(
            upstream_config(UpstreamTlsMode::Require, None)
                .expect("client config")
                .expect("TLS on"),
        );
        let mut server = rustls::ServerConnection::new(server_cfg).expect("server");
        let mut client =
            rustls::ClientConnection::new(client_cfg, server_name("localhost").expect("name"))
                .expect("client");
        while client.is_handshaking() || server.is_handshaking() {
            pump(&mut client, &mut server);
            pump(&mut server, &mut client);
        }
        let payload = vec![7u8; 60_000];
        server.writer().write_all(&payload).expect("server write");
        let down = pump(&mut server, &mut client);
        client.writer().write_all(&payload).expect("client write");
        let up = pump(&mut client, &mut server);
        for (side, wire) in [("to the client", down), ("to the upstream", up)] {
            let sizes = record_sizes(&wire);
            assert!(sizes.len() > 60_000 / MAX_TLS_RECORD, "{side}: {sizes:?}");
            let max = sizes.iter().copied().max().unwrap_or(0);
            assert!(max <= MAX_TLS_RECORD, "{side}: a {max}-byte TLS record");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
