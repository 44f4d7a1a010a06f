# Shared settings of the loopback cluster scripts (sourced, not run). Everything lives under CLUSTER_DIR and
# listens on 127.0.0.1 only; the shared test cluster on 5432 is never touched.
set -euo pipefail

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
VECTOR_CONTROL="/usr/share/postgresql/${PG_VERSION}/extension/vector.control"
CLUSTER_DIR="${FUNDUS_CLUSTER_DIR:-/var/lib/fundus-cluster}"
RUN_DIR="${CLUSTER_DIR}/run"
LOG_DIR="${CLUSTER_DIR}/log"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# PostgreSQL nodes: name:port. The primary takes writes; replicas stream from it (pg_basebackup -R); shards are
# independent clusters that hold hash partitions of the searched table (shard.sh).
PRIMARY_PORT="${FUNDUS_PRIMARY_PORT:-5442}"
REPLICA_PORTS=(${FUNDUS_REPLICA_PORTS:-5443 5444})
SHARD_PORTS=(${FUNDUS_SHARD_PORTS:-5445 5446})
API_PORTS=(${FUNDUS_API_PORTS:-4101 4102})
PROXY_PORT="${FUNDUS_PROXY_PORT:-4100}"
PROXY_STATS_PORT="${FUNDUS_PROXY_STATS_PORT:-4109}"

DB_NAME=fundus
DB_ROLE=fundus
DB_PASSWORD=fundus
REPLICATION_ROLE=replicator
REPLICATION_PASSWORD=replicator

log() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "run as root (the PostgreSQL nodes run as the postgres user)"
as_postgres() { runuser -u postgres -- "$@"; }

node_dir() { echo "${CLUSTER_DIR}/pg-$1"; }
pg_running() { [[ -f "$(node_dir "$1")/postmaster.pid" ]] && as_postgres "${PG_BIN}/pg_ctl" -D "$(node_dir "$1")" status >/dev/null 2>&1; }
psql_node() { local port=$1; shift; as_postgres env PGOPTIONS="-c client_min_messages=warning" "${PG_BIN}/psql" -h "${RUN_DIR}" -p "${port}" -X -q -v ON_ERROR_STOP=1 "$@"; }
url_for() { echo "postgresql://${DB_ROLE}:${DB_PASSWORD}@127.0.0.1:$1/${2:-${DB_NAME}}"; }

require_postgres() {
  [[ -x "${PG_BIN}/postgres" ]] || die "PostgreSQL ${PG_VERSION} is not installed: run scripts/ci-setup.sh first"
  [[ -f "${VECTOR_CONTROL}" ]] || die "pgvector is not installed for PostgreSQL ${PG_VERSION}: run scripts/ci-setup.sh first (it builds it)"
  install -d -o postgres -g postgres "${CLUSTER_DIR}" "${RUN_DIR}" "${LOG_DIR}"
}

# A fresh primary-style node (initdb, loopback only, password auth, replication allowed), started.
init_node() {
  local port=$1 dir
  dir="$(node_dir "${port}")"
  if [[ ! -f "${dir}/PG_VERSION" ]]; then
    log "initdb node ${port}"
    as_postgres "${PG_BIN}/initdb" -D "${dir}" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "${dir}/postgresql.conf" <<CONF
# fundus cluster (scripts/cluster): loopback only, small, replication on
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${RUN_DIR}'
shared_buffers = 256MB
max_connections = 200
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = 2GB
hot_standby = on
hot_standby_feedback = on
logging_collector = off
CONF
    cat >> "${dir}/pg_hba.conf" <<CONF
host replication ${REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256
CONF
  fi
  start_node "${port}"
}

start_node() {
  local port=$1
  if pg_running "${port}"; then log "node ${port} already running"; return; fi
  log "starting node ${port}"
  as_postgres "${PG_BIN}/pg_ctl" -D "$(node_dir "${port}")" -l "${LOG_DIR}/pg-${port}.log" -w -t 60 start >/dev/null
}

# Role, database and extensions on a writable node; idempotent.
prepare_database() {
  local port=$1
  psql_node "${port}" -d postgres <<SQL
SELECT format('CREATE ROLE ${DB_ROLE} LOGIN CREATEDB PASSWORD %L', '${DB_PASSWORD}') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${DB_ROLE}') \gexec
SELECT format('CREATE ROLE ${REPLICATION_ROLE} LOGIN REPLICATION PASSWORD %L', '${REPLICATION_PASSWORD}') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${REPLICATION_ROLE}') \gexec
SELECT 'CREATE DATABASE ${DB_NAME} OWNER ${DB_ROLE}' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}') \gexec
SQL
  psql_node "${port}" -d "${DB_NAME}" -c 'CREATE EXTENSION IF NOT EXISTS vector'
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
