#!/usr/bin/env bash
# Makes sure MariaDB answers on 127.0.0.1:3306 as root with an empty password
# (the machine's service, as the tests expect it): installs the server if it
# is missing, starts it if it is not running, and lets root in over TCP.
set -euo pipefail

ping_tcp() { mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

if ping_tcp; then
    echo "setup-mariadb: already running"
fi
if ! ping_tcp && [ ! -x /usr/sbin/mariadbd ]; then
    echo "setup-mariadb: installing mariadb-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client
fi
if ! ping_tcp && ! mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
    echo "setup-mariadb: starting mariadbd"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
        mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1 && break
        sleep 0.5
    done
fi
if ! ping_tcp; then
    # A fresh Debian install lets root in by unix socket only.
    echo "setup-mariadb: letting root in over TCP with an empty password"
    mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;"
fi
ping_tcp || { echo "setup-mariadb: MariaDB does not answer on 127.0.0.1:3306" >&2; exit 1; }

# TLS on the server, so upstream TLS (tls = "verify-full") is exercised:
# a throwaway CA and a certificate for 127.0.0.1 / localhost.
SSL_DIR=/etc/mysql/airlock-ssl
if [ "$(mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e "SELECT @@have_ssl")" != "YES" ]; then
    echo "setup-mariadb: enabling TLS (certificates in $SSL_DIR; needs a restart)"
    mkdir -p "$SSL_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=airlock test MariaDB CA" -keyout "$SSL_DIR/ca-key.pem" -out "$SSL_DIR/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
        -keyout "$SSL_DIR/server-key.pem" -out "$SSL_DIR/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$SSL_DIR/san.ext"
    openssl x509 -req -in "$SSL_DIR/server.csr" -CA "$SSL_DIR/ca.pem" -CAkey "$SSL_DIR/ca-key.pem" \
        -CAcreateserial -days 3650 -extfile "$SSL_DIR/san.ext" -out "$SSL_DIR/server-cert.pem" 2>/dev/null
    chown -R mysql:mysql "$SSL_DIR" 2>/dev/null || true
    chmod 644 "$SSL_DIR"/*.pem
    tls_cnf="[mariadbd]
# airlock tests: TLS
ssl_ca = $SSL_DIR/ca.pem
ssl_cert = $SSL_DIR/server-cert.pem
ssl_key = $SSL_DIR/server-key.pem"
    if [ -d /etc/mysql/mariadb.conf.d ]; then
        printf '%s\n' "$tls_cnf" > /etc/mysql/mariadb.conf.d/99-airlock-tls.cnf
    elif ! grep -q "airlock tests: TLS" /etc/mysql/my.cnf; then
        printf '\n%s\n' "$tls_cnf" >> /etc/mysql/my.cnf
    fi
    mariadb-admin --protocol=tcp -h127.0.0.1 -uroot shutdown
    for _ in $(seq 1 120); do pgrep -x mariadbd >/dev/null || break; sleep 0.5; done
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do ping_tcp && break; sleep 0.5; done
    ping_tcp || { echo "setup-mariadb: MariaDB did not come back after enabling TLS" >&2; exit 1; }
fi
echo "setup-mariadb: ok ($(mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e 'SELECT VERSION()'))"
