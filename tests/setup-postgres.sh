#!/usr/bin/env bash
# Prepares the local PostgreSQL (and MariaDB) for airlock's end-to-end tests.
# Idempotent; run as root. Used by .ci/run and, once per test binary, by the
# Rust harness (tests/common/mod.rs). Safe to run concurrently (flock).
#
# What it guarantees afterwards:
#   - PostgreSQL is running and accepts connections on 127.0.0.1:5432;
#   - role airlock_scram (LOGIN SUPERUSER) with password 'airlock-scram-pw'
#     stored as SCRAM-SHA-256;
#   - pg_hba.conf has `host all airlock_scram 127.0.0.1/32 scram-sha-256`
#     before every other host line, so that role really authenticates with
#     SCRAM over TCP (everything else keeps the machine's trust setup);
#   - ssl = on (Debian's snakeoil certificate), so upstream TLS can be tested;
#   - max_prepared_transactions > 0, so two-phase commit can be tested;
#   - MariaDB is started if it is installed and not running.
set -euo pipefail

SCRAM_ROLE=airlock_scram
SCRAM_PW=airlock-scram-pw
HBA_LINE="host all ${SCRAM_ROLE} 127.0.0.1/32 scram-sha-256"

log() { echo "setup-postgres: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

exec 9>/tmp/airlock-setup-postgres.lock
flock -w 120 9 || die "could not take /tmp/airlock-setup-postgres.lock"

# --- start PostgreSQL --------------------------------------------------------
PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n1)
[ -n "$PG_VERSION" ] || die "no cluster under /etc/postgresql"

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1; }

if ! pg_ready; then
    log "starting PostgreSQL $PG_VERSION"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start 9>&- || true
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    pg_ready || die "PostgreSQL did not come up on 127.0.0.1:5432"
fi

# Superuser access over the local socket as the postgres OS user (peer or trust).
pg_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
pg_admin_val() { pg_admin -At -c "$1"; }

NEED_RELOAD=0

# --- TLS on the server -------------------------------------------------------
if [ "$(pg_admin_val 'SHOW ssl')" != "on" ]; then
    log "enabling ssl with the snakeoil certificate"
    CERT=/etc/ssl/certs/ssl-cert-snakeoil.pem
    KEY=/etc/ssl/private/ssl-cert-snakeoil.key
    if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
        if command -v make-ssl-cert >/dev/null 2>&1; then
            make-ssl-cert generate-default-snakeoil --force-overwrite
        else
            mkdir -p /etc/ssl/private
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
                -addext subjectAltName=DNS:localhost -keyout "$KEY" -out "$CERT" 2>/dev/null
        fi
    fi
    # postgres must be able to read the key (Debian: group ssl-cert, mode 640).
    if getent group ssl-cert >/dev/null; then
        id -nG postgres | grep -qw ssl-cert || usermod -aG ssl-cert postgres
        chgrp ssl-cert "$KEY"; chmod 640 "$KEY"; chmod 710 /etc/ssl/private; chgrp ssl-cert /etc/ssl/private
    else
        cp "$KEY" /var/lib/postgresql/airlock-snakeoil.key
        chown postgres: /var/lib/postgresql/airlock-snakeoil.key
        chmod 600 /var/lib/postgresql/airlock-snakeoil.key
        KEY=/var/lib/postgresql/airlock-snakeoil.key
    fi
    pg_admin -c "ALTER SYSTEM SET ssl_cert_file = '$CERT'" \
             -c "ALTER SYSTEM SET ssl_key_file = '$KEY'" \
             -c "ALTER SYSTEM SET ssl = on"
    NEED_RELOAD=1
fi

# --- two-phase commit (the disguised-write corpus proves PREPARE TRANSACTION) -
NEED_RESTART=0
if [ "$(pg_admin_val 'SHOW max_prepared_transactions')" = "0" ]; then
    log "enabling prepared transactions (max_prepared_transactions = 16; needs a restart)"
    pg_admin -c "ALTER SYSTEM SET max_prepared_transactions = 16"
    NEED_RESTART=1
fi

# --- room for the connection-cap test (100 sessions of one user through
# airlock, tests/limits.rs) next to the other tests running at the same time
if [ "$(pg_admin_val 'SHOW max_connections')" -lt 400 ]; then
    log "raising max_connections to 400 (needs a restart)"
    pg_admin -c "ALTER SYSTEM SET max_connections = 400"
    NEED_RESTART=1
fi

