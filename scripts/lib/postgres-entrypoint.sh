#!/bin/bash
# The entrypoint of prevue/postgres:bookworm (scripts/setup-images.sh):
# PostgreSQL 15 from Debian's packages, started the way the official image
# starts it, for the compose tests. POSTGRES_USER (default postgres) with
# POSTGRES_PASSWORD; connections over the local socket are trusted (as in
# the official image), others need the password. The cluster is made on the
# first start, in PGDATA (default /var/lib/postgresql/data, a volume).
set -euo pipefail
data=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
mkdir -p "$data" /run/postgresql
chown postgres:postgres "$data" /run/postgresql
chmod 0700 "$data"
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)

if [[ ! -s $data/PG_VERSION ]]; then
  if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD (the password of $user for connections from other containers)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  "${as_postgres[@]}" initdb --pgdata="$data" --username="$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
fi
exec "${as_postgres[@]}" postgres -D "$data" -c listen_addresses='*'
