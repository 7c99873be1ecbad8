#!/usr/bin/env python3
"""TLS fidelity checks for airlock with psycopg 3 and asyncpg (driven by tests/pg_tls_drivers.rs).

Usage: python3 tests/tls_drivers_check.py MODE CONNINFO [ARG]

CONNINFO is a libpq conninfo string (for asyncpg it is parsed and turned into
asyncpg's keyword arguments: sslmode=require -> TLS without verification,
sslmode=verify-full -> TLS verified against sslrootcert).

MODE
  large-sync ROUNDS      psycopg Connection (libpq in non-blocking mode): ROUNDS times a text
                         COPY (SELECT ...) TO STDOUT of 50,688,895 bytes and a 100,000-row SELECT
                         (rows of about 300 bytes), both checked against locally computed values.
  large-async ROUNDS     the same with psycopg AsyncConnection.
  large-asyncpg ROUNDS   the same with asyncpg (copy_from_query and fetch).
  cancel-sync            psycopg: conn.cancel_safe() (libpq >= 17: the CancelRequest goes over
                         TLS) and conn.cancel() (PQcancel, plaintext) from another thread while
                         SELECT pg_sleep(10) runs, 3 times each; the query must end with
                         QueryCanceled, the cancel call must not raise, the session goes on.
  cancel-async           psycopg AsyncConnection: asyncio.wait_for(cur.execute('SELECT
                         pg_sleep(10)'), 0.5) 3 times must raise TimeoutError, psycopg must log
                         no "query cancellation failed" and the connection stays usable.
  cancel-asyncpg         the same with asyncpg (its cancel opens a new TLS connection).
  appname-psycopg ADMIN  connects with application_name=myapp; prints SHOW application_name,
                         the driver's ParameterStatus value and what pg_stat_activity on a direct
                         connection (libpq conninfo ADMIN) says for the session's backend; then
                         SET application_name = 'other' and the same three again.
  appname-asyncpg ADMIN  the same with asyncpg (server_settings / get_settings()).
  copy-in MBYTES         psycopg: COPY sink FROM STDIN of MBYTES MiB of text rows (1 MiB writes) into
                         the existing table sink (v text), then checks count(*) and sum(length(v)).

  forward PORT           (CONNINFO is ignored: pass "-") a TCP forwarder from an ephemeral port on
                         127.0.0.1 to 127.0.0.1:PORT that does not decrypt anything but parses the
                         TLS record headers in both directions (after an SSLRequest answered 'S',
                         or from the first byte for direct TLS). Prints "listening <port>", forwards
                         until stdin is closed, then prints per direction "<dir> records=<n>
                         max_len=<bytes>" (dir: client_to_server, server_to_client; max_len is the
                         record header's length field, i.e. ciphertext bytes) and "done".

Transcript lines go to stdout and are deterministic (no times, no pids); timings go to stderr.
The last line is "done" when the program ran to its end. Exit status: 0 when every check held,
1 when one failed ("FAIL ..." lines say which), 3 when an operation stalled past its watchdog
deadline ("STALLED ..." line), 2 for usage errors.

A watchdog thread turns a stall (the failure mode this program exists to catch: libpq waiting on
a socket that never becomes readable again) into a quick, explicit failure instead of a hang.
"""
import asyncio
import hashlib
import logging
import os
import ssl
import sys
import threading
import time

import psycopg
from psycopg import conninfo as pq_conninfo
from psycopg import errors as pq_errors

# --- transcript -----------------------------------------------------------------------------

FAILED = []


def p(*parts):
    print(" ".join(str(x) for x in parts), flush=True)


def err(*parts):
    print(" ".join(str(x) for x in parts), file=sys.stderr, flush=True)


def check(ok, line, detail=""):
    """Prints `line`; on failure also a FAIL line (with detail) and remembers it."""
    p(line)
    if not ok:
        FAILED.append(line)
        p("FAIL " + line + ((": " + detail) if detail else ""))


def oneline(e):
    return " ".join(str(e).split())


def describe_exc(e):
    return "%s: %s" % (type(e).__name__, oneline(e))


# --- watchdog -------------------------------------------------------------------------------

