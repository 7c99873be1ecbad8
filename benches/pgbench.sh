#!/usr/bin/env bash
# pgbench -S throughput directly against PostgreSQL and through airlock, in
# the simple, extended and prepared query modes, interleaved
# (direct, proxy, direct, proxy, ...) so that drift affects both alike.
# Prints the tps of every run and, per mode, the median of the per-round
# proxy/direct ratios.
#
#   bash benches/pgbench.sh                      # DURATION=10 ROUNDS=3
#   DURATION=30 ROUNDS=5 bash benches/pgbench.sh
#
# Environment: DURATION (s per run), ROUNDS, CLIENTS (8), THREADS (2),
# SCALE (10), REINIT=1 to rebuild the data, PROXY_PORT / HTTP_PORT,
# WORKER_THREADS (airlock's server.worker_threads; 0 = one per core),
# PGBOUNCER=1 to run pgbouncer (session pooling, if installed) in the same
# interleave as a reference for what any extra hop costs on this machine,
# MODES (default "simple extended prepared"),
# BASELINE=<path of another airlock binary> (an earlier build, for example
# of the commit a ratio was measured at) to run it too, same config, on
# BASELINE_PORT, in the same interleave: the fair comparison on a machine
# whose direct throughput drifts from day to day,
# TARGET=dev (a family target: the recording relay) or TARGET=prod (a
# protected target: every statement judged by the gate, with the
# classification cache, Postgres's parser on a miss and the catalog check),
# CARGO_TARGET_DIR (default /root/.cache/airlock-target).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
PROXY_PORT=${PROXY_PORT:-16432}
WORKER_THREADS=${WORKER_THREADS:-0}
PGBOUNCER=${PGBOUNCER:-0}
TARGET=${TARGET:-dev}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-16433}
BASELINE=${BASELINE:-}
BASELINE_PORT=${BASELINE_PORT:-16434}
HTTP_PORT=${HTTP_PORT:-16480}
DB=airlock_bench
UPSTREAM_USER=airlock_scram
export AIRLOCK_BENCH_UPSTREAM_PW=airlock-scram-pw
BENCH_USER=bench
BENCH_PW=bench-pw
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/airlock-target}"
# Same transport on both paths: no TLS (PostgreSQL has ssl on, libpq would prefer it).
export PGSSLMODE=disable PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD

log() { echo "pgbench.sh: $*" >&2; }

log "building airlock (release)"
cargo build --release -q -p airlock
AIRLOCK="$CARGO_TARGET_DIR/release/airlock"

bash tests/setup-postgres.sh

