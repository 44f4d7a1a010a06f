#!/usr/bin/env bash
# Sharding by patient for data beyond one node, on existing engines: declarative hash partitioning over
# postgres_fdw foreign partitions. Starts the shard clusters (5445, 5446: lib.sh SHARD_PORTS) beside the primary
# of start.sh (5442), and creates on them:
#   - on every shard, database fundus_search with table case_vector: the searched columns of a photograph
#     (image, patient, grade, eye, model version, embedding), one shard's hash partition of them;
#   - on the primary, database fundus_search as the coordinator: case_vector PARTITION BY HASH (patient_id), each
#     partition a foreign table on one shard (postgres_fdw with `extensions 'vector'`, so the <=> operator and the
#     ORDER BY ship to the shard, and `async_capable`, so shards scan concurrently under an Append);
#   - on the primary, database fundus_search_single: the same table on one node, the baseline bench/cluster.mjs
#     compares against.
#   - for the API's sharded search (apps/api/src/search/shards.ts): on every shard, database fundus_cases (vector
#     extension; `npm run shards -- attach` makes its table), and on the primary, postgres_fdw usable by the
#     application's role.
# A patient's photographs all live on one shard (hash of patient_id), so a search that excludes the query's
# patient, and every per-patient read, touches one shard for the patient and all shards only for the k-NN scan.
# Idempotent; the data is loaded by bench/cluster.mjs (--cases N). Needs start.sh's primary (or starts the
# primary node alone). Stop with stop.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SEARCH_DB=fundus_search
SINGLE_DB=fundus_search_single

require_postgres
init_node "${PRIMARY_PORT}"
prepare_database "${PRIMARY_PORT}"

# The searched columns. The primary key leads with patient_id: the partition key must be part of it, and
# per-patient lookups (the query photograph of a search by case) use it.
TABLE_SQL="CREATE TABLE IF NOT EXISTS case_vector (
  image_id uuid NOT NULL,
  patient_id uuid NOT NULL,
  dr_grade smallint,
  eye text NOT NULL,
  model_version text NOT NULL,
  embedding vector(128) NOT NULL,
  PRIMARY KEY (patient_id, image_id)
)"

create_search_db() {
  local port=$1 db=$2
  psql_node "${port}" -d postgres <<SQL
SELECT 'CREATE DATABASE ${db} OWNER ${DB_ROLE}' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${db}') \gexec
SQL
  psql_node "${port}" -d "${db}" -c 'CREATE EXTENSION IF NOT EXISTS vector'
}

for port in "${SHARD_PORTS[@]}"; do
  init_node "${port}"
  prepare_database "${port}"
  create_search_db "${port}" "${SEARCH_DB}"
  psql_node "${port}" -d "${SEARCH_DB}" -c "SET ROLE ${DB_ROLE}; ${TABLE_SQL}"
done

create_search_db "${PRIMARY_PORT}" "${SINGLE_DB}"

