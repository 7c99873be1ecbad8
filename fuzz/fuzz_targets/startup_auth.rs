//! The startup path of `airlock-pg` on arbitrary bytes: the untyped first
//! packet (StartupMessage, SSLRequest/GSSENCRequest, CancelRequest), the
//! startup parameters vetted for a protected target, and both SCRAM-SHA-256
//! exchanges: the proxy as server to its clients (`scram::ScramExchange`,
//! fed from SASLInitialResponse / SASLResponse frames) and as client to an
//! upstream (`scram_client::ScramClient`, fed from Authentication frames).
//! Nothing may panic.
//!
//! Byte 0 picks the path (`% 4`), the rest is what the peer sends:
//! - 0, 1: a client's bytes: startup packet, then `p` frames (0: a user with
//!   a verifier, 1: an unknown user);
//! - 2: an upstream's bytes: `R` frames (10 SASL, 11 SASLContinue, 12
//!   SASLFinal), `K`, `E`...;
//! - 3: a stored verifier text, a newline, a client-first message, a
//!   newline, a client-final message (a configured verifier of any shape).
//!
//! The nonces are random, so the fuzzer cannot echo them: `@@` in a
//! client-final or server-first message is replaced by the nonce the other
//! side sent, which lets inputs reach the proof checks.
#![no_main]

use std::sync::OnceLock;

use airlock_core::ScramVerifier;
use airlock_pg::frame::{self, StartupPacket};
use airlock_pg::scram::ScramExchange;
use airlock_pg::scram_client::{SaltedPasswords, ScramClient};
use airlock_pg::session::vet_startup_parameters;
use airlock_sql::Classifier;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// The verifier of "fuzz-password" (fixed salt, so runs are deterministic).
const VERIFIER: &str = "SCRAM-SHA-256$4096:YWlybG9jay1mdXp6LXNhbHQ=$okOo0z8G63ZlXg/5aJupzv9dyQf842dcl9LZUjiBxRc=:OKJPLgMnwJz9JZJvga38v+Jq7//5mLhEFuc4Z9fXID0=";
const PROCESS_KEY: [u8; 32] = [7; 32];
/// Largest iteration count tried against the client (each exec runs PBKDF2
/// with it; the product's own cap is 1,000,000).
const MAX_FUZZ_ITERATIONS: u32 = 4096;

fn verifier() -> &'static ScramVerifier {
    static V: OnceLock<ScramVerifier> = OnceLock::new();
    V.get_or_init(|| ScramVerifier::parse(VERIFIER).expect("the fixed verifier parses"))
}

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::new(256))
}

fn salted_passwords() -> &'static SaltedPasswords {
    static S: OnceLock<SaltedPasswords> = OnceLock::new();
    S.get_or_init(SaltedPasswords::default)
}

/// `msg` with every `@@` replaced by `nonce`.
fn with_nonce(msg: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + nonce.len());
    let mut i = 0;
    while i < msg.len() {
        if msg[i..].starts_with(b"@@") {
            out.extend_from_slice(nonce);
            i += 2;
        } else {
            out.push(msg[i]);
            i += 1;
        }
    }
    out
}

/// The `r=` attribute of a SCRAM message.
fn nonce_of(msg: &str) -> &str {
    msg.split(',')
        .find_map(|p| p.strip_prefix("r="))
        .unwrap_or_default()
}

/// The server's side: client-first, then client-final.
fn server_exchange(
    verifier: Option<&ScramVerifier>,
    user: &str,
    first: &[u8],
    last: Option<&[u8]>,
) {
    let Ok((exchange, server_first)) = ScramExchange::start(verifier, user, &PROCESS_KEY, first)
    else {
        return;
    };
    let nonce = nonce_of(&server_first).to_string();
    assert!(
        !nonce.is_empty(),
        "server-first carries a nonce: {server_first:?}"
    );
    if let Some(last) = last {
        let last = with_nonce(last, nonce.as_bytes());
        let _ = exchange.finish(&last);
    }
}

