#!/usr/bin/env bash
# Starts the API as several processes over PostgreSQL streaming replication, on loopback:
#   PostgreSQL 15 + pgvector primary on 5442 (writes), streaming replicas on 5443 and 5444 (pg_basebackup -R,
#   one physical replication slot each; searches and reads), two API processes on 4101 and 4102 (writes on the
#   primary, reads on the replicas: DATABASE_REPLICA_URLS), HAProxy on 4100 in front, checking GET /healthz on
#   each API every second; requests are spread by a hash of the Authorization header, so one credential stays
#   on one API process while it is up (its read-your-writes position lives there, ARCHITECTURE.md).
# Idempotent: what already runs is left running. Needs root, `npm run build`, PostgreSQL 15 with pgvector
# (scripts/ci-setup.sh); installs haproxy from Debian when missing. Stop with scripts/cluster/stop.sh.
# Ports and the directory (default /var/lib/fundus-cluster) are set in lib.sh and can be overridden there by
# FUNDUS_* variables. The shared cluster on 5432 is never touched.
# --databases-only: the primary and replicas alone (about 15 s; what test/api/read-replicas.test.mjs needs, e.g.
# in CI), without the API processes (the first seeds the demo cohort: minutes) and HAProxy.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

databases_only=0
[[ "${1:-}" == "--databases-only" ]] && databases_only=1

require_postgres
if [[ ${databases_only} -eq 0 ]] && ! command -v haproxy >/dev/null; then
  log "installing haproxy (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null; }
fi
[[ ${databases_only} -eq 1 || -f "${REPO_ROOT}/apps/api/dist/index.js" ]] || die "apps/api/dist/index.js is missing: run npm run build first"

# --- PostgreSQL primary -------------------------------------------------------------------------------------
init_node "${PRIMARY_PORT}"
prepare_database "${PRIMARY_PORT}"

# An empty template for the test suites (test/api/read-replicas.test.mjs copies it per suite, as the shared
# cluster's fundus_test is copied): vector created by the superuser, and the right to pause and resume WAL replay
# (a cluster-wide switch, called on a replica) so a suite can hold a replica behind the primary on purpose.
psql_node "${PRIMARY_PORT}" -d postgres <<SQL
SELECT 'CREATE DATABASE fundus_template OWNER ${DB_ROLE}' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'fundus_template') \gexec
SQL
# A login with no table privileges: test/api/read-replicas.test.mjs reads through it to make every replica read
# fail while the replica's health poll (a function anyone may call) still succeeds.
psql_node "${PRIMARY_PORT}" -d postgres <<SQL
SELECT format('CREATE ROLE fundus_unprivileged LOGIN PASSWORD %L', 'fundus_unprivileged') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fundus_unprivileged') \gexec
SQL
psql_node "${PRIMARY_PORT}" -d fundus_template <<SQL
CREATE EXTENSION IF NOT EXISTS vector;
GRANT EXECUTE ON FUNCTION pg_wal_replay_pause(), pg_wal_replay_resume() TO ${DB_ROLE};
SQL

# --- Streaming replicas -------------------------------------------------------------------------------------
replica_urls=()
for port in "${REPLICA_PORTS[@]}"; do
  dir="$(node_dir "${port}")"
  slot="replica_${port}"
  if [[ ! -f "${dir}/standby.signal" ]]; then
    log "base backup of ${PRIMARY_PORT} for replica ${port} (slot ${slot})"
    rm -rf "${dir}"
    psql_node "${PRIMARY_PORT}" -d postgres -c "SELECT pg_create_physical_replication_slot('${slot}') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '${slot}')" >/dev/null
    as_postgres env PGPASSWORD="${REPLICATION_PASSWORD}" "${PG_BIN}/pg_basebackup" -h 127.0.0.1 -p "${PRIMARY_PORT}" -U "${REPLICATION_ROLE}" \
      -D "${dir}" -R -X stream -S "${slot}" --checkpoint=fast
    # The copied postgresql.conf names the primary's port; the replica's own goes in postgresql.auto.conf,
    # which pg_basebackup -R also wrote primary_conninfo into.
    echo "port = ${port}" | as_postgres tee -a "${dir}/postgresql.auto.conf" >/dev/null
  fi
  start_node "${port}"
  replica_urls+=("$(url_for "${port}")")
done

for attempt in $(seq 1 30); do
  streaming="$(psql_node "${PRIMARY_PORT}" -d postgres -At -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")"
  [[ "${streaming}" -ge "${#REPLICA_PORTS[@]}" ]] && break
  sleep 1
done
log "replicas streaming: ${streaming}/${#REPLICA_PORTS[@]}"

