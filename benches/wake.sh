#!/usr/bin/env bash
# Wake-up latency across replicas (issue 8) and the store load of waiting
# sessions. Two `airlock serve` replicas share a PostgreSQL store.
#
#  1. N times: a psycopg session on replica A sends an UPDATE with
#     `SET airlock.wait = '60s'` and blocks; the bench approves the request
#     through replica B's HTTP API and times from the approval's HTTP answer
#     (the decision is committed) to the UPDATE returning at the client
#     (woken, run, result streamed). Prints median and p99.
#  2. W sessions wait for S seconds while nothing is decided; the store
#     database's transactions (pg_stat_database.xact_commit + xact_rollback)
#     over that time, per waiting session per second, minus an idle
#     baseline of the same length with no session waiting.
#
#   bash benches/wake.sh                  # N=100 W=20 S=20
#   AIRLOCK_BIN=/path/to/old/airlock bash benches/wake.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
W=${W:-20}
S=${S:-20}
PORT_A=${PORT_A:-16632}
PORT_B=${PORT_B:-16633}
HTTP_A=${HTTP_A:-16680}
HTTP_B=${HTTP_B:-16681}
DB=airlock_wake_bench
STORE_DB=airlock_wake_bench_state
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/airlock-target}"
export PGSSLMODE=disable
if [ -n "${AIRLOCK_BIN:-}" ]; then
    AIRLOCK="$AIRLOCK_BIN"
else
    cargo build --release -q -p airlock
    AIRLOCK="$CARGO_TARGET_DIR/release/airlock"
fi
bash tests/setup-postgres.sh >/dev/null
for d in "$DB" "$STORE_DB"; do
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d"
done
psql -X -q -h 127.0.0.1 -U postgres -d "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO t SELECT g FROM generate_series(1, $((N + W))) g"
WORK=$(mktemp -d /tmp/airlock-wake-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; echo "logs: $WORK"; }
trap cleanup EXIT
VERIFIER=$(printf 'bench-pw' | "$AIRLOCK" passwd)
TOKEN=alk_wake_bench_reviewer_token_0123456789
TOKEN_SHA=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
config() { # port http_port
cat <<TOML
[server]
postgres_listen = "127.0.0.1:$1"
http_listen = "127.0.0.1:$2"
log_format = "json"
[store]
url = "postgres://postgres@127.0.0.1:5432/$STORE_DB"
[policy]
approver_groups = ["dba"]
[[families]]
name = "bench"
environments = ["dev", "prod"]
[[users]]
name = "bench"
groups = ["bench"]
scram_verifier = "$VERIFIER"
[[users]]
name = "reviewer"
groups = ["dba"]
scram_verifier = "$VERIFIER"
api_token_sha256 = "$TOKEN_SHA"
[[targets]]
name = "bench-prod"
family = "bench"
environment = "prod"
protected = true
allowed_groups = ["bench"]
upstream = { host = "127.0.0.1", database = "$DB" }
read_credentials = { user = "postgres" }
write_credentials = { user = "postgres" }
TOML
}
config "$PORT_A" "$HTTP_A" >"$WORK/a.toml"
config "$PORT_B" "$HTTP_B" >"$WORK/b.toml"
AIRLOCK_LOG=warn "$AIRLOCK" serve --config "$WORK/a.toml" 2>"$WORK/a.log" &
PIDS+=($!)
AIRLOCK_LOG=warn "$AIRLOCK" serve --config "$WORK/b.toml" 2>"$WORK/b.log" &
PIDS+=($!)
for p in "$PORT_A" "$PORT_B"; do
    for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$p" && break; sleep 0.1; done
done
python3 - "$N" "$W" "$S" "$PORT_A" "$HTTP_B" "$TOKEN" "$STORE_DB" <<'PY'
import sys, time, threading, statistics, json, urllib.request, psycopg
n, w, s = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
port_a, http_b, token, store_db = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
session = f"host=127.0.0.1 port={port_a} user=bench password=bench-pw dbname=bench-prod sslmode=disable"
store = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={store_db}", autocommit=True)

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def pending_id(row):
    for _ in range(3000):
        r = store.execute("SELECT id FROM requests WHERE status = 'pending' AND statement LIKE %s",
                          (f"% WHERE id = {row}",)).fetchone()
        if r:
            return r[0]
        time.sleep(0.002)
    raise SystemExit(f"no pending request for row {row}")

def approve(rid):
    req = urllib.request.Request(f"http://127.0.0.1:{http_b}/api/v1/requests/{rid}/approve",
                                 data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        json.load(r)

def waiting(row, done):
    with psycopg.connect(session, autocommit=True) as c:
        c.execute("SET airlock.reason = 'bench'")
        c.execute("SET airlock.wait = '60s'")
        try:
            c.execute(f"UPDATE t SET n = n + 1 WHERE id = {row}")
            done.append(time.perf_counter())
        except psycopg.Error as e:
            done.append(e)

lat = []
for i in range(1, n + 1):
    done = []
    t = threading.Thread(target=waiting, args=(i, done))
    t.start()
    rid = pending_id(i)
    time.sleep(0.05)  # let the session settle into its wait
    approve(rid)
    approved = time.perf_counter()
    t.join(90)
    if not done or not isinstance(done[0], float):
        raise SystemExit(f"wait {i} was not released: {done}")
    lat.append((done[0] - approved) * 1000)
print(f"wake-up across replicas: n={n} median={statistics.median(lat):.1f} ms p99={pct(lat, 99):.1f} ms max={max(lat):.1f} ms")

def xacts():
    return store.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                         (store_db,)).fetchone()[0]

def counted(seconds):
    store.execute("SELECT pg_stat_clear_snapshot()")
    a = xacts(); time.sleep(seconds); store.execute("SELECT pg_stat_clear_snapshot()")
    return xacts() - a

idle = counted(s)
threads = []
for j in range(w):
    row = n + 1 + j
    th = threading.Thread(target=waiting, args=(row, []), daemon=True)
    th.start(); threads.append(th)
    pending_id(row)
time.sleep(1)
busy = counted(s)
per = max(0, busy - idle) / (w * s)
print(f"store load: {w} sessions waiting {s}s: {busy} store transactions (idle baseline {idle}); "
      f"{per:.2f} per waiting session per second")
PY
