#!/usr/bin/env bash
# Makes sure MariaDB answers on 127.0.0.1:3306 as root with an empty password
# (the machine's service, as the tests expect it): installs the server if it
# is missing, starts it if it is not running, and lets root in over TCP.
set -euo pipefail

ping_tcp() { mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

if ping_tcp; then
    echo "setup-mariadb: ok (already running)"
    exit 0
fi
if [ ! -x /usr/sbin/mariadbd ]; then
    echo "setup-mariadb: installing mariadb-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client
fi
if ! mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
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
echo "setup-mariadb: ok ($(mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e 'SELECT VERSION()'))"