admin() { psql -X -q -At -h 127.0.0.1 -U postgres -d postgres "$@"; }
if [ "$(admin -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
    admin -c "CREATE DATABASE $DB OWNER $UPSTREAM_USER"
    REINIT=1
fi
rows=0
if [ "$(psql -X -q -At -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT to_regclass('pgbench_accounts') IS NOT NULL")" = t ]; then
    rows=$(psql -X -q -At -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT count(*) FROM pgbench_accounts")
fi
if [ "${REINIT:-0}" = 1 ] || [ "$rows" != "$((SCALE * 100000))" ]; then
    log "initialising $DB with pgbench -i -s $SCALE"
    PGPASSWORD=$AIRLOCK_BENCH_UPSTREAM_PW pgbench -q -i -s "$SCALE" -h 127.0.0.1 -U "$UPSTREAM_USER" "$DB" >/dev/null 2>&1
fi

WORK=$(mktemp -d /tmp/airlock-bench.XXXXXX)
AIRLOCK_PID=
cleanup() {
    local rc=$?
    if [ "$rc" != 0 ] && [ -s "$WORK/airlock.log" ]; then
        log "airlock log:"; tail -n 50 "$WORK/airlock.log" >&2
    fi
    if [ -n "$AIRLOCK_PID" ]; then kill "$AIRLOCK_PID" 2>/dev/null || true; wait "$AIRLOCK_PID" 2>/dev/null || true; fi
    if [ -n "${BASELINE_PID:-}" ]; then kill "$BASELINE_PID" 2>/dev/null || true; wait "$BASELINE_PID" 2>/dev/null || true; fi
    if [ -n "${PGBOUNCER_PID:-}" ]; then pkill -f "pgbouncer $WORK/pgbouncer.ini" 2>/dev/null || true; wait "$PGBOUNCER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

VERIFIER=$(printf '%s\n' "$BENCH_PW" | "$AIRLOCK" passwd | grep -m1 '^SCRAM-SHA-256\$')
cat >"$WORK/proxy.toml" <<TOML
[server]
postgres_listen = "127.0.0.1:$PROXY_PORT"
http_listen = "127.0.0.1:$HTTP_PORT"
log_format = "human"
worker_threads = $WORKER_THREADS

[[families]]
name = "bench"
environments = ["dev"]

[[users]]
name = "$BENCH_USER"
team = "bench"
groups = ["bench"]
scram_verifier = "$VERIFIER"

[[targets]]
name = "bench-dev"
family = "bench"
environment = "dev"
protected = false
allowed_groups = ["bench"]

[targets.upstream]
host = "127.0.0.1"
port = 5432
database = "$DB"
tls = "disable"

[targets.write_credentials]
user = "$UPSTREAM_USER"
password_env = "AIRLOCK_BENCH_UPSTREAM_PW"

[[targets]]
name = "bench-prod"
environment = "prod"
protected = true
allowed_groups = ["bench"]

[targets.upstream]
host = "127.0.0.1"
port = 5432
database = "$DB"
tls = "disable"

[targets.read_credentials]
user = "$UPSTREAM_USER"
password_env = "AIRLOCK_BENCH_UPSTREAM_PW"

[targets.write_credentials]
user = "$UPSTREAM_USER"
password_env = "AIRLOCK_BENCH_UPSTREAM_PW"
TOML

AIRLOCK_LOG=${AIRLOCK_LOG:-warn} "$AIRLOCK" serve --config "$WORK/proxy.toml" 2>"$WORK/airlock.log" &
AIRLOCK_PID=$!
for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p "$PROXY_PORT" && break
    kill -0 "$AIRLOCK_PID" 2>/dev/null || { cat "$WORK/airlock.log" >&2; log "airlock exited"; exit 1; }
    sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$PROXY_PORT" || { cat "$WORK/airlock.log" >&2; log "airlock is not listening"; exit 1; }

BASELINE_PID=
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { log "BASELINE=$BASELINE is not an executable"; exit 1; }
    sed -e "s/127.0.0.1:$PROXY_PORT/127.0.0.1:$BASELINE_PORT/" -e "s/127.0.0.1:$HTTP_PORT/127.0.0.1:$((HTTP_PORT + 1))/" \
        "$WORK/proxy.toml" >"$WORK/baseline.toml"
    # Its own working directory: its own default state file.
    (cd "$WORK" && AIRLOCK_LOG=${AIRLOCK_LOG:-warn} exec "$BASELINE" serve --config "$WORK/baseline.toml") 2>"$WORK/baseline.log" &
    BASELINE_PID=$!
    for _ in $(seq 1 100); do
        pg_isready -q -h 127.0.0.1 -p "$BASELINE_PORT" && break
        kill -0 "$BASELINE_PID" 2>/dev/null || { cat "$WORK/baseline.log" >&2; log "the baseline airlock exited"; exit 1; }
        sleep 0.1
    done
fi

PGBOUNCER_PID=
if [ "$PGBOUNCER" = 1 ]; then
    PGB=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    [ -x "$PGB" ] || { log "PGBOUNCER=1 but pgbouncer is not installed (apt-get install pgbouncer)"; exit 1; }
    chmod 755 "$WORK"
    cat >"$WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=127.0.0.1 port=5432 dbname=$DB user=$UPSTREAM_USER password=$AIRLOCK_BENCH_UPSTREAM_PW

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = any
pool_mode = session
max_client_conn = 100
default_pool_size = $((CLIENTS + 2))
logfile = $WORK/pgbouncer.log
INI
    chown -R postgres "$WORK"
    su postgres -s /bin/sh -c "exec $PGB $WORK/pgbouncer.ini" 2>>"$WORK/pgbouncer.err" &
    PGBOUNCER_PID=$!
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$PGBOUNCER_PORT" && break; sleep 0.1; done
fi

# run_one MODE WHERE -> prints tps
run_one() {
    local mode=$1 where=$2 out tps
    if [ "$where" = direct ]; then
        out=$(PGPASSWORD=$AIRLOCK_BENCH_UPSTREAM_PW pgbench -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
            -h 127.0.0.1 -p 5432 -U "$UPSTREAM_USER" "$DB" 2>&1) || { echo "$out" >&2; return 1; }
    elif [ "$where" = baseline ]; then
        out=$(PGPASSWORD=$BENCH_PW pgbench -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
            -h 127.0.0.1 -p "$BASELINE_PORT" -U "$BENCH_USER" "bench-$TARGET" 2>&1) || { echo "$out" >&2; return 1; }
    elif [ "$where" = pgbouncer ]; then
        out=$(pgbench -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
            -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U "$UPSTREAM_USER" "$DB" 2>&1) || { echo "$out" >&2; return 1; }
    else
        out=$(PGPASSWORD=$BENCH_PW pgbench -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
            -h 127.0.0.1 -p "$PROXY_PORT" -U "$BENCH_USER" "bench-$TARGET" 2>&1) || { echo "$out" >&2; return 1; }
    fi
    if ! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
        echo "$out" >&2; log "failed transactions in $mode/$where"; return 1
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n1)
    [ -n "$tps" ] || { echo "$out" >&2; return 1; }
    echo "$tps"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "pgbench -S, $CLIENTS clients, $THREADS threads, ${DURATION}s per run, $ROUNDS rounds, scale $SCALE, airlock target bench-$TARGET"
printf '%-9s %-5s %12s %12s %8s\n' mode round direct_tps proxy_tps ratio
summary=()
for mode in ${MODES:-simple extended prepared}; do
    ratios=()
    bratios=()
    aratios=()
    directs=()
    proxies=()
    for round in $(seq 1 "$ROUNDS"); do
        d=$(run_one "$mode" direct)
        p=$(run_one "$mode" proxy)
        r=$(awk -v p="$p" -v d="$d" 'BEGIN { printf "%.3f", p / d }')
        if [ "$PGBOUNCER" = 1 ]; then
            b=$(run_one "$mode" pgbouncer)
            br=$(awk -v b="$b" -v d="$d" 'BEGIN { printf "%.3f", b / d }')
            printf '%-9s %-5s %12.1f %12.1f %8s   pgbouncer %10.1f %8s\n' "$mode" "$round" "$d" "$p" "$r" "$b" "$br"
            bratios+=("$br")
        else
            printf '%-9s %-5s %12.1f %12.1f %8s\n' "$mode" "$round" "$d" "$p" "$r"
        fi
        if [ -n "$BASELINE" ]; then
            a=$(run_one "$mode" baseline)
            ar=$(awk -v a="$a" -v d="$d" 'BEGIN { printf "%.3f", a / d }')
            printf '%-9s %-5s %12s %12s %8s   baseline %11.1f %8s\n' "" "" "" "" "" "$a" "$ar"
            aratios+=("$ar")
        fi
        ratios+=("$r"); directs+=("$d"); proxies+=("$p")
    done
    md=$(printf '%s\n' "${directs[@]}" | median)
    mp=$(printf '%s\n' "${proxies[@]}" | median)
    mr=$(printf '%s\n' "${ratios[@]}" | median)
    summary+=("$(printf '%-9s median direct %10.1f tps   median proxy %10.1f tps   median ratio proxy/direct %s' "$mode" "$md" "$mp" "$mr")")
    if [ "$PGBOUNCER" = 1 ]; then
        summary+=("$(printf '%-9s median ratio pgbouncer/direct %s' "$mode" "$(printf '%s\n' "${bratios[@]}" | median)")")
    fi
    if [ -n "$BASELINE" ]; then
        summary+=("$(printf '%-9s median ratio baseline/direct %s' "$mode" "$(printf '%s\n' "${aratios[@]}" | median)")")
    fi
done
echo
printf '%s\n' "${summary[@]}"
