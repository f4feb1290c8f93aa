#!/usr/bin/env bash
# Prepare a real PostgreSQL server for the history tests (tests/e2e/test_history_db.py) from
# Debian's `postgresql` package: install it when missing (root + apt), create and start a
# cluster when none runs, and create the tests' role and database. Idempotent: a second run
# only checks. Prints the tests' URL on stdout (its only output there; messages go to
# stderr); scripts/test.sh exports it as VLLM_PROFILE_TEST_POSTGRES_URL. Prints nothing when
# this is not a Debian root shell and no PostgreSQL is installed (the tests then skip, saying so).
set -euo pipefail

ROLE=vllm_profile_test
PASSWORD=vllm_profile_test  # a throw-away role on 127.0.0.1 for the test suite only
DB=vllm_profile_test

log() { echo "setup-postgres: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL is missing and this is not a Debian root shell; the PostgreSQL history tests will skip"
        exit 0
    fi
    log "installing postgresql (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
fi
if [ "$(id -u)" != "0" ]; then
    log "not root: cannot start a cluster or create roles; the PostgreSQL history tests will skip"
    exit 0
fi

# The first cluster (pg_lsclusters -h: version name port status owner datadir logfile).
read -r version name port status _ < <(pg_lsclusters -h | head -n 1) || true
if [ -z "${version:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "creating cluster $version/main"
    pg_createcluster "$version" main >&2
    read -r version name port status _ < <(pg_lsclusters -h | head -n 1)
fi
if [[ "$status" != online* ]]; then
    log "starting cluster $version/$name on port $port"
    pg_ctlcluster "$version" "$name" start >&2
fi
for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$port" >&2

as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
if [ "$(as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    log "creating role $ROLE"
    as_postgres -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'"
fi
if [ "$(as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    log "creating database $DB"
    as_postgres -c "CREATE DATABASE $DB OWNER $ROLE"
fi
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