class Watchdog:
    """Kills the process (exit 3) when the current step runs past its deadline."""

    def __init__(self):
        self.lock = threading.Lock()
        self.label = None
        self.deadline = None
        self.progress = lambda: ""
        t = threading.Thread(target=self._run, daemon=True)
        t.start()

    def step(self, label, seconds, progress=None):
        with self.lock:
            self.label = label
            self.deadline = time.monotonic() + seconds
            self.seconds = seconds
            self.progress = progress or (lambda: "")
            self.started = time.monotonic()

    def clear(self):
        with self.lock:
            self.label = None
            self.deadline = None

    def _run(self):
        while True:
            time.sleep(0.2)
            with self.lock:
                if self.deadline is None or time.monotonic() < self.deadline:
                    continue
                label, seconds = self.label, self.seconds
                try:
                    progress = self.progress()
                except Exception as e:  # pragma: no cover
                    progress = "(progress unavailable: %s)" % e
            msg = "STALLED %s: no completion within %d s%s" % (
                label, seconds, (" (" + progress + ")") if progress else "")
            print(msg, flush=True)
            print(msg, file=sys.stderr, flush=True)
            os._exit(3)


WATCHDOG = Watchdog()
# Generous: each operation moves 30-50 MB over loopback and takes about a second.
STEP_SECONDS = int(os.environ.get("TLS_CHECK_STEP_SECONDS", "60"))


# --- the large results ----------------------------------------------------------------------

N_ROWS = 100_000
PAD_WIDTH = 500
COPY_SELECT = "SELECT g, repeat('x', %d) FROM generate_series(1, %d) g" % (PAD_WIDTH, N_ROWS)
COPY_SQL = "COPY (%s) TO STDOUT" % COPY_SELECT
SELECT_SQL = (
    "SELECT g, md5(g::text) AS h, repeat(chr(65 + g %% 26), 200 + g %% 100) AS pad "
    "FROM generate_series(1, %d) g" % N_ROWS
)


def expected_copy():
    data = b"".join(b"%d\t%s\n" % (g, b"x" * PAD_WIDTH) for g in range(1, N_ROWS + 1))
    return len(data), hashlib.md5(data).hexdigest()


EXPECTED_COPY_BYTES, EXPECTED_COPY_MD5 = expected_copy()
EXPECTED_SELECT = (
    N_ROWS,
    sum(range(1, N_ROWS + 1)),
    sum(200 + g % 100 for g in range(1, N_ROWS + 1)),
    hashlib.md5(b"%d" % N_ROWS).hexdigest(),
)


class Copied:
    def __init__(self):
        self.n = 0
        self.md5 = hashlib.md5()

    def add(self, data):
        data = bytes(data)
        self.n += len(data)
        self.md5.update(data)


def check_copy(rnd, got):
    ok = got.n == EXPECTED_COPY_BYTES and got.md5.hexdigest() == EXPECTED_COPY_MD5
    check(ok, "round %d copy %s" % (rnd, "ok" if ok else "MISMATCH"),
          "got %d bytes md5 %s, expected %d bytes md5 %s"
          % (got.n, got.md5.hexdigest(), EXPECTED_COPY_BYTES, EXPECTED_COPY_MD5))


def check_select(rnd, rows):
    """rows: sequence of (g, h, pad)."""
    n = len(rows)
    sum_g = sum(int(r[0]) for r in rows)
    sum_pad = sum(len(r[2]) for r in rows)
    last_h = rows[-1][1] if rows else None
    got = (n, sum_g, sum_pad, last_h)
    ok = got == EXPECTED_SELECT
    check(ok, "round %d select %s" % (rnd, "ok" if ok else "MISMATCH"),
          "got (rows, sum g, sum len(pad), last md5) %r, expected %r" % (got, EXPECTED_SELECT))


def large_sync(conninfo, rounds):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        for rnd in range(1, rounds + 1):
            got = Copied()
            t = time.monotonic()
            WATCHDOG.step("psycopg sync round %d copy" % rnd, STEP_SECONDS,
                          lambda: "%d of %d bytes received" % (got.n, EXPECTED_COPY_BYTES))
            with conn.cursor() as cur:
                with cur.copy(COPY_SQL) as copy:
                    for data in copy:
                        got.add(data)
            WATCHDOG.clear()
            err("round %d copy %.2f s" % (rnd, time.monotonic() - t))
            check_copy(rnd, got)

            t = time.monotonic()
            WATCHDOG.step("psycopg sync round %d select" % rnd, STEP_SECONDS)
            with conn.cursor() as cur:
                cur.execute(SELECT_SQL)
                rows = cur.fetchall()
            WATCHDOG.clear()
            err("round %d select %.2f s" % (rnd, time.monotonic() - t))
            check_select(rnd, rows)
        check(conn.execute("SELECT 'still usable'").fetchone()[0] == "still usable",
              "session usable after the large results")