cat >"${CLUSTER_DIR}/test-env" <<ENV
# source this, then: node --test test/api/read-replicas.test.mjs
export TEST_REPLICA_PRIMARY_URL=$(url_for "${PRIMARY_PORT}" fundus_template)
export TEST_REPLICA_URL=$(url_for "${REPLICA_PORTS[0]}" fundus_template)
export TEST_REPLICA_UNPRIVILEGED_USER=fundus_unprivileged:fundus_unprivileged
ENV
if [[ ${databases_only} -eq 1 ]]; then
  log "primary and replicas up (--databases-only); for the replica suite: source ${CLUSTER_DIR}/test-env"
  exit 0
fi

# --- API processes --------------------------------------------------------------------------------------------
install -d "${CLUSTER_DIR}/auth"
replica_list="$(IFS=,; echo "${replica_urls[*]}")"
start_api() {
  local port=$1 seed=$2 pidfile="${RUN_DIR}/api-$1.pid"
  if pid_alive "${pidfile}"; then log "API ${port} already running (pid $(cat "${pidfile}"))"; return; fi
  log "starting API on ${port}"
  # The local demo issuer is on so that the demo users can sign in; all processes share its key directory, so
  # a token from one is accepted by every other. Never expose these ports beyond loopback.
  (
    cd "${REPO_ROOT}"
    HOST=127.0.0.1 PORT="${port}" DATABASE_URL="$(url_for "${PRIMARY_PORT}")" DATABASE_REPLICA_URLS="${replica_list}" \
    SEED_DEMO_COHORT="${seed}" AUTH_LOCAL_ISSUER=true AUTH_LOCAL_KEY_DIR="${CLUSTER_DIR}/auth" LOG_LEVEL="${FUNDUS_API_LOG_LEVEL:-warn}" \
      setsid nohup node apps/api/dist/index.js >>"${LOG_DIR}/api-${port}.log" 2>&1 </dev/null &
    echo $! >"${pidfile}"
  )
  for attempt in $(seq 1 900); do
    curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && { log "API ${port} healthy"; return; }
    pid_alive "${pidfile}" || die "API ${port} exited; see ${LOG_DIR}/api-${port}.log"
    sleep 1
  done
  die "API ${port} did not answer /healthz within 900 s (seeding the demo cohort takes minutes); see ${LOG_DIR}/api-${port}.log"
}
# The first process seeds the demo cohort into an empty database (and applies migrations); the others start
# after it, so no two seed at once.
seed=true
for port in "${API_PORTS[@]}"; do
  start_api "${port}" "${seed}"
  seed=false
done

# --- HAProxy in front -----------------------------------------------------------------------------------------
cfg="${CLUSTER_DIR}/haproxy.cfg"
{
  cat <<CFG
# Written by scripts/cluster/start.sh; rewritten on every start.
global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # Retries only connection failures (the request never reached an API), so a mutation is never sent twice.
  retries 2
  option redispatch
frontend fundus_api
  bind 127.0.0.1:${PROXY_PORT}
  default_backend api
backend api
  # One credential to one API process (consistent hash of the Authorization header; round robin without one).
  balance hdr(authorization)
  hash-type consistent
  option httpchk GET ${FUNDUS_HEALTH_PATH:-/healthz}
  http-check expect status 200
  default-server inter 1s fall 2 rise 2
CFG
  for port in "${API_PORTS[@]}"; do echo "  server api${port} 127.0.0.1:${port} check"; done
  cat <<CFG
listen stats
  bind 127.0.0.1:${PROXY_STATS_PORT}
  stats enable
  stats uri /
CFG
} >"${cfg}"
haproxy -c -q -f "${cfg}" || die "haproxy rejected ${cfg}"
if pid_alive "${RUN_DIR}/haproxy.pid"; then
  log "reloading haproxy"
  haproxy -D -f "${cfg}" -p "${RUN_DIR}/haproxy.pid" -sf "$(cat "${RUN_DIR}/haproxy.pid")"
else
  log "starting haproxy on ${PROXY_PORT}"
  haproxy -D -f "${cfg}" -p "${RUN_DIR}/haproxy.pid"
fi
for attempt in $(seq 1 20); do
  curl -fsS "http://127.0.0.1:${PROXY_PORT}/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:${PROXY_PORT}/healthz" >/dev/null || die "haproxy on ${PROXY_PORT} does not answer /healthz"

cat <<INFO
[cluster] up:
  API (through HAProxy)  http://127.0.0.1:${PROXY_PORT}/graphql   stats http://127.0.0.1:${PROXY_STATS_PORT}/
  API processes          ${API_PORTS[*]}
  primary                $(url_for "${PRIMARY_PORT}")
  replicas               ${replica_list}
  sign in as a demo user curl -s -XPOST -H 'content-type: application/json' -d '{"subject":"demo-clinician"}' http://127.0.0.1:${PROXY_PORT}/auth/local/token
  logs                   ${LOG_DIR}
  replica test suite     source ${CLUSTER_DIR}/test-env && node --test test/api/read-replicas.test.mjs
INFO
