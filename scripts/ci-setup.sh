#!/usr/bin/env bash
# Makes what the test suite needs available on a Debian 12 machine (CI or a developer's), and writes
# .ci/env with TEST_DATABASE_URL for the caller to source:
#   - PostgreSQL 15, cluster 15/main running
#   - pgvector for that server, built from Debian 13's source package (Debian 12 has no pgvector package)
#   - role `fundus` / database `fundus_test` with the vector extension
#   - PyTorch, torchvision, onnx, pytest for the Python model tests (Debian packages, run with /usr/bin/python3)
#   - Chromium for the browser tests
#   - a PostgreSQL primary with streaming replicas on 5442-5444 (scripts/cluster/start.sh --databases-only)
# Idempotent: when everything is there it only checks (about a second). apt-get update runs at most once, and
# only when something has to be installed. Needs root (or sudo) for apt and for the postgres superuser.
# Recipes and their caveats: ../shared/TOOLCHAIN.md.
set -euo pipefail

PG_VERSION=15
PG_CLUSTER=main
PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
VECTOR_CONTROL="/usr/share/postgresql/${PG_VERSION}/extension/vector.control"
DB_ROLE=fundus
DB_SUPER_ROLE=fundus_super
DB_PASSWORD=fundus
DB_NAME=fundus_test
CHROMIUM=/usr/bin/chromium
SYSTEM_PYTHON=/usr/bin/python3

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${REPO_ROOT}/.ci/env"