async def large_async_main(conninfo, rounds):
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        for rnd in range(1, rounds + 1):
            got = Copied()
            t = time.monotonic()
            WATCHDOG.step("psycopg async round %d copy" % rnd, STEP_SECONDS,
                          lambda: "%d of %d bytes received" % (got.n, EXPECTED_COPY_BYTES))
            async with conn.cursor() as cur:
                async with cur.copy(COPY_SQL) as copy:
                    async for data in copy:
                        got.add(data)
            WATCHDOG.clear()
            err("round %d copy %.2f s" % (rnd, time.monotonic() - t))
            check_copy(rnd, got)

            t = time.monotonic()
            WATCHDOG.step("psycopg async round %d select" % rnd, STEP_SECONDS)
            async with conn.cursor() as cur:
                await cur.execute(SELECT_SQL)
                rows = await cur.fetchall()
            WATCHDOG.clear()
            err("round %d select %.2f s" % (rnd, time.monotonic() - t))
            check_select(rnd, rows)
        cur = await conn.execute("SELECT 'still usable'")
        check((await cur.fetchone())[0] == "still usable", "session usable after the large results")


def asyncpg_kwargs(conninfo):
    import asyncpg  # noqa: F401  (imported here: psycopg-only modes must not need it)
    d = pq_conninfo.conninfo_to_dict(conninfo)
    kw = {
        "host": d.get("hostaddr") or d.get("host"),
        "port": int(d.get("port", 5432)),
        "user": d.get("user"),
        "password": d.get("password") or os.environ.get("PGPASSWORD"),
        "database": d.get("dbname"),
        "timeout": 15,
    }
    mode = d.get("sslmode", "disable")
    if mode in ("verify-full", "verify-ca"):
        ctx = ssl.create_default_context(cafile=d.get("sslrootcert"))
        if mode == "verify-ca":
            ctx.check_hostname = False
        elif d.get("hostaddr"):
            # libpq checks the certificate against `host` while connecting to `hostaddr`.
            kw["host"] = d.get("host")
        kw["ssl"] = ctx
    elif mode == "require":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw["ssl"] = ctx
    else:
        kw["ssl"] = False
    return kw


async def asyncpg_connect(conninfo, **extra):
    import asyncpg
    kw = asyncpg_kwargs(conninfo)
    kw.update(extra)
    return await asyncpg.connect(**kw)


async def large_asyncpg_main(conninfo, rounds):
    conn = await asyncpg_connect(conninfo)
    try:
        ssl_obj = conn._transport.get_extra_info("ssl_object")
        p("connected ssl_in_use=%s" % (ssl_obj is not None))
        for rnd in range(1, rounds + 1):
            got = Copied()

            async def sink(data):
                got.add(data)

            t = time.monotonic()
            WATCHDOG.step("asyncpg round %d copy" % rnd, STEP_SECONDS,
                          lambda: "%d of %d bytes received" % (got.n, EXPECTED_COPY_BYTES))
            await conn.copy_from_query(COPY_SELECT, output=sink, format="text")
            WATCHDOG.clear()
            err("round %d copy %.2f s" % (rnd, time.monotonic() - t))
            check_copy(rnd, got)

            t = time.monotonic()
            WATCHDOG.step("asyncpg round %d select" % rnd, STEP_SECONDS)
            rows = await conn.fetch(SELECT_SQL)
            WATCHDOG.clear()
            err("round %d select %.2f s" % (rnd, time.monotonic() - t))
            check_select(rnd, [(r["g"], r["h"], r["pad"]) for r in rows])
        check(await conn.fetchval("SELECT 'still usable'") == "still usable",
              "session usable after the large results")
    finally:
        await conn.close(timeout=10)


# --- cancellation ---------------------------------------------------------------------------

