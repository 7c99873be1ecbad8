//! Bad input on the MySQL listener: garbage, truncated packets, a
//! sequence-id mismatch and oversized length fields, before and after
//! authentication, never crash the proxy; a normal session works after.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn raw(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = [0u8; 256];
    let _ = s.read(&mut greeting);
    let _ = s.write_all(bytes);
    let mut sink = [0u8; 1024];
    let _ = s.read(&mut sink);
}

#[test]
fn garbage_never_crashes_the_mysql_listener() {
    let schema = "airlock_t_my_garbage";
    fresh_schema(schema);
    let mut proxy = Proxy::start(ProxyConfig::for_mariadb(schema));
    let port = proxy.mysql_port;
    let cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        vec![0x10, 0, 0, 1, 1, 2, 3], // truncated handshake response
        vec![0xff, 0xff, 0xff, 1],    // a 16 MiB announcement, then nothing
        vec![0x20, 0, 0, 9],          // a wrong sequence id, no body
        {
            // A well-framed response with a user name that never ends.
            let mut v = vec![40, 0, 0, 1];
            v.extend_from_slice(&0x000f_a685u32.to_le_bytes());
            v.extend_from_slice(&[0; 36]);
            v
        },
        {
            // Oversized lengths inside a well-framed response.
            let mut v = vec![60, 0, 0, 1];
            v.extend_from_slice(&0x003f_a685u32.to_le_bytes());
            v.extend_from_slice(&[0, 0, 0, 1, 45]);
            v.extend_from_slice(&[0; 23]);
            v.extend_from_slice(b"alice\0");
            v.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
            v.resize(64, 0);
            v
        },
    ];
    for c in &cases {
        raw(port, c);
        proxy.assert_alive("a garbage connection");
    }
    // After authentication: garbage, a truncated command, a bad sequence id
    // and an oversized length field on an open session.
    let script = r#"
import sys, socket, pymysql
port, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for junk in [b"\x05\x00\x00\x00\x03SEL", b"\xff\xff\xff\x00" + b"x" * 100, b"\x01\x00\x00\x07\x0e", b"\x00\x00\x00\x00", b"\xde\xad\xbe\xef" * 50]:
    c = pymysql.connect(host="127.0.0.1", port=port, user="alice", password=pw, database=db)
    c._sock.sendall(junk)
    c._sock.settimeout(3)
    try:
        c._sock.recv(1024)
    except Exception:
        pass
    c._sock.close()
print("ok")
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(proxy.config.password("alice"))
        .arg(schema);
    run_with_timeout(cmd, None, Duration::from_secs(120)).assert_success("junk after login");
    proxy.assert_alive("junk after login");
    let ok = proxy.mysql("alice", &["-N", schema, "-e", "SELECT 41 + 1"], None);
    ok.assert_success("a normal session afterwards");
    assert_eq!(ok.stdout().trim(), "42");
}
