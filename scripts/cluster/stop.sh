#!/usr/bin/env bash
# Stops what scripts/cluster/start.sh and shard.sh started: HAProxy, the API processes, every PostgreSQL node
# under the cluster directory. Keeps the data (a later start.sh resumes it) unless --purge is given.
# Idempotent: stopping what is not running is fine. The shared cluster on 5432 is never touched.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=0
[[ "${1:-}" == "--purge" ]] && purge=1

stop_pidfile() {
  local pidfile=$1 what=$2
  if pid_alive "${pidfile}"; then
    local pid; pid="$(cat "${pidfile}")"
    log "stopping ${what} (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    for attempt in $(seq 1 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.2; done
    kill -0 "${pid}" 2>/dev/null && kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${pidfile}"
}

if [[ -d "${RUN_DIR}" ]]; then
  stop_pidfile "${RUN_DIR}/haproxy.pid" haproxy
  for pidfile in "${RUN_DIR}"/api-*.pid; do
    [[ -e "${pidfile}" ]] && stop_pidfile "${pidfile}" "API $(basename "${pidfile}" .pid)"
  done
fi
# Replicas and shards before the primary, so the replicas do not log a lost primary at length.
for dir in $(ls -d "${CLUSTER_DIR}"/pg-* 2>/dev/null | sort -r); do
  if [[ -f "${dir}/postmaster.pid" ]]; then
    log "stopping PostgreSQL node $(basename "${dir}")"
    as_postgres "${PG_BIN}/pg_ctl" -D "${dir}" -m fast -w -t 60 stop >/dev/null || true
  fi
done
if [[ ${purge} -eq 1 ]]; then
  log "removing ${CLUSTER_DIR}"
  rm -rf "${CLUSTER_DIR}"
fi
log "stopped"
