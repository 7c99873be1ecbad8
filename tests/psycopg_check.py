#!/usr/bin/env python3
"""psycopg 3 fidelity check for airlock (driven by tests/pg_psycopg.rs and tests/pg_protected.rs).

Usage: python3 tests/psycopg_check.py CONNINFO MODE [FILE]

MODE
  full      create tables in an empty database and exercise psycopg 3: binary results,
            server-side (extended protocol) parameters in text and binary format for many types,
            executemany (pipelined), auto-prepared statements, a server-side named cursor, binary
            COPY both ways, notices, LISTEN/NOTIFY (the notifying pid must be the pid that
            pg_backend_pid() returned), errors, a large row; prints a deterministic transcript.
  readonly  read-only walk over schema public (binary results, a named cursor, binary COPY TO):
            for protected targets.
  held FILE FILE holds statements separated by NUL bytes; each one is run with the extended
            protocol twice (prepare=True: named statement; binary=True: unnamed statement) and
            the outcome printed as "held <n> <mode> <SQLSTATE or OK> <usable?>".
  txnblock  a held DELETE inside a transaction block (extended protocol): AL error, then 25P02,
            then ROLLBACK leaves the session usable.

Nothing that legitimately differs between a direct and a proxied connection (pids, user name
given at login, application_name, OIDs, wall-clock times) is ever printed; pids are only
compared with each other and the comparison's outcome printed.
"""
import datetime as dt
import hashlib
import sys
import uuid
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

OUT = []


def p(*parts):
    line = " ".join(str(x) for x in parts)
    print(line, flush=True)


