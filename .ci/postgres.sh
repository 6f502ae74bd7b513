#!/usr/bin/env bash
# Install (if missing) and start a PostgreSQL server on loopback for the distributed-sweep tests, with a
# database `ablate` owned by user `ablate`; prints the URL the tests read from ABLATE_TEST_POSTGRES_URL.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
if command -v pg_lsclusters >/dev/null && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
    read -r version cluster _ < <(pg_lsclusters -h | head -n 1)
    pg_ctlcluster "$version" "$cluster" start >&2 2>/dev/null || true   # already running is fine
else
    version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    pg_createcluster "$version" main --start >&2
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='ablate'\" | grep -q 1 || psql -q -c \"CREATE USER ablate WITH PASSWORD 'ablate'\"" >&2
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='ablate'\" | grep -q 1 || psql -q -c \"CREATE DATABASE ablate OWNER ablate\"" >&2
echo "postgresql://ablate:ablate@127.0.0.1:5432/ablate"
