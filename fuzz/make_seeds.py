#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (checked in; rerun
after changing this file): real protocol frames and SQL, some of it from
tests/fixtures/held_statements.sql. The fuzzer's own finds go to a work
directory outside the clone (see run.sh), not here.

    python3 fuzz/make_seeds.py
"""
import base64
import hashlib
import os
import re
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def typed(tag, body=b""):
    return tag + struct.pack("!i", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, minor=0):
    body = struct.pack("!i", (3 << 16) | minor)
    for k, v in params:
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def untyped(code, rest=b""):
    return struct.pack("!ii", 8 + len(rest), code) + rest


def query(sql):
    return typed(b"Q", cstr(sql))


def parse(name, sql, types=()):
    return typed(b"P", cstr(name) + cstr(sql) + struct.pack("!h", len(types)) + b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=(), formats=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!h", len(formats))
    body += b"".join(struct.pack("!h", f) for f in formats)
    body += struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
    return typed(b"B", body + struct.pack("!hh", 1, 0))


def function_call(oid, args, fmt=1):
    body = struct.pack("!Ihh", oid, 1, fmt) + struct.pack("!h", len(args))
    for a in args:
        body += struct.pack("!i", len(a)) + a
    return typed(b"F", body + struct.pack("!h", 0))


def error(fields, tag=b"E"):
    return typed(tag, b"".join(k + cstr(v) for k, v in fields) + b"\0")


def sasl_initial(mech, data):
    return typed(b"p", cstr(mech) + struct.pack("!i", len(data)) + data)


def auth(code, payload=b""):
    return typed(b"R", struct.pack("!i", code) + payload)


def row_description(cols):
    body = struct.pack("!h", len(cols))
    for c in cols:
        body += cstr(c) + struct.pack("!ihIhih", 0, 0, 25, -1, -1, 0)
    return typed(b"T", body)


def data_row(values):
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return typed(b"D", body)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def held_statements():
    with open(os.path.join(ROOT, "tests", "fixtures", "held_statements.sql")) as f:
        lines = [l for l in f.read().split("\n") if not l.startswith("#")]
    entries = [e.strip() for e in re.split(r"\n\s*\n", "\n".join(lines)) if e.strip()]
    return [e.replace("{db}", "orders") for e in entries]


READS = [
    "SELECT 1",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
    "SELECT * FROM t WHERE v = 'it''s' AND n > 1.5",
    "SHOW search_path",
    "BEGIN; SELECT 1; COMMIT",
    "BEGIN READ ONLY; SELECT count(*) FROM accounts; END",
    "EXPLAIN SELECT * FROM t WHERE id = 3",
    "EXPLAIN (ANALYZE false) SELECT 1",
    "SELECT lower(name), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "WITH r AS (SELECT 1 AS n) SELECT n FROM r",
    "SELECT $$a;b$$, $x$ ; $x$, E'\\n', U&'\\0041'",
    "SELECT 'x' /* ; */ ; -- trailing\nSELECT 2",
    "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a",
    "SELECT extract(year FROM now()), substring('abc' FROM 2)",
    "SET search_path TO public",
    "SET application_name = 'psql'",
    "SET SESSION application_name TO 'DBeaver 24.1'",
    "SHOW application_name",
    "DECLARE c CURSOR FOR SELECT * FROM t; FETCH 10 FROM c; CLOSE c",
    "PREPARE p AS SELECT $1::int; EXECUTE p(1); DEALLOCATE p",
    "COPY t TO STDOUT",
    "VALUES (1, 'a'), (2, 'b')",
    "TABLE t",
    "LISTEN chan",
    "DISCARD ALL",
    "SELECT set_config('search_path', 'x', false)",
    "/* airlock: reason=close account 5; max_rows=5 */ UPDATE accounts SET status = 'closed' WHERE id = 5",
    "SET airlock.reason = 'clean up test rows'",
    "CALL airlock.run(1)",
    "SHOW airlock.requests",
    "SELECT 1 END; DELETE FROM t",
    "SELECT 1 -- x\rDELETE FROM t",
]


def sql_seeds():
    held = held_statements()
    return READS + held[::6]


def frame_seeds():
    client = (
        query("SELECT 1")
        + parse("", "SELECT $1::int", [23])
        + bind("", "", [b"42"])
        + typed(b"D", b"P\0")
        + typed(b"E", b"\0" + struct.pack("!i", 0))
        + typed(b"S")
    )
    write("frame_decoder", "client_simple_and_extended", b"\x00" + client)
    write(
        "frame_decoder",
        "client_named_statements",
        b"\x07"
        + parse("s1", "SELECT * FROM t WHERE id = $1", [23])
        + bind("p1", "s1", [b"\x00\x00\x00\x07"], [1])
        + typed(b"E", b"p1\0" + struct.pack("!i", 10))
        + typed(b"C", b"Ss1\0")
        + parse("s2", "DELETE FROM t")
        + bind("", "s2", [None])
        + typed(b"H")
        + typed(b"X"),
    )
    write(
        "frame_decoder",
        "client_function_call_lo",
        b"\x03"
        + function_call(952, [struct.pack("!I", 16384), struct.pack("!i", 0x40000)])
        + function_call(954, [struct.pack("!i", 0), struct.pack("!i", 8192)])
        + function_call(1, [b"12"], fmt=0),
    )
    write(
        "frame_decoder",
        "client_set_application_name",
        b"\x01" + query("SET application_name = 'psql'") + query("SHOW application_name")
        + parse("a1", "SHOW application_name") + bind("", "a1"),
    )
    write(
        "frame_decoder",
        "server_startup",
        b"\x10"
        + auth(0)
        + typed(b"S", cstr("application_name") + cstr("airlock:fuzz:psql"))
        + typed(b"S", cstr("server_version") + cstr("17.2"))
        + typed(b"K", struct.pack("!ii", 4242, 99))
        + typed(b"Z", b"I"),
    )
    write(
        "frame_decoder",
        "server_rows",
        b"\x20"
        + row_description(["application_name"])
        + data_row([b"airlock:fuzz:psql"])
        + typed(b"C", cstr("SHOW"))
        + error([(b"S", "ERROR"), (b"V", "ERROR"), (b"C", "42P01"), (b"M", 'relation "x" does not exist')])
        + error([(b"S", "NOTICE"), (b"C", "00000"), (b"M", "hello")], tag=b"N")
        + typed(b"Z", b"T"),
    )
    write("frame_decoder", "bad_length", b"\x00Q\xff\xff\xff\xffSELECT 1\0")
    write("frame_decoder", "partial", b"\x02" + query("SELECT 1")[:7])


VERIFIER = (
    "SCRAM-SHA-256$4096:YWlybG9jay1mdXp6LXNhbHQ=$okOo0z8G63ZlXg/5aJupzv9dyQf842dcl9LZUjiBxRc="
    ":OKJPLgMnwJz9JZJvga38v+Jq7//5mLhEFuc4Z9fXID0="
)


def startup_seeds():
    params = [("user", "alice"), ("database", "orders-prod"), ("application_name", "psql"), ("client_encoding", "UTF8")]
    first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    proof = base64.b64encode(hashlib.sha256(b"not a proof").digest())
    final = typed(b"p", b"c=biws,r=@@,p=" + proof)
    sasl = sasl_initial("SCRAM-SHA-256", first) + final
    write("startup_auth", "client_scram_known_user", b"\x00" + startup(params) + sasl)
    write("startup_auth", "client_scram_unknown_user", b"\x01" + startup([("user", "mallory")]) + sasl)
    write(
        "startup_auth",
        "client_protocol_3_2_options",
        b"\x00" + startup([("user", "bob"), ("_pq_.test", "1"), ("default_transaction_read_only", "off")], minor=2) + sasl,
    )
    write("startup_auth", "client_channel_binding", b"\x00" + startup(params)
          + sasl_initial("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=abc") + final)
    write("startup_auth", "cancel_request", b"\x00" + untyped(80877102, struct.pack("!ii", 4242, 99)))
    write("startup_auth", "ssl_request", b"\x00" + untyped(80877103))
    write("startup_auth", "gssenc_request", b"\x01" + untyped(80877104))
    write("startup_auth", "protocol_2", b"\x00" + struct.pack("!ii", 9, 2 << 16) + b"\0")
    salt = base64.b64encode(b"0123456789abcdef")
    server = (
        auth(10, b"SCRAM-SHA-256\0\0")
        + auth(11, b"r=@@SERVERNONCE,s=" + salt + b",i=4096")
        + auth(12, b"v=" + base64.b64encode(hashlib.sha256(b"sig").digest()))
        + auth(0)
        + typed(b"K", struct.pack("!ii", 1, 2))
        + typed(b"Z", b"I")
    )
    write("startup_auth", "upstream_scram", b"\x02" + server)
    write("startup_auth", "upstream_scram_low_iterations", b"\x02" + auth(10, b"SCRAM-SHA-256\0\0")
          + auth(11, b"r=@@x,s=" + salt + b",i=1") + auth(12, b"e=invalid-proof"))
    write("startup_auth", "upstream_error", b"\x02" + error([(b"S", "FATAL"), (b"C", "28P01"), (b"M", "password authentication failed")]))
    write("startup_auth", "configured_verifier", b"\x03" + VERIFIER.encode() + b"\n" + first + b"\nc=biws,r=@@,p=" + proof)
    write("startup_auth", "configured_verifier_short_keys", b"\x03SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA\n" + first + b"\nc=biws,r=@@,p=AAAA")


def main():
    for target in ["frame_decoder", "startup_auth", "classifier", "split_differential"]:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
    sqls = sql_seeds()
    for i, sql in enumerate(sqls):
        write("classifier", f"sql_{i:03}", sql)
    for i, sql in enumerate(READS):
        write("split_differential", f"read_{i:03}", sql)
    held = held_statements()
    for i, sql in enumerate(held[1::9]):
        write("split_differential", f"held_{i:03}", sql)
    # Several texts, judged in order by one session (NUL-separated).
    write("split_differential", "session_prepare_execute", "PREPARE p AS SELECT 1\0EXECUTE p\0DEALLOCATE p\0EXECUTE p")
    write("split_differential", "session_literals", "SELECT a FROM t WHERE id = 1\0SELECT a FROM t WHERE id = 2\0SELECT a FROM t WHERE id = $$2$$")
    write("split_differential", "session_app_name", "SET application_name = 'x'\0SHOW application_name")
    frame_seeds()
    startup_seeds()


if __name__ == "__main__":
    main()