log() { printf '[ci-setup] %s\n' "$*"; }
die() { printf '[ci-setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ ${EUID} -eq 0 ]]; then
  as_root() { "$@"; }
  as_postgres() { runuser -u postgres -- "$@"; }
else
  command -v sudo >/dev/null || die "run as root or install sudo"
  as_root() { sudo "$@"; }
  as_postgres() { sudo -u postgres "$@"; }
fi

export DEBIAN_FRONTEND=noninteractive

is_installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

apt_updated=0
apt_install() {
  if [[ ${apt_updated} -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  as_root apt-get install -y -q "$@"
}

# --- 1. Packages: collect everything missing, then one update and one install -----------------------------
missing=()
[[ -x "${PG_BIN}/postgres" ]] || missing+=("postgresql-${PG_VERSION}")

need_vector_build=0
if [[ ! -f "${VECTOR_CONTROL}" ]]; then
  need_vector_build=1
  # server-dev brings pg_config's include dirs and PGXS; installing it upgrades postgresql-15 to the newest 15.x.
  for pkg in "postgresql-server-dev-${PG_VERSION}" dpkg-dev build-essential; do
    is_installed "${pkg}" || missing+=("${pkg}")
  done
fi

# Debian package per Python module; only the first python3 on PATH may be another interpreter, hence the path.
declare -A python_packages=([torch]=python3-torch [torchvision]=python3-torchvision [onnx]=python3-onnx [pytest]=python3-pytest)
# find_spec instead of import: importing torch alone takes seconds.
missing_modules="$("${SYSTEM_PYTHON}" -c '
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
' "${!python_packages[@]}" 2>/dev/null || echo "${!python_packages[@]}")"
for module in ${missing_modules}; do
  missing+=("${python_packages[${module}]}")
done

[[ -x "${CHROMIUM}" ]] || missing+=(chromium)

if [[ ${#missing[@]} -gt 0 ]]; then
  apt_install "${missing[@]}"
else
  log "packages: all present (postgresql-${PG_VERSION}, python3-torch/torchvision/onnx/pytest, chromium)"
fi

# --- 2. pgvector ------------------------------------------------------------------------------------------
if [[ ${need_vector_build} -eq 1 ]]; then
  # The Debian mirror this machine already uses; the trixie deb-src entry lives in a private apt config so the
  # system's sources, lists and caches are never touched.
  mirror=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    mirror="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)"
  fi
  if [[ -z "${mirror}" && -f /etc/apt/sources.list ]]; then
    mirror="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"

  build_dir="$(mktemp -d /tmp/ci-setup-pgvector.XXXXXX)"
  trap 'rm -rf "${build_dir}"' EXIT
  apt_dir="${build_dir}/apt"
  mkdir -p "${apt_dir}/sources.list.d" "${apt_dir}/lists/partial" "${apt_dir}/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} trixie main" \
    > "${apt_dir}/sources.list"
  private_apt=(
    -o "Dir::Etc::SourceList=${apt_dir}/sources.list"
    -o "Dir::Etc::SourceParts=${apt_dir}/sources.list.d"
    -o "Dir::State::Lists=${apt_dir}/lists"
    -o "Dir::Cache=${apt_dir}/cache"
    -o "APT::Sandbox::User=root"
  )
  log "pgvector: fetching Debian 13 source package from ${mirror}"
  as_root apt-get "${private_apt[@]}" update -qq
  (cd "${build_dir}" && as_root apt-get "${private_apt[@]}" source -q pgvector)
  src_dir="$(find "${build_dir}" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)"
  [[ -n "${src_dir}" ]] || die "apt-get source pgvector produced no pgvector-* directory"
  log "pgvector: building $(basename "${src_dir}") for PostgreSQL ${PG_VERSION}"
  as_root make -s -C "${src_dir}" PG_CONFIG="${PG_BIN}/pg_config" >/dev/null
  as_root make -s -C "${src_dir}" PG_CONFIG="${PG_BIN}/pg_config" install >/dev/null
  [[ -f "${VECTOR_CONTROL}" ]] || die "pgvector built but ${VECTOR_CONTROL} is missing"
  log "pgvector: installed ($(grep -oP "default_version = '\K[^']+" "${VECTOR_CONTROL}"))"
else
  log "pgvector: already installed for PostgreSQL ${PG_VERSION}"
fi

# --- 3. Cluster 15/main -----------------------------------------------------------------------------------
# Runs after the package step on purpose: upgrading postgresql-15 (pulled in by server-dev) may stop it.
cluster_field() { pg_lsclusters -h | awk -v v="${PG_VERSION}" -v c="${PG_CLUSTER}" -v f="$1" '$1 == v && $2 == c { print $f }'; }

if [[ -z "$(cluster_field 1)" ]]; then
  log "cluster ${PG_VERSION}/${PG_CLUSTER}: creating"
  as_root pg_createcluster --encoding UTF8 --locale C.UTF-8 "${PG_VERSION}" "${PG_CLUSTER}" >/dev/null
fi
if [[ "$(cluster_field 4)" != online ]]; then
  log "cluster ${PG_VERSION}/${PG_CLUSTER}: starting"
  as_root pg_ctlcluster --skip-systemctl-redirect "${PG_VERSION}" "${PG_CLUSTER}" start
fi
port="$(cluster_field 3)"
for _ in $(seq 1 30); do
  "${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${port}" && break
  sleep 0.5
done
"${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${port}" || die "PostgreSQL ${PG_VERSION}/${PG_CLUSTER} is not accepting connections on port ${port}"
log "cluster ${PG_VERSION}/${PG_CLUSTER}: online on port ${port}"

# --- 4. Role, database, extension -------------------------------------------------------------------------
psql_super() { as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -p "${port}" "$@"; }

# CREATEDB so tests and migration tools can make scratch or shadow databases.
if [[ "$(psql_super -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '${DB_ROLE}'")" != 1 ]]; then
  log "role ${DB_ROLE}: creating"
  psql_super -d postgres -c "CREATE ROLE ${DB_ROLE} LOGIN CREATEDB PASSWORD '${DB_PASSWORD}'"
else
  psql_super -d postgres -c "ALTER ROLE ${DB_ROLE} LOGIN CREATEDB PASSWORD '${DB_PASSWORD}'"
fi
# A superuser for the audit tests only: they alter an audit row with triggers bypassed, as an attacker with the
# server's superuser could, and check that audit:verify names that row.
if [[ "$(psql_super -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '${DB_SUPER_ROLE}'")" != 1 ]]; then
  log "role ${DB_SUPER_ROLE}: creating"
  psql_super -d postgres -c "CREATE ROLE ${DB_SUPER_ROLE} LOGIN SUPERUSER PASSWORD '${DB_PASSWORD}'"
fi
if [[ "$(psql_super -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != 1 ]]; then
  log "database ${DB_NAME}: creating"
  as_postgres createdb -p "${port}" -O "${DB_ROLE}" -E UTF8 -T template0 --locale C.UTF-8 "${DB_NAME}"
fi
psql_super -d "${DB_NAME}" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector"
vector_version="$(psql_super -d "${DB_NAME}" -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
log "database ${DB_NAME}: owner ${DB_ROLE}, extension vector ${vector_version}"

# --- 5. Hand the URL to the caller ------------------------------------------------------------------------
url="postgresql://${DB_ROLE}:${DB_PASSWORD}@127.0.0.1:${port}/${DB_NAME}"
mkdir -p "$(dirname "${ENV_FILE}")"
printf 'export TEST_DATABASE_URL=%s\nexport TEST_SUPERUSER_DATABASE_URL=%s\n' "${url}" "postgresql://${DB_SUPER_ROLE}:${DB_PASSWORD}@127.0.0.1:${port}/${DB_NAME}" > "${ENV_FILE}"
log "TEST_DATABASE_URL=${url} (source ${ENV_FILE#"${REPO_ROOT}"/})"

# --- 6. A streaming replica for the read-routing suite ------------------------------------------------------
# scripts/cluster/start.sh --databases-only: a primary (5442) and replicas (5443, 5444) beside the shared
# cluster, about 15-35 s on first start, a second on later ones. test/api/read-replicas.test.mjs runs against
# them (and skips, saying why, where they are absent).
as_root bash "${REPO_ROOT}/scripts/cluster/start.sh" --databases-only
cat "${FUNDUS_CLUSTER_DIR:-/var/lib/fundus-cluster}/test-env" >> "${ENV_FILE}"
log "read replicas for test/api/read-replicas.test.mjs: $(grep TEST_REPLICA_URL= "${ENV_FILE}" | cut -d= -f2)"