def esc(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def canon(v):
    """A type-tagged, deterministic rendering of a Python value returned by psycopg."""
    if v is None:
        return "None"
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) > 64:
            return "bytes(len=%d,md5=%s)" % (len(b), hashlib.md5(b).hexdigest())
        return "bytes:" + b.hex()
    if isinstance(v, str):
        if len(v) > 200:
            return "str(len=%d,md5=%s)" % (len(v), hashlib.md5(v.encode()).hexdigest())
        return "str:" + esc(repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(canon(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (canon(k), canon(x)) for k, x in v.items()) + "}"
    return type(v).__name__ + ":" + esc(repr(v))


def row_line(label, cur, row):
    names = [d.name for d in cur.description]
    return label + ": " + " | ".join("%s=%s" % (n, canon(x)) for n, x in zip(names, row))


def describe(label, cur):
    cols = ", ".join("%s/%s/%s" % (d.name, d.type_code, cur.pgresult.fformat(i) if cur.pgresult else "?")
                     for i, d in enumerate(cur.description))
    p(label + " columns: " + cols)


def dump_query(conn, label, query, params=None, binary=True):
    with conn.cursor(binary=binary) as cur:
        cur.execute(query, params)
        describe(label, cur)
        n = 0
        for row in cur:
            n += 1
            p(row_line("%s row %d" % (label, n), cur, row))
        p("%s rows: %d status=%s" % (label, n, cur.statusmessage))


def diag_line(label, e):
    d = e.diag
    return ("%s error: class=%s sqlstate=%s severity=%s message=%s detail=%s hint=%s position=%s context=%s"
            % (label, type(e).__name__, e.sqlstate, d.severity_nonlocalized, esc(str(d.message_primary)),
               esc(str(d.message_detail)), esc(str(d.message_hint)), d.statement_position,
               esc(str(d.context))))


def header(conn):
    info = conn.info
    p("connect: ok")
    p("server_version:", info.server_version, info.parameter_status("server_version"))
    for name in ("server_encoding", "client_encoding", "DateStyle", "IntervalStyle", "integer_datetimes",
                 "standard_conforming_strings", "is_superuser"):
        p("parameter_status %s: %s" % (name, info.parameter_status(name)))
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    # SPEC §11: the backend pid the driver reports (BackendKeyData) is the real upstream one.
    p("backend_pid matches pg_backend_pid():", info.backend_pid == pid)
    dump_query(conn, "whoami", "SELECT current_user, session_user, current_database(), current_schema()")
    # psycopg decides the tzinfo of timestamptz values from the TimeZone ParameterStatus.
    conn.execute("SET TimeZone TO 'America/New_York'")
    p("parameter_status TimeZone after SET:", info.parameter_status("TimeZone"))
    p("timezone:", info.timezone)


TYPES_DDL = """
CREATE TABLE t_types (
  id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, n numeric, f8 float8, t text, by bytea, bo bool,
  d date, ts timestamp, tstz timestamptz, iv interval, u uuid, j jsonb, ia int[], ta text[])
"""

TYPES_COLS = "id, i2, i4, i8, n, f8, t, by, bo, d, ts, tstz, iv, u, j, ia, ta"

ROWS = [
    (1, 7, 42, 9007199254740993, Decimal("12345678901234567890.123456789"), 3.141592653589793,
     "hello, world", b"airlock", True, dt.date(1999, 12, 31), dt.datetime(2024, 2, 29, 12, 34, 56, 789000),
     dt.datetime(2024, 6, 30, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     dt.timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=789000),
     uuid.UUID("123e4567-e89b-12d3-a456-426614174000"), Jsonb({"a": [1, 2, {"b": None}], "c": "d"}),
     [1, 2, 3], ["a", "b c", "d,e"]),
    (2, -32768, -2147483648, 9223372036854775807, Decimal("-0.000001"), -1.0e-300,
     "unicode h\u00e9llo \u2603 \U0001f418 'q' \"dq\" back\\slash\nnl\ttab", bytes(range(256)), False,
     dt.date(2000, 2, 29), dt.datetime(1970, 1, 1), dt.datetime(1999, 12, 31, 23, 0, tzinfo=dt.timezone.utc),
     dt.timedelta(days=-1, seconds=1), uuid.UUID(int=0), Jsonb([1, "two", 3.5, True, None]),
     [None, -1, 2147483647], ["", None, "NULL", 'x"y', "{brace}"]),
    (3, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (4, 0, 0, 0, Decimal("0"), float("inf"), "", b"", True, dt.date(1, 1, 1),
     dt.datetime(2038, 1, 19, 3, 14, 8, 1), dt.datetime(2038, 1, 19, 3, 14, 8,
                                                      tzinfo=dt.timezone(-dt.timedelta(hours=9, minutes=30))),
     dt.timedelta(0), uuid.UUID(int=2**128 - 1), Jsonb({}), [], []),
    (5, 1, 1, 1, Decimal("NaN"), float("nan"), "x" * 1000, b"\x00" * 1000, False, dt.date(9999, 12, 31),
     dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc),
     dt.timedelta(days=36500), uuid.UUID("00000000-0000-0000-0000-000000000001"), Jsonb("just a string"),
     [[1, 2], [3, 4]], [["a", "b"], ["c", None]]),
]


def types_section(conn):
    conn.execute(TYPES_DDL)
    # Auto (%s), text (%t) and binary (%b) parameter formats, all sent as server-side parameters.
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t_types (%s) VALUES (%s)" % (TYPES_COLS, ", ".join(["%s"] * 17)), ROWS[0])
        p("insert auto:", cur.rowcount, cur.statusmessage)
        cur.execute("INSERT INTO t_types (%s) VALUES (%s)" % (TYPES_COLS, ", ".join(["%b"] * 17)), ROWS[1])
        p("insert binary:", cur.rowcount, cur.statusmessage)
        cur.execute("INSERT INTO t_types (%s) VALUES (%s)" % (TYPES_COLS, ", ".join(["%t"] * 17)), ROWS[2])
        p("insert text:", cur.rowcount, cur.statusmessage)
        cur.executemany("INSERT INTO t_types (%s) VALUES (%s)" % (TYPES_COLS, ", ".join(["%b"] * 17)), ROWS[3:])
        p("insert executemany:", cur.rowcount)
    for binary in (True, False):
        dump_query(conn, "types binary=%s" % binary, "SELECT %s FROM t_types ORDER BY id" % TYPES_COLS,
                   binary=binary)
    # Parameters compared server-side, one per type.
    probes = [
        ("int2", "i2 = %b", -32768), ("int4", "i4 = %s", 42), ("int8", "i8 = %b", 9223372036854775807),
        ("numeric", "n = %b", Decimal("-0.000001")), ("float8", "f8 = %s", 3.141592653589793),
        ("text", "t = %t", "hello, world"), ("bytea", "by = %b", bytes(range(256))), ("bool", "bo = %s", False),
        ("date", "d = %b", dt.date(2000, 2, 29)), ("timestamp", "ts = %b", dt.datetime(1970, 1, 1)),
        ("timestamptz", "tstz = %b", dt.datetime(2000, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
        ("interval", "iv = %b", dt.timedelta(0)), ("uuid", "u = %b", uuid.UUID(int=2**128 - 1)),
        ("jsonb", "j @> %b", Jsonb({"c": "d"})), ("intarray", "ia = %b::int4[]", [1, 2, 3]),
        ("textarray", "ta && %t", ["NULL", "zzz"]), ("null", "%s::int IS NULL AND t IS NULL", None),
    ]
    with conn.cursor(binary=True) as cur:
        for name, cond, value in probes:
            cur.execute("SELECT id FROM t_types WHERE " + cond + " ORDER BY id", (value,))
            p("param %s: ids=%s" % (name, [r[0] for r in cur.fetchall()]))
        cur.execute("SELECT %b::int2 + 1 AS a, %b::int8 * 2 AS b, %b::numeric / 3 AS c, %b::float8 AS d, "
                    "%b::text || '!' AS e, length(%b::bytea) AS f, NOT %b::bool AS g, %b::date + 1 AS h, "
                    "%b::timestamp AS i, %b::timestamptz AS j, %b::interval * 2 AS k, %b::uuid AS l, "
                    "%b::jsonb -> 'x' AS m, %b::int[] AS n, %b::text[] AS o",
                    (1, 2**40, Decimal(10), 0.1, "param", bytes(range(256)), True, dt.date(2024, 2, 28),
                     dt.datetime(2023, 12, 31, 23, 59, 59, 999999),
                     dt.datetime(2021, 3, 28, 1, 30, tzinfo=dt.timezone.utc), dt.timedelta(hours=1, seconds=1),
                     uuid.UUID("123e4567-e89b-12d3-a456-426614174000"), Jsonb({"x": [True, None]}),
                     [5, None, 7], ["x", None, "y z"]))
        describe("computed", cur)
        p(row_line("computed", cur, cur.fetchone()))


def executemany_section(conn):
    conn.execute("CREATE TABLE t_many (id int PRIMARY KEY, v text NOT NULL, n numeric)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t_many (id, v, n) VALUES (%s, %s, %s)",
                        [(i, "row-%d" % i, None if i % 10 == 0 else Decimal(i) / 100) for i in range(1, 101)])
        p("executemany rowcount:", cur.rowcount)
        cur.executemany("INSERT INTO t_many (id, v) VALUES (%b, %b) RETURNING id * 10, v",
                        [(i, "ret-%d" % i) for i in range(101, 106)], returning=True)
        rets = []
        while True:
            rets.append(cur.fetchall())
            if not cur.nextset():
                break
        p("executemany returning:", canon([[list(r) for r in rs] for rs in rets]))
        try:
            cur.executemany("INSERT INTO t_many (id, v) VALUES (%s, %s)", [(200, "a"), (1, "dup"), (201, "b")])
            p("executemany dup: no error?!")
        except psycopg.Error as e:
            p(diag_line("executemany dup", e))
    dump_query(conn, "many check", "SELECT count(*), sum(id), sum(n), count(n), md5(string_agg(v, ',' ORDER BY id)) FROM t_many")
    # Explicit pipeline
    with conn.cursor(binary=True) as c1, conn.cursor() as c2, conn.cursor() as c3:
        with conn.pipeline():
            c1.execute("UPDATE t_many SET v = v || '+' WHERE id <= %s", (10,))
            c2.execute("SELECT count(*) FROM t_many WHERE v LIKE %s", ("%+",))
            c3.execute("DELETE FROM t_many WHERE id > %b", (100,))
        p("pipeline update:", c1.rowcount, "select:", c2.fetchone()[0], "delete:", c3.rowcount)


def prepared_section(conn):
    # prepare_threshold (default 5): from the 5th execution psycopg uses a named prepared statement.
    with conn.cursor(binary=True) as cur:
        for i in range(1, 11):
            cur.execute("SELECT %s::int * 2 AS dbl, md5(%s::text) AS h, %s::timestamptz AS at",
                        (i, "x%d" % i, dt.datetime(2020, 1, i, 12, tzinfo=dt.timezone(dt.timedelta(hours=i - 5)))))
            p(row_line("auto-prepared %d" % i, cur, cur.fetchone()))
        cur.execute("SELECT count(*) FROM pg_prepared_statements")
        p("prepared statements on server:", cur.fetchone()[0])
        cur.execute("SELECT %s::text AS forced", ("x",), prepare=True)
        p("forced prepare:", cur.fetchone()[0])


def cursor_section(conn):
    conn.execute("CREATE TABLE t_big AS SELECT g AS id, md5(g::text) AS h, g * 1.5 AS n FROM generate_series(1, 1000) g")
    with conn.transaction():
        with conn.cursor(name="big_cursor", binary=True) as cur:
            cur.itersize = 10
            cur.execute("SELECT id, h, n FROM t_big WHERE id > %s ORDER BY id", (0,))
            count, total, h = 0, 0, hashlib.md5()
            for row in cur:
                count += 1
                total += row[0]
                h.update(row[1].encode())
                h.update(str(row[2]).encode())
            p("named cursor: count=%d sum=%d md5=%s" % (count, total, h.hexdigest()))
        with conn.cursor(name="scroll_cursor", scrollable=True) as cur:
            cur.execute("SELECT id FROM t_big ORDER BY id")
            a = cur.fetchmany(3)
            cur.scroll(500, mode="absolute")
            b = cur.fetchone()
            cur.scroll(-10)
            c = cur.fetchone()
            p("scroll cursor:", [r[0] for r in a], b[0], c[0])
    with conn.cursor(name="held_cursor", withhold=True) as cur:
        cur.execute("SELECT id FROM t_big WHERE mod(id, 100) = 0 ORDER BY id")
        p("withhold cursor:", [r[0] for r in cur.fetchall()])


def copy_section(conn):
    conn.execute("CREATE TABLE t_copy (id int, t text, by bytea, ts timestamptz, n numeric, ia int[])")
    rows = [(i, "copy-%d \u00e9\t\\" % i if i % 5 else None, bytes([i % 256]) * (i % 7), dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i),
             Decimal(i) / 7, [i, i + 1]) for i in range(500)]
    with conn.cursor() as cur:
        with cur.copy("COPY t_copy (id, t, by, ts, n, ia) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "bytea", "timestamptz", "numeric", "int4[]"])
            for r in rows:
                copy.write_row(r)
        p("copy from binary:", cur.rowcount, cur.statusmessage)
        with cur.copy("COPY t_copy (id, t) FROM STDIN") as copy:
            copy.write("1000\ttext format\n1001\t\\N\n")
        p("copy from text:", cur.rowcount, cur.statusmessage)
        with cur.copy("COPY (SELECT * FROM t_copy ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "bytea", "timestamptz", "numeric", "int4[]"])
            h = hashlib.md5()
            n = 0
            for row in copy.rows():
                n += 1
                h.update(canon(list(row)).encode())
        p("copy to binary rows: n=%d md5=%s status=%s" % (n, h.hexdigest(), cur.statusmessage))
        with cur.copy("COPY (SELECT * FROM t_copy ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
            raw = b"".join(bytes(b) for b in copy)
        p("copy to binary raw: len=%d md5=%s" % (len(raw), hashlib.md5(raw).hexdigest()))
        with cur.copy("COPY (SELECT * FROM t_copy ORDER BY id) TO STDOUT (FORMAT CSV, HEADER)") as copy:
            raw = b"".join(bytes(b) for b in copy)
        p("copy to csv raw: len=%d md5=%s" % (len(raw), hashlib.md5(raw).hexdigest()))
        try:
            with cur.copy("COPY t_copy (id) FROM STDIN") as copy:
                copy.write("1\nnot-a-number\n")
            p("copy bad data: no error?!")
        except psycopg.Error as e:
            p(diag_line("copy bad data", e))
    dump_query(conn, "copy check", "SELECT count(*), sum(id), md5(string_agg(coalesce(t, '-'), ',' ORDER BY id)) FROM t_copy")


def notice_section(conn):
    notices = []

    def handler(diag):
        notices.append("notice: severity=%s sqlstate=%s message=%s detail=%s hint=%s"
                       % (diag.severity_nonlocalized, diag.sqlstate, esc(str(diag.message_primary)),
                          esc(str(diag.message_detail)), esc(str(diag.message_hint))))

    conn.add_notice_handler(handler)
    conn.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful' USING DETAIL = 'd', HINT = 'h'; END $$")
    conn.execute("""CREATE FUNCTION noisy(x int) RETURNS int LANGUAGE plpgsql AS
                    $$ BEGIN RAISE NOTICE 'noisy %', x; RETURN x + 1; END $$""")
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT noisy(%s)", (41,))
        p("noisy result:", cur.fetchone()[0])
    conn.execute("DROP TABLE IF EXISTS does_not_exist")
    for n in notices:
        p(n)
    conn.remove_notice_handler(handler)


def notify_section(conninfo, conn):
    """LISTEN on one connection, NOTIFY from another; the notification names the notifier's pid,
    which must equal what pg_backend_pid() returned on the notifying connection."""
    with psycopg.connect(conninfo, autocommit=True) as other:
        conn.execute("LISTEN airlock_chan")
        me = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        them = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        p("other backend_pid matches pg_backend_pid():", other.info.backend_pid == them)
        other.execute("NOTIFY airlock_chan, 'from other'")
        other.execute("SELECT pg_notify('airlock_chan', %s)", ("via pg_notify",))
        conn.execute("NOTIFY airlock_chan, 'from self'")
        got = []
        gen = conn.notifies(timeout=10, stop_after=3)
        for n in gen:
            who = "other" if n.pid == them else ("self" if n.pid == me else "UNKNOWN-PID")
            got.append("notify: channel=%s payload=%s pid=%s" % (n.channel, n.payload, who))
        for line in got:
            p(line)
        p("notifies received:", len(got))
        conn.execute("UNLISTEN *")


def errors_section(conn):
    with conn.cursor(binary=True) as cur:
        try:
            cur.execute("SELECT 1/0")
            p("div0: no error?!")
        except psycopg.Error as e:
            p(diag_line("div0", e))
        cur.execute("SELECT 42")
        p("after div0:", cur.fetchone()[0])
        try:
            cur.execute("SELECT nosuchcolumn FROM t_types WHERE id = %s", (1,))
        except psycopg.Error as e:
            p(diag_line("undefined column", e))
        try:
            cur.execute("SELECT %s::int", ("not a number",))
        except psycopg.Error as e:
            p(diag_line("bad param", e))
        try:
            cur.execute("SELEC 1")
        except psycopg.Error as e:
            p(diag_line("syntax", e))
    # In a transaction block (autocommit off)
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        try:
            cur.execute("SELECT 1/0")
        except psycopg.Error as e:
            p(diag_line("txn div0", e))
        p("txn status after error:", conn.info.transaction_status.name)
        try:
            cur.execute("SELECT 1")
        except psycopg.Error as e:
            p(diag_line("txn after error", e))
    conn.rollback()
    conn.autocommit = True
    p("after rollback:", conn.execute("SELECT 'usable'").fetchone()[0], conn.info.transaction_status.name)


def large_section(conn):
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB
    with conn.cursor(binary=True) as cur:
        cur.execute("CREATE TABLE t_large (id int, b bytea, t text)")
        cur.execute("INSERT INTO t_large VALUES (1, %b, %t)", (big, "y" * (3 * 1024 * 1024)))
        cur.execute("SELECT b, t, length(b), md5(b) FROM t_large")
        b, t, n, m = cur.fetchone()
        p("large: len=%d md5=%s server_len=%d server_md5=%s text_len=%d"
          % (len(b), hashlib.md5(b).hexdigest(), n, m, len(t)))
    with conn.cursor() as cur:
        cur.execute("SELECT b FROM t_large")
        b = cur.fetchone()[0]
        p("large text-format: len=%d md5=%s" % (len(b), hashlib.md5(b).hexdigest()))


def full(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        header(conn)
        types_section(conn)
        executemany_section(conn)
        prepared_section(conn)
        cursor_section(conn)
        copy_section(conn)
        notice_section(conn)
        notify_section(conninfo, conn)
        errors_section(conn)
        large_section(conn)


def readonly(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        header(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1")
            tables = [r[0] for r in cur.fetchall()]
        p("tables:", tables)
        for t in tables:
            for binary in (True, False):
                dump_query(conn, "table %s binary=%s" % (t, binary),
                           sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(t)), binary=binary)
        with conn.transaction():
            with conn.cursor(name="ro_cursor", binary=True) as cur:
                cur.itersize = 3
                cur.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(tables[0])))
                p("named cursor rows:", len(cur.fetchall()))
        with conn.cursor() as cur:
            for t in tables:
                q = sql.SQL("COPY (SELECT * FROM {} ORDER BY 1) TO STDOUT (FORMAT BINARY)").format(sql.Identifier(t))
                with cur.copy(q) as copy:
                    raw = b"".join(bytes(b) for b in copy)
                p("copy %s binary: len=%d md5=%s" % (t, len(raw), hashlib.md5(raw).hexdigest()))
        # auto-prepare path on a protected target
        with conn.cursor(binary=True) as cur:
            for i in range(8):
                cur.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s AND relnamespace = 'public'::regnamespace",
                            ("%" + chr(ord("a") + i) + "%",))
                p("relname like %s: %d" % (chr(ord("a") + i), cur.fetchone()[0]))
        try:
            conn.execute("SELECT 1/0")
        except psycopg.Error as e:
            p(diag_line("div0", e))
        p("after div0:", conn.execute("SELECT 'usable'").fetchone()[0])


def held(conninfo, path):
    with open(path, "rb") as f:
        stmts = [s.decode() for s in f.read().split(b"\0")]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        p("connect: ok")
        for i, stmt in enumerate(stmts, 1):
            if not stmt.strip():
                continue
            for mode in ("prepare", "binary"):
                try:
                    with conn.cursor() as cur:
                        if mode == "prepare":
                            cur.execute(stmt.encode(), prepare=True)
                        else:
                            cur.execute(stmt.encode(), binary=True)
                    outcome = "OK"
                except psycopg.Error as e:
                    outcome = str(e.sqlstate)
                    if not outcome.startswith("AL"):
                        outcome += " (%s: %s)" % (type(e).__name__, esc(str(e).strip()))
                except Exception as e:  # noqa: BLE001 - report, do not crash the run
                    outcome = "EXC (%s: %s)" % (type(e).__name__, esc(str(e).strip()))
                try:
                    if conn.closed:
                        raise RuntimeError("connection closed")
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        after = "not-idle:" + conn.info.transaction_status.name
                    else:
                        after = "usable" if conn.execute("SELECT 1").fetchone()[0] == 1 else "weird"
                except Exception as e:  # noqa: BLE001
                    after = "unusable:" + type(e).__name__
                    conn = psycopg.connect(conninfo, autocommit=True)
                p("held %d %s %s %s" % (i, mode, outcome, after))


def txnblock(conninfo, stmt):
    with psycopg.connect(conninfo) as conn:  # autocommit off: psycopg issues BEGIN
        cur = conn.cursor()
        cur.execute("SELECT %s::int", (1,))
        p("txn select 1:", cur.fetchone()[0], conn.info.transaction_status.name)
        try:
            cur.execute(stmt, prepare=True)
            p("txn held: no error?!")
        except psycopg.Error as e:
            p("txn held: sqlstate=%s class=%s" % (e.sqlstate, type(e).__name__))
        p("txn status after held:", conn.info.transaction_status.name)
        try:
            cur.execute("SELECT %s::int", (2,))
            p("txn select 2: no error?!")
        except psycopg.Error as e:
            p("txn select 2: sqlstate=%s class=%s" % (e.sqlstate, type(e).__name__))
        conn.rollback()
        p("txn status after rollback:", conn.info.transaction_status.name)
        cur.execute("SELECT %s::int", (3,))
        p("after rollback select 3:", cur.fetchone()[0])
        conn.commit()
        p("done txnblock:", conn.info.transaction_status.name)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    conninfo, mode = sys.argv[1], sys.argv[2]
    if mode == "full":
        full(conninfo)
    elif mode == "readonly":
        readonly(conninfo)
    elif mode == "held":
        held(conninfo, sys.argv[3])
    elif mode == "txnblock":
        txnblock(conninfo, sys.argv[3])
    else:
        print("unknown mode " + mode, file=sys.stderr)
        sys.exit(2)
    p("done")


if __name__ == "__main__":
    main()
