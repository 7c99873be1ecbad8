#!/usr/bin/env bash
# sysbench oltp_point_select and oltp_read_only against the local MariaDB
# directly and through airlock's MySQL listener (an unprotected target: the
# relay; a protected one: every statement judged by the MySQL gate),
# interleaved with the order rotated each round so drift affects all paths
# alike. Prints every run's transactions per second and, per test and
# path, the median and the min-max of the per-round ratios to direct.
#
#   bash benches/sysbench_mysql.sh                 # DURATION=10 ROUNDS=3
#   DURATION=20 ROUNDS=5 THREADS=8 bash benches/sysbench_mysql.sh
#
# ProxySQL, the reference hop the MySQL issue names, is in neither Debian's
# archive nor PyPI here, so no third-party proxy runs beside airlock.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-8}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
TESTS=${TESTS:-"oltp_point_select oltp_read_only"}
MYSQL_PORT=${MYSQL_PORT:-13307}
PG_PORT=${PG_PORT:-16435}
HTTP_PORT=${HTTP_PORT:-16481}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/airlock-target}"
log() { echo "sysbench_mysql.sh: $*" >&2; }

command -v sysbench >/dev/null || { log "installing sysbench"; apt-get install -y -qq sysbench >/dev/null; }
bash tests/setup-mariadb.sh >&2
log "building airlock (release)"
cargo build --release -q -p airlock
AIRLOCK="$CARGO_TARGET_DIR/release/airlock"

mysql --no-defaults --protocol=tcp -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS sbtest"
if [ "$(mysql --no-defaults --protocol=tcp -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'sbtest'")" != "$TABLES" ]; then
    log "preparing sbtest ($TABLES tables x $TABLE_SIZE rows)"
    sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
        --mysql-db=sbtest --tables="$TABLES" --table-size="$TABLE_SIZE" cleanup >/dev/null 2>&1 || true
    sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
        --mysql-db=sbtest --tables="$TABLES" --table-size="$TABLE_SIZE" prepare >/dev/null
fi

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
verifiers=$(printf 'bench-pw' | "$AIRLOCK" passwd)
cat > "$dir/proxy.toml" <<TOML
[server]
postgres_listen = "127.0.0.1:$PG_PORT"
mysql_listen = "127.0.0.1:$MYSQL_PORT"
http_listen = "127.0.0.1:$HTTP_PORT"

[store]
url = "sqlite://$dir/state.db?mode=rwc"

[[users]]
name = "bench"
groups = ["bench"]
scram_verifier = "$(echo "$verifiers" | head -1)"
$(echo "$verifiers" | grep '^mysql_')

[[targets]]
name = "sbtest"
engine = "mariadb"
allowed_groups = ["bench"]
upstream = { host = "127.0.0.1", port = 3306, database = "sbtest" }
write_credentials = { user = "root" }

[[targets]]
name = "sbtest-prod"
engine = "mariadb"
protected = true
allowed_groups = ["bench"]
upstream = { host = "127.0.0.1", port = 3306, database = "sbtest" }
read_credentials = { user = "root" }
write_credentials = { user = "root" }
TOML
RUST_LOG=warn "$AIRLOCK" serve --config "$dir/proxy.toml" 2>"$dir/airlock.log" &
pid=$!
for _ in $(seq 1 100); do
    mysql --no-defaults --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -ubench -pbench-pw sbtest -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
done

run() { # test port user password db -> tps
    sysbench "$1" --mysql-host=127.0.0.1 --mysql-port="$2" --mysql-user="$3" --mysql-password="$4" \
        --mysql-db="$5" --tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$THREADS" \
        --time="$DURATION" --report-interval=0 run 2>&1 \
        | awk '/transactions:/ { gsub(/[()]/, "", $3); print $3 }'
}

declare -A tps
paths=(direct airlock-plain airlock-protected)
for t in $TESTS; do
    for r in $(seq 1 "$ROUNDS"); do
        # Rotate the order each round.
        order=("${paths[@]:$(( (r - 1) % 3 ))}" "${paths[@]:0:$(( (r - 1) % 3 ))}")
        for p in "${order[@]}"; do
            case $p in
                direct) v=$(run "$t" 3306 root "" sbtest) ;;
                airlock-plain) v=$(run "$t" "$MYSQL_PORT" bench bench-pw sbtest) ;;
                airlock-protected) v=$(run "$t" "$MYSQL_PORT" bench bench-pw sbtest-prod) ;;
            esac
            tps[$t,$p,$r]=${v:-0}
            echo "$t round $r $p: ${v:-0} tps"
        done
    done
done

echo
printf '%-18s %-18s %10s %18s\n' test path "ratio (median)" "min-max"
for t in $TESTS; do
    for p in airlock-plain airlock-protected; do
        ratios=()
        for r in $(seq 1 "$ROUNDS"); do
            ratios+=("$(awk -v a="${tps[$t,$p,$r]}" -v b="${tps[$t,direct,$r]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')")
        done
        sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
        median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')
        printf '%-18s %-18s %10s %18s\n' "$t" "$p" "$median" "$(echo "$sorted" | head -1)-$(echo "$sorted" | tail -1)"
    done
done