class LogToTranscript(logging.Handler):
    """Every warning a driver logs (psycopg logs failed cancellations) lands in the transcript."""

    def emit(self, record):
        p("log %s %s: %s" % (record.levelname, record.name, oneline(record.getMessage())))
        FAILED.append("driver logged: " + record.getMessage())


def capture_driver_logs():
    h = LogToTranscript(level=logging.WARNING)
    for name in ("psycopg", "asyncpg"):
        lg = logging.getLogger(name)
        lg.addHandler(h)
        lg.setLevel(logging.WARNING)
        lg.propagate = False


def cancel_sync(conninfo):
    capture_driver_logs()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        for how in ("cancel_safe", "cancel"):
            for rnd in range(1, 4):
                outcome = {}

                def run():
                    t = time.monotonic()
                    try:
                        conn.execute("SELECT pg_sleep(10)")
                        outcome["q"] = "completed"
                    except pq_errors.QueryCanceled:
                        outcome["q"] = "QueryCanceled"
                    except Exception as e:
                        outcome["q"] = describe_exc(e)
                    outcome["t"] = time.monotonic() - t

                th = threading.Thread(target=run)
                WATCHDOG.step("%s round %d" % (how, rnd), 30)
                th.start()
                time.sleep(1.0)
                try:
                    if how == "cancel_safe":
                        conn.cancel_safe(timeout=10)
                    else:
                        conn.cancel()
                    res = "ok"
                except Exception as e:
                    res = "raised " + describe_exc(e)
                check(res == "ok", "%s round %d: %s" % (how, rnd, res))
                th.join(20)
                WATCHDOG.clear()
                check(outcome.get("q") == "QueryCanceled",
                      "%s round %d query: %s" % (how, rnd, outcome.get("q", "still running")))
                took = outcome.get("t", 99)
                err("%s round %d: query ended after %.2f s" % (how, rnd, took))
                check(took < 6, "%s round %d query ended within 6 s: %s" % (how, rnd, took < 6),
                      "took %.2f s" % took)
                try:
                    v = conn.execute("SELECT 'usable'").fetchone()[0]
                except Exception as e:
                    v = describe_exc(e)
                check(v == "usable", "%s round %d after cancel: %s" % (how, rnd, v))


async def cancel_async_main(conninfo):
    capture_driver_logs()
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        for rnd in range(1, 4):
            WATCHDOG.step("async cancel round %d" % rnd, 30)
            t = time.monotonic()
            try:
                async with conn.cursor() as cur:
                    await asyncio.wait_for(cur.execute("SELECT pg_sleep(10)"), 0.5)
                res = "completed"
            except (asyncio.TimeoutError, asyncio.CancelledError) as e:
                res = "TimeoutError" if isinstance(e, asyncio.TimeoutError) else "CancelledError"
            except Exception as e:
                res = describe_exc(e)
            took = time.monotonic() - t
            err("async cancel round %d: %s after %.2f s" % (rnd, res, took))
            check(res in ("TimeoutError", "CancelledError"), "round %d wait_for: %s"
                  % (rnd, "TimeoutError/CancelledError" if res in ("TimeoutError", "CancelledError") else res))
            check(took < 6, "round %d ended within 6 s: %s" % (rnd, took < 6), "took %.2f s" % took)
            try:
                cur = await conn.execute("SELECT 'usable'")
                v = (await cur.fetchone())[0]
            except Exception as e:
                v = describe_exc(e)
            WATCHDOG.clear()
            check(v == "usable", "round %d after cancel: %s" % (rnd, v))
            check(not conn.broken, "round %d connection broken: %s" % (rnd, conn.broken))


