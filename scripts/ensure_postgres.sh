#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl) exist, so the tests can start a throwaway
# server of their own (tests/postgres_server.py). Idempotent. When they are missing and we are root with
# apt-get, install Debian's `postgresql` package -- with postgresql-common's automatic "main" cluster
# disabled first, so no system-wide server is created or started. Never fails: when installation is
# impossible it says the PostgreSQL tests will be skipped and exits 0.
set -uo pipefail

have_server() {
    { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 && return 0
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "${dir}/initdb" ] && [ -x "${dir}/pg_ctl" ] && return 0
    done
    return 1
}

skip() {
    echo "ensure_postgres: $1; the PostgreSQL tests will be skipped" >&2
    exit 0
}

have_server && exit 0
[ "$(id -u)" -eq 0 ] || skip "PostgreSQL server binaries missing and not root"
command -v apt-get >/dev/null 2>&1 || skip "PostgreSQL server binaries missing and no apt-get"

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
echo "ensure_postgres: installing postgresql (apt-get)" >&2
apt-get update -qq >/dev/null || skip "apt-get update failed"
apt_install postgresql-common || skip "apt-get install postgresql-common failed"
conf=/etc/postgresql-common/createcluster.conf
if [ -f "${conf}" ]; then
    sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$/\1 = false/' "${conf}"
fi
apt_install postgresql || skip "apt-get install postgresql failed"
have_server || skip "postgresql installed but initdb/pg_ctl not found"
exit 0
