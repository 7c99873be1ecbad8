//! A throwaway CA and server certificate made with openssl.

#![allow(dead_code)]

use super::*;

/// A test CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    run_with_timeout(cmd, None, Duration::from_secs(60))
        .assert_success(&format!("openssl {}", args.join(" ")));
}

/// Generates a CA (`<prefix>ca.crt`) and a server cert/key signed by it in
/// `dir` with the openssl CLI (EC P-256).
pub fn make_pki(dir: &Path, prefix: &str) -> Pki {
    let p = |n: &str| dir.join(format!("{prefix}{n}"));
    let s = |n: &str| p(n).to_string_lossy().into_owned();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3",
            "-subj",
            &format!("/CN=airlock test CA {prefix}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &s("ca.key"),
            "-out",
            &s("ca.crt"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &s("server.key"),
            "-out",
            &s("server.csr"),
        ],
    );
    std::fs::write(
        p("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &s("server.csr"),
            "-CA",
            &s("ca.crt"),
            "-CAkey",
            &s("ca.key"),
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            &s("server.ext"),
            "-out",
            &s("server.crt"),
        ],
    );
    Pki {
        ca_cert: p("ca.crt"),
        ca_key: p("ca.key"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    }
}

// ---------------------------------------------------------------------------
// Proxy configuration
// ---------------------------------------------------------------------------