async def cancel_asyncpg_main(conninfo):
    capture_driver_logs()
    conn = await asyncpg_connect(conninfo)
    try:
        p("connected ssl_in_use=%s" % (conn._transport.get_extra_info("ssl_object") is not None))
        for rnd in range(1, 4):
            WATCHDOG.step("asyncpg cancel round %d" % rnd, 30)
            t = time.monotonic()
            try:
                await asyncio.wait_for(conn.execute("SELECT pg_sleep(10)"), 0.5)
                res = "completed"
            except (asyncio.TimeoutError, asyncio.CancelledError) as e:
                res = "TimeoutError" if isinstance(e, asyncio.TimeoutError) else "CancelledError"
            except Exception as e:
                res = describe_exc(e)
            took = time.monotonic() - t
            err("asyncpg cancel round %d: %s after %.2f s" % (rnd, res, took))
            check(res in ("TimeoutError", "CancelledError"), "round %d wait_for: %s"
                  % (rnd, "TimeoutError/CancelledError" if res in ("TimeoutError", "CancelledError") else res))
            try:
                v = await asyncio.wait_for(conn.fetchval("SELECT 'usable'"), 10)
            except Exception as e:
                v = describe_exc(e)
            took = time.monotonic() - t
            WATCHDOG.clear()
            check(v == "usable", "round %d after cancel: %s" % (rnd, v))
            check(took < 6, "round %d cancel and next query within 6 s: %s" % (rnd, took < 6),
                  "took %.2f s" % took)
    finally:
        await conn.close(timeout=10)


# --- application_name -----------------------------------------------------------------------

def upstream_appname(admin, pid):
    with psycopg.connect(admin, autocommit=True) as a:
        r = a.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return r[0] if r else "<no pg_stat_activity row for the session's backend>"


def appname_psycopg(conninfo, admin):
    WATCHDOG.step("appname psycopg", 60)
    with psycopg.connect(conninfo, autocommit=True, application_name="myapp") as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        check(pid == conn.info.backend_pid, "backend_pid matches pg_backend_pid(): %s" % (pid == conn.info.backend_pid))
        for phase, expect in (("startup", "myapp"), ("after SET", "other")):
            if phase == "after SET":
                conn.execute("SET application_name = 'other'")
            show = conn.execute("SHOW application_name").fetchone()[0]
            check(show == expect, "%s SHOW application_name: %s" % (phase, show))
            ps = conn.info.parameter_status("application_name")
            ps = ps.decode() if isinstance(ps, bytes) else ps
            check(ps == expect, "%s parameter_status application_name: %s" % (phase, ps))
            p("%s pg_stat_activity application_name: %s" % (phase, upstream_appname(admin, pid)))
    WATCHDOG.clear()


async def appname_asyncpg_main(conninfo, admin):
    WATCHDOG.step("appname asyncpg", 60)
    conn = await asyncpg_connect(conninfo, server_settings={"application_name": "myapp"})
    try:
        p("connected ssl_in_use=%s" % (conn._transport.get_extra_info("ssl_object") is not None))
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        check(pid == conn.get_server_pid(), "backend_pid matches pg_backend_pid(): %s" % (pid == conn.get_server_pid()))
        for phase, expect in (("startup", "myapp"), ("after SET", "other")):
            if phase == "after SET":
                await conn.execute("SET application_name = 'other'")
            show = await conn.fetchval("SHOW application_name")
            check(show == expect, "%s SHOW application_name: %s" % (phase, show))
            ps = getattr(conn.get_settings(), "application_name", None)
            check(ps == expect, "%s parameter_status application_name: %s" % (phase, ps))
            p("%s pg_stat_activity application_name: %s" % (phase, upstream_appname(admin, pid)))
    finally:
        await conn.close(timeout=10)
    WATCHDOG.clear()


# --- pushing data upstream -----------------------------------------------------------------

def copy_in(conninfo, mbytes):
    line = b"%s\n" % (b"z" * 1023)  # 1 KiB per row
    block = line * 1024  # 1 MiB per write
    with psycopg.connect(conninfo, autocommit=True) as conn:
        p("connected ssl_in_use=%s" % conn.pgconn.ssl_in_use)
        WATCHDOG.step("copy-in of %d MiB" % mbytes, STEP_SECONDS)
        with conn.cursor() as cur:
            with cur.copy("COPY sink (v) FROM STDIN") as copy:
                for _ in range(mbytes):
                    copy.write(block)
        WATCHDOG.clear()
        n, total = conn.execute("SELECT count(*), sum(length(v)) FROM sink").fetchone()
        ok = (n, total) == (mbytes * 1024, mbytes * 1024 * 1023)
        check(ok, "copy-in %s" % ("ok" if ok else "MISMATCH"),
              "got %r rows / %r chars, expected %r / %r" % (n, total, mbytes * 1024, mbytes * 1024 * 1023))


# --- a record-counting TCP forwarder --------------------------------------------------------