# --- the SCRAM role ----------------------------------------------------------
if [ "$(pg_admin_val "SELECT count(*) FROM pg_roles WHERE rolname = '${SCRAM_ROLE}'")" = "0" ]; then
    log "creating role ${SCRAM_ROLE}"
    pg_admin -c "CREATE ROLE ${SCRAM_ROLE} LOGIN SUPERUSER"
fi
STORED=$(pg_admin_val "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '${SCRAM_ROLE}'")
if [[ "$STORED" != SCRAM-SHA-256\$* ]] || \
   ! PGPASSWORD="$SCRAM_PW" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -U "$SCRAM_ROLE" -d postgres -At -c 'select 1' >/dev/null 2>&1; then
    log "setting the SCRAM password of ${SCRAM_ROLE}"
    pg_admin -c "ALTER ROLE ${SCRAM_ROLE} LOGIN SUPERUSER" \
             -c "SET password_encryption = 'scram-sha-256'" \
             -c "ALTER ROLE ${SCRAM_ROLE} PASSWORD '${SCRAM_PW}'"
fi

# --- pg_hba.conf: the SCRAM line before every other host line ----------------
HBA=$(pg_admin_val 'SHOW hba_file')
[ -f "$HBA" ] || die "hba_file $HBA not found"
first_host_line() { grep -nE '^[[:space:]]*host(ssl|nossl|gssenc|nogssenc)?[[:space:]]' "$HBA" | head -n1 | cut -d: -f2-; }
if [ "$(first_host_line | tr -s ' \t' ' ')" != "$HBA_LINE" ]; then
    log "adding '$HBA_LINE' to $HBA"
    tmp=$(mktemp)
    # Drop any earlier copy of the line, then insert it before the first host line
    # (or append it when there is none).
    grep -vxF "$HBA_LINE" "$HBA" | awk -v line="$HBA_LINE" '
        !done && $0 ~ /^[ \t]*host(ssl|nossl|gssenc|nogssenc)?[ \t]/ { print line; done = 1 }
        { print }
        END { if (!done) print line }' >"$tmp"
    cat "$tmp" >"$HBA"   # keep owner and mode of the original file
    rm -f "$tmp"
    NEED_RELOAD=1
fi

if [ "$NEED_RESTART" = 1 ]; then
    log "restarting PostgreSQL"
    # 9>&-: the server must not inherit (and keep) this script's lock.
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main restart 9>&-
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    pg_ready || die "PostgreSQL did not come back on 127.0.0.1:5432"
elif [ "$NEED_RELOAD" = 1 ]; then
    log "reloading PostgreSQL"
    pg_admin -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1
fi

# --- verify ------------------------------------------------------------------
[ "$(pg_admin_val 'SHOW ssl')" = "on" ] || die "ssl is still off (see the server log)"
errs=$(pg_admin_val "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
[ "$errs" = "0" ] || die "pg_hba.conf has errors: $(pg_admin_val 'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL')"

out=$(PGPASSWORD="$SCRAM_PW" PGCONNECT_TIMEOUT=5 psql -X -h 127.0.0.1 -U "$SCRAM_ROLE" -d postgres -At -c 'select 1' 2>&1) \
    || die "cannot log in as ${SCRAM_ROLE} with its password: $out"
[ "$out" = 1 ] || die "unexpected answer from select 1: $out"
if out=$(PGPASSWORD="wrong-${SCRAM_PW}" PGCONNECT_TIMEOUT=5 psql -X -h 127.0.0.1 -U "$SCRAM_ROLE" -d postgres -At -c 'select 1' 2>&1); then
    die "a wrong password was accepted for ${SCRAM_ROLE}: pg_hba.conf does not use scram-sha-256 for it"
fi
case "$out" in
    *"password authentication failed"*) ;;
    *) die "wrong password did not fail with a password error: $out" ;;
esac
ssl_out=$(PGPASSWORD="$SCRAM_PW" PGSSLMODE=require PGCONNECT_TIMEOUT=5 psql -X -h 127.0.0.1 -U "$SCRAM_ROLE" -d postgres -At \
    -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>&1) || die "TLS connection failed: $ssl_out"
[ "$ssl_out" = t ] || die "TLS connection is not encrypted: $ssl_out"

# --- MariaDB (not used by the Postgres tests yet) ----------------------------
if [ -x /usr/sbin/mariadbd ]; then
    if ! (mariadb-admin --protocol=tcp -h 127.0.0.1 -uroot ping >/dev/null 2>&1 || mysqladmin ping >/dev/null 2>&1); then
        log "starting MariaDB"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd 9>&- || log "WARNING: MariaDB did not start"
    fi
fi

log "ok (PostgreSQL $PG_VERSION, role ${SCRAM_ROLE} with SCRAM, ssl on)"
