//! A byte stream that is either plain TCP or TLS over TCP (shared with the
//! other wire crates in `airlock-tls`).

pub use airlock_tls::stream::*;
