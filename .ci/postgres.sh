#!/usr/bin/env bash
# Start a local PostgreSQL for the leaderboard store tests and print its SQLAlchemy URL.
#
#   export TURNGYM_TEST_POSTGRES_URL="$(bash .ci/postgres.sh | tail -n 1)"
#
# Idempotent: installs Debian's `postgresql` only when it is missing, starts the cluster only
# when it is down, and creates the `turngym` role and database only when they do not exist.
# Everything except the URL goes to stderr, so the URL is the last (and only) stdout line.
# Installing and starting need root; an already-running server with the role works without.
set -euo pipefail

ROLE=turngym
PASSWORD=turngym
DB=turngym
HOST=127.0.0.1

log() { echo "postgres.sh: $*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

can_login() {  # $1 = port; true when the role can log in with its password over TCP
  PGPASSWORD=$PASSWORD psql -h "$HOST" -p "$1" -U "$ROLE" -d "$DB" -tAc 'SELECT 1' \
    >/dev/null 2>&1
}

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "$1 needs root: rerun as root (sudo bash .ci/postgres.sh)"
    exit 1
  fi
}

# 1. Install the server when no cluster tooling is present.
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  need_root "installing postgresql"
  log "installing postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

# 2. Make sure a cluster exists (Debian creates `main` on install; containers may skip it).
if [ -z "$(pg_lsclusters -h)" ]; then
  need_root "creating a cluster"
  VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  log "creating cluster $VERSION/main"
  pg_createcluster "$VERSION" main >&2
fi
read -r VERSION CLUSTER PORT STATUS _ <<<"$(pg_lsclusters -h | head -n 1)"

# Fast path: already set up (works without root).
if [ "$STATUS" = online ] && can_login "$PORT"; then
  echo "postgresql+psycopg://$ROLE:$PASSWORD@$HOST:$PORT/$DB"
  exit 0
fi

# 3. Start the cluster and wait until it accepts connections.
if [ "$STATUS" != online ]; then
  need_root "starting the cluster"
  log "starting cluster $VERSION/$CLUSTER on port $PORT"
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$HOST" -p "$PORT" && break
  sleep 1
done
pg_isready -q -h "$HOST" -p "$PORT" || { log "server on port $PORT did not come up"; exit 1; }

# 4. Role and database (the role owns the database so tests can create and drop schemas).
need_root "creating the role and database"
psql_admin() { as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -tAc "$1"; }
if [ -z "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" ]; then
  log "creating role $ROLE"
  psql_admin "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >/dev/null
else
  # Reset the password in case the role predates this script.
  psql_admin "ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >/dev/null
fi
if [ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
  log "creating database $DB"
  as_postgres createdb -p "$PORT" -O "$ROLE" "$DB"
fi

# 5. Password auth over TCP on loopback. Debian's default pg_hba.conf already allows it; add
# a rule (and reload) only when the login still fails.
if ! can_login "$PORT"; then
  HBA=$(psql_admin "SHOW hba_file")
  log "adding a password rule for $ROLE on $HOST to $HBA"
  # Rules match top to bottom, so ours goes first.
  sed -i "1i host $DB $ROLE $HOST/32 scram-sha-256" "$HBA"
  psql_admin "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  can_login "$PORT" || { log "cannot log in as $ROLE over TCP; see $HBA"; exit 1; }
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@$HOST:$PORT/$DB"
