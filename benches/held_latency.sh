#!/usr/bin/env bash
# Latency that holding and enriching add to a held statement: N distinct
# UPDATEs on a protected target through airlock (each becomes a change
# request: classification, fingerprint, summary, risk, earlier-runs lookup,
# store insert + audit event), timed one by one from a psycopg client, next
# to the same number of plain reads through the same session. Prints median
# and p99 of both. Store: SQLite (default) or STORE_URL=postgres://...
#
#   bash benches/held_latency.sh            # N=1000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
PORT=${PROXY_PORT:-16532}
HTTP_PORT=${HTTP_PORT:-16580}
DB=airlock_held_bench
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/airlock-target}"
export PGSSLMODE=disable
cargo build --release -q -p airlock
AIRLOCK="$CARGO_TARGET_DIR/release/airlock"
bash tests/setup-postgres.sh
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -X -q -h 127.0.0.1 -U postgres -d "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, $N) g"
WORK=$(mktemp -d /tmp/airlock-held-bench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
VERIFIER=$(printf 'bench-pw' | "$AIRLOCK" passwd)
STORE=${STORE_URL:-sqlite://$WORK/state.db?mode=rwc}
cat >"$WORK/proxy.toml" <<TOML
[server]
postgres_listen = "127.0.0.1:$PORT"
http_listen = "127.0.0.1:$HTTP_PORT"
log_format = "json"
[store]
url = "$STORE"
[[families]]
name = "bench"
environments = ["dev", "prod"]
[[users]]
name = "bench"
groups = ["bench"]
scram_verifier = "$VERIFIER"
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
AIRLOCK_LOG=warn "$AIRLOCK" serve --config "$WORK/proxy.toml" 2>"$WORK/airlock.log" &
PID=$!
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
python3 - "$N" "host=127.0.0.1 port=$PORT user=bench password=bench-pw dbname=bench-prod sslmode=disable" <<'PY'
import sys, time, statistics, psycopg
n, conninfo = int(sys.argv[1]), sys.argv[2]
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
with psycopg.connect(conninfo, autocommit=True) as c:
    held, reads = [], []
    for i in range(1, n + 1):
        t = time.perf_counter()
        try:
            c.execute(f"UPDATE t SET v = 'x' WHERE id = {i}")
            raise SystemExit("statement was not held")
        except psycopg.Error as e:
            assert e.sqlstate == "AL001", e
        held.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        c.execute(f"SELECT v FROM t WHERE id = {i}").fetchall()
        reads.append((time.perf_counter() - t) * 1000)
print(f"held statements: n={n} median={statistics.median(held):.2f} ms p99={pct(held, 99):.2f} ms")
print(f"plain reads:     n={n} median={statistics.median(reads):.2f} ms p99={pct(reads, 99):.2f} ms")
PY