/// A client connecting to the proxy.
fn client_side(known_user: bool, bytes: &[u8]) {
    let len = match frame::startup_packet_len(bytes) {
        Ok(Some(len)) => {
            assert!((8..=frame::MAX_STARTUP_PACKET).contains(&len));
            len
        }
        Ok(None) | Err(_) => {
            let _ = frame::parse_startup(bytes);
            return;
        }
    };
    let Some((packet, rest)) = bytes.split_at_checked(len) else {
        let _ = frame::parse_startup(bytes);
        return;
    };
    let params = match frame::parse_startup(packet) {
        Ok(StartupPacket::Startup { minor: _, params }) => params,
        Ok(StartupPacket::Cancel { .. }) => {
            assert_eq!(len, 16, "a CancelRequest is 16 bytes");
            return;
        }
        Ok(StartupPacket::Negotiation) | Err(_) => return,
    };
    let unsupported: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut out = BytesMut::new();
    frame::put_negotiate_protocol(&mut out, 0, &unsupported);
    let h = frame::peek_header(&out)
        .expect("valid NegotiateProtocolVersion")
        .expect("header");
    assert_eq!(h.frame_len, out.len());
    let _ = vet_startup_parameters(&params, classifier());
    let user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map_or("fuzz", |(_, v)| v.as_str());

    let mut buf = BytesMut::from(rest);
    let Ok(Some((b'p', initial))) = frame::split_frame(&mut buf) else {
        return;
    };
    let Ok((_mechanism, client_first)) = frame::sasl_initial(&initial) else {
        return;
    };
    let last = match frame::split_frame(&mut buf) {
        Ok(Some((_, f))) => Some(f),
        _ => None,
    };
    server_exchange(
        known_user.then(verifier),
        user,
        client_first,
        last.as_ref().map(|f| frame::body(f)),
    );
}

/// The iteration count the client would read from a server-first message.
fn iterations(msg: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(msg).ok()?;
    let mut it = None;
    for part in text.split(',') {
        if let Some(("i", v)) = part.split_once('=') {
            it = Some(v);
        }
    }
    it?.parse().ok()
}

/// An upstream answering the proxy's startup.
fn upstream_side(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let mut scram: Option<(ScramClient, String)> = None;
    while let Ok(Some((tag, f))) = frame::split_frame(&mut buf) {
        match tag {
            b'R' => {
                let b = frame::body(&f);
                if b.len() < 4 {
                    return;
                }
                let code = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let payload = &b[4..];
                match code {
                    10 => {
                        if !payload.split(|&c| c == 0).any(|m| m == b"SCRAM-SHA-256") {
                            return;
                        }
                        let (client, first) = ScramClient::start();
                        let nonce = first.rsplit("r=").next().unwrap_or_default().to_string();
                        scram = Some((client, nonce));
                    }
                    11 => {
                        let Some((client, nonce)) = scram.as_mut() else {
                            return;
                        };
                        let server_first = with_nonce(payload, nonce.as_bytes());
                        if iterations(&server_first).is_some_and(|i| i > MAX_FUZZ_ITERATIONS) {
                            return;
                        }
                        if client
                            .client_final(&server_first, "fuzz-password", salted_passwords())
                            .is_err()
                        {
                            return;
                        }
                    }
                    12 => {
                        let Some((client, _)) = scram.take() else {
                            return;
                        };
                        let _ = client.verify_final(payload);
                    }
                    _ => return,
                }
            }
            b'K' => {
                let _ = frame::backend_key(&f);
            }
            b'E' => {
                let _ = (frame::error_text(&f, b'C'), frame::error_text(&f, b'M'));
                return;
            }
            b'Z' => return,
            _ => {}
        }
    }
}

/// A configured verifier of any shape, then an exchange with it.
fn configured_verifier(bytes: &[u8]) {
    let mut parts = bytes.splitn(3, |&c| c == b'\n');
    let (Some(text), Some(first)) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(v) = ScramVerifier::parse(text) else {
        return;
    };
    server_exchange(Some(&v), "fuzz", first, parts.next());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => client_side(true, rest),
        1 => client_side(false, rest),
        2 => upstream_side(rest),
        _ => configured_verifier(rest),
    }
});