CASES_DB=fundus_cases
for port in "${SHARD_PORTS[@]}"; do create_search_db "${port}" "${CASES_DB}"; done
# postgres_fdw for the application's role in the primary's database and in fundus_template (start.sh
# --databases-only: the template the replica suites and bench/shards-api.mjs copy), where there is one.
for db in "${DB_NAME}" fundus_template; do
  if [[ "$(psql_node "${PRIMARY_PORT}" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '${db}'")" == 1 ]]; then
    psql_node "${PRIMARY_PORT}" -d "${db}" -c "CREATE EXTENSION IF NOT EXISTS postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO ${DB_ROLE}"
  fi
done
psql_node "${PRIMARY_PORT}" -d "${SINGLE_DB}" -c "SET ROLE ${DB_ROLE}; ${TABLE_SQL}"

create_search_db "${PRIMARY_PORT}" "${SEARCH_DB}"
modulus=${#SHARD_PORTS[@]}
{
  echo "CREATE EXTENSION IF NOT EXISTS postgres_fdw;"
  echo "GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO ${DB_ROLE};"
  for port in "${SHARD_PORTS[@]}"; do
    # batch_size: rows per remote INSERT when loading through the coordinator; fetch_size: rows per remote FETCH.
    echo "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'shard_${port}') THEN
        CREATE SERVER shard_${port} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '${port}', dbname '${SEARCH_DB}', extensions 'vector', async_capable 'true', fetch_size '100', batch_size '1000');
        ALTER SERVER shard_${port} OWNER TO ${DB_ROLE};
      END IF;
    END \$\$;"
    echo "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_user_mappings WHERE srvname = 'shard_${port}' AND usename = '${DB_ROLE}') THEN
        CREATE USER MAPPING FOR ${DB_ROLE} SERVER shard_${port} OPTIONS (user '${DB_ROLE}', password '${DB_PASSWORD}');
      END IF;
    END \$\$;"
  done
  # The one-node table, reachable from the coordinator, so bench/cluster.mjs can copy the same rows to the shards.
  echo "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'single_node') THEN
      CREATE SERVER single_node FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '${PRIMARY_PORT}', dbname '${SINGLE_DB}', extensions 'vector', fetch_size '10000');
      ALTER SERVER single_node OWNER TO ${DB_ROLE};
      CREATE USER MAPPING FOR ${DB_ROLE} SERVER single_node OPTIONS (user '${DB_ROLE}', password '${DB_PASSWORD}');
    END IF;
  END \$\$;"
  echo "SET ROLE ${DB_ROLE};"
  echo "CREATE FOREIGN TABLE IF NOT EXISTS single_case_vector (image_id uuid, patient_id uuid, dr_grade smallint, eye text, model_version text, embedding vector(128)) SERVER single_node OPTIONS (table_name 'case_vector');"
  echo "CREATE TABLE IF NOT EXISTS case_vector (image_id uuid NOT NULL, patient_id uuid NOT NULL, dr_grade smallint, eye text NOT NULL, model_version text NOT NULL, embedding vector(128) NOT NULL) PARTITION BY HASH (patient_id);"
  remainder=0
  for port in "${SHARD_PORTS[@]}"; do
    echo "CREATE FOREIGN TABLE IF NOT EXISTS case_vector_shard_${port} PARTITION OF case_vector FOR VALUES WITH (MODULUS ${modulus}, REMAINDER ${remainder}) SERVER shard_${port} OPTIONS (table_name 'case_vector');"
    remainder=$((remainder + 1))
  done
} | psql_node "${PRIMARY_PORT}" -d "${SEARCH_DB}"

cat >"${CLUSTER_DIR}/shard-env" <<ENV
# source this, then: node bench/cluster.mjs
export SHARD_COORDINATOR_URL=$(url_for "${PRIMARY_PORT}" "${SEARCH_DB}")
export SHARD_SINGLE_URL=$(url_for "${PRIMARY_PORT}" "${SINGLE_DB}")
export SHARD_NODE_URLS=$(IFS=,; for port in "${SHARD_PORTS[@]}"; do printf '%s,' "$(url_for "${port}" "${SEARCH_DB}")"; done | sed 's/,$//')
# The API's shards: DATABASE_URL=<primary> npm run shards -- attach, then start the API with this set.
export SEARCH_SHARD_URLS=$(IFS=,; for port in "${SHARD_PORTS[@]}"; do printf '%s,' "$(url_for "${port}" "${CASES_DB}")"; done | sed 's/,$//')
ENV
log "sharded search table ready: coordinator $(url_for "${PRIMARY_PORT}" "${SEARCH_DB}"), shards ${SHARD_PORTS[*]} (modulus ${modulus}); one-node baseline $(url_for "${PRIMARY_PORT}" "${SINGLE_DB}")"
log "environment for bench/cluster.mjs: source ${CLUSTER_DIR}/shard-env"