class RecordParser:
    """Counts TLS records in one direction of a Postgres connection, from their 5-byte headers."""

    def __init__(self, stats, key):
        self.stats, self.key = stats, key
        self.state = "start"  # start | tls | plain
        self.head = b""
        self.skip = 0

    def feed(self, data):
        i, n = 0, len(data)
        while i < n and self.state == "tls":
            if self.skip:
                k = min(self.skip, n - i)
                self.skip -= k
                i += k
                continue
            need = 5 - len(self.head)
            self.head += data[i:i + need]
            i += min(need, n - i)
            if len(self.head) == 5:
                length = int.from_bytes(self.head[3:5], "big")
                with self.stats["lock"]:
                    st = self.stats[self.key]
                    st["records"] += 1
                    st["max_len"] = max(st["max_len"], length)
                self.head = b""
                self.skip = length


def forward(target_port):
    import socket
    stats = {"lock": threading.Lock(),
             "client_to_server": {"records": 0, "max_len": 0},
             "server_to_client": {"records": 0, "max_len": 0}}
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def handle(csock):
        try:
            ssock = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            csock.close()
            return
        for s in (csock, ssock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c2s = RecordParser(stats, "client_to_server")
        s2c = RecordParser(stats, "server_to_client")
        ssl_request = threading.Event()

        # The first chunk of each direction decides how the rest is parsed (on loopback the
        # 8-byte SSLRequest and the 1-byte answer arrive whole).
        def client_first(data):
            if data[:1] == b"\x16":  # direct TLS (ALPN postgresql): TLS from the first byte
                c2s.state = s2c.state = "tls"
                return data
            if len(data) >= 8 and int.from_bytes(data[0:4], "big") == 8 \
                    and int.from_bytes(data[4:8], "big") == 80877103:
                ssl_request.set()
                c2s.state = "tls"
                return data[8:]
            c2s.state = "plain"
            return data

        def server_first(data):
            if s2c.state == "tls":
                return data
            if ssl_request.is_set() and data[:1] == b"S":
                s2c.state = "tls"
                return data[1:]
            s2c.state = "plain"
            return data

        def run(src, dst, parser, first_fn):
            first = True
            try:
                while True:
                    data = src.recv(262144)
                    if not data:
                        break
                    parser.feed(first_fn(data) if first else data)
                    first = False
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sk in (dst, src):
                    try:
                        sk.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=run, args=(csock, ssock, c2s, client_first), daemon=True).start()
        threading.Thread(target=run, args=(ssock, csock, s2c, server_first), daemon=True).start()

    def accept_loop():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            handle(c)

    threading.Thread(target=accept_loop, daemon=True).start()
    p("listening %d" % lsock.getsockname()[1])
    sys.stdin.read()
    time.sleep(0.3)
    with stats["lock"]:
        for key in ("client_to_server", "server_to_client"):
            st = stats[key]
            p("%s records=%d max_len=%d" % (key, st["records"], st["max_len"]))


# --- main -----------------------------------------------------------------------------------

def main():
    if len(sys.argv) < 3:
        err(__doc__)
        sys.exit(2)
    mode, conninfo, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    p("mode %s" % mode)
    if mode == "large-sync":
        large_sync(conninfo, int(args[0]))
    elif mode == "large-async":
        asyncio.run(large_async_main(conninfo, int(args[0])))
    elif mode == "large-asyncpg":
        asyncio.run(large_asyncpg_main(conninfo, int(args[0])))
    elif mode == "cancel-sync":
        cancel_sync(conninfo)
    elif mode == "cancel-async":
        asyncio.run(cancel_async_main(conninfo))
    elif mode == "cancel-asyncpg":
        asyncio.run(cancel_asyncpg_main(conninfo))
    elif mode == "appname-psycopg":
        appname_psycopg(conninfo, args[0])
    elif mode == "appname-asyncpg":
        asyncio.run(appname_asyncpg_main(conninfo, args[0]))
    elif mode == "copy-in":
        copy_in(conninfo, int(args[0]))
    elif mode == "forward":
        forward(int(args[0]))
    else:
        err("unknown mode %s" % mode)
        sys.exit(2)
    if FAILED:
        p("failed %d check(s)" % len(FAILED))
        p("done")
        sys.exit(1)
    p("done")


if __name__ == "__main__":
    main()
