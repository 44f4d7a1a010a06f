// Benchmark: similar-case search by case (k = 10, exact cosine, the query patient excluded) on one PostgreSQL node
// against the same rows sharded by patient over postgres_fdw foreign partitions (scripts/cluster/shard.sh), side by
// side in one run: rounds alternate the configurations, so drift and other load hit all of them alike.
//
//   sudo bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env
//   nice node bench/cluster.mjs --cases 100000 --queries 100 --clients 1,4 --rounds 3 [--hnsw] [--app-database URL]
//
// Configurations, each answering the same queries:
//   one node        fundus_search_single.case_vector, one table with every row (the baseline)
//   coordinator     fundus_search.case_vector, PARTITION BY HASH (patient_id) over foreign partitions: the plain
//                   query; PostgreSQL 15 plans a Merge Append whose shards each sort all their rows (no LIMIT
//                   pushed down) and are read one after the other
//   coordinator,    the same partitions queried as UNION ALL of per-shard "ORDER BY <=> LIMIT k" (LIMIT pushed to
//   per-shard top-k each shard), merged by the coordinator; the shards scan concurrently (async Append)
//   API fan-out     no coordinator: the query photograph's embedding read from the application's database (the one
//                   node stands in), every shard asked for its own top k at once on a pool per shard, the k x shards
//                   rows merged in the client by distance (what the API would do instead of postgres_fdw)
//   shard N alone   one shard's own query on its own rows: the per-node figure
// Every configuration's top-10 ids are compared with the one node's for every query (exact search: they must agree).
// Rows are synthetic: 128-d embeddings clustered per grade (8 clusters per grade), grades at EyePACS-like prevalence,
// four photographs per patient. `--hnsw` then builds an HNSW index (m 16, ef_construction 64) on the one node and on
// every shard at once, reports build time and size, and runs the configurations again (ef_search 100) with
// recall@10 against the exact hits.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { option } from './cli.mjs';

const caseCount = Number(option('cases', 100_000));
const queryCount = Number(option('queries', 200));
const clientCounts = String(option('clients', '1,4')).split(',').map(Number);
const rounds = Number(option('rounds', 3));
const k = 10;
const withHnsw = process.argv.includes('--hnsw');
const efSearch = Number(option('ef-search', 100));

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/cluster/shard.sh and source /var/lib/fundus-cluster/shard-env`);
  return value;
};
const singleUrl = env('SHARD_SINGLE_URL');
const coordinatorUrl = env('SHARD_COORDINATOR_URL');
const shardUrls = env('SHARD_NODE_URLS').split(',');

const poolOf = (url) => {
  const pool = new pg.Pool({ connectionString: url, max: Math.max(...clientCounts) + 1 });
  pool.on('error', () => {});
  return pool;
};
const single = poolOf(singleUrl);
let coordinator = poolOf(coordinatorUrl);
const shards = shardUrls.map(poolOf);
const count = async (pool, table = 'case_vector') => Number((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n);
const log = (message) => process.stderr.write(`[bench:cluster] ${message}\n`);

// --- Data ------------------------------------------------------------------------------------------------------
async function generateSingle() {
  // Deterministic (setseed) so a rerun at the same size writes the same rows.
  const client = await single.connect();
  try {
    await client.query('TRUNCATE case_vector');
    await client.query('SELECT setseed(0.15)');
    await client.query(`CREATE TEMP TABLE centre AS
      SELECT g AS grade, c AS cluster, array_agg(random() * 2 - 1 ORDER BY d)::real[] AS v
      FROM generate_series(0, 4) g, generate_series(0, 7) c, generate_series(1, 128) d GROUP BY g, c`);
    await client.query(`INSERT INTO case_vector (image_id, patient_id, dr_grade, eye, model_version, embedding)
      SELECT md5('image-' || i)::uuid, md5('patient-' || (i / 4))::uuid, rows.grade,
             CASE WHEN i % 2 = 0 THEN 'LEFT' ELSE 'RIGHT' END, 'bench-1',
             (SELECT array_agg(ce.v[d] + (random() - 0.5) * 1.2 ORDER BY d) FROM generate_series(1, 128) d)::vector
      FROM (SELECT i, CASE WHEN r < 0.73 THEN 0 WHEN r < 0.80 THEN 1 WHEN r < 0.95 THEN 2 WHEN r < 0.98 THEN 3 ELSE 4 END AS grade, (i * 7919) % 8 AS cluster
            FROM (SELECT i, random() AS r FROM generate_series(1, $1::int) i) s) rows
      JOIN centre ce ON ce.grade = rows.grade AND ce.cluster = rows.cluster`, [caseCount]);
  } finally {
    client.release();
  }
}

const load = { generatedMs: null, copiedThroughCoordinatorMs: null };
if ((await count(single)) !== caseCount) {
  log(`generating ${caseCount} rows on the one node`);
  const started = performance.now();
  await generateSingle();
  load.generatedMs = Math.round(performance.now() - started);
}
const shardRows = async () => (await Promise.all(shards.map((pool) => count(pool)))).reduce((a, b) => a + b, 0);
if ((await count(coordinator)) !== caseCount || (await shardRows()) !== caseCount) {
  log(`copying ${caseCount} rows to the shards through the coordinator (tuple routing by hash of patient_id)`);
  const started = performance.now();
  await coordinator.query('TRUNCATE case_vector');
  await coordinator.query('INSERT INTO case_vector SELECT * FROM single_case_vector');
  load.copiedThroughCoordinatorMs = Math.round(performance.now() - started);
}
const dropIndexes = async (pool) => pool.query('DROP INDEX IF EXISTS case_vector_embedding_hnsw');
await Promise.all([single, ...shards].map(dropIndexes));
await Promise.all([single, ...shards].map((pool) => pool.query('VACUUM ANALYZE case_vector')));

// --- Queries ---------------------------------------------------------------------------------------------------
const queries = (await single.query(`SELECT image_id::text AS image_id, patient_id::text AS patient_id, embedding::text AS embedding
  FROM case_vector ORDER BY md5(image_id::text || 'bench') LIMIT $1`, [queryCount])).rows;
const partitions = (await coordinator.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'case_vector'::regclass ORDER BY c.relname`)).rows.map((row) => row.relname);

// No tie-break by id inside the k-NN ORDER BY: with a second sort key PostgreSQL cannot use the HNSW index's order
// (it scans exactly instead). Ties between float distances of distinct synthetic vectors do not occur here.
// Search by case: the query photograph's embedding is read in the same statement (by patient and image: on the
// coordinator that prunes to the patient's shard), as the API's search by image id does.
const QUERY_CTE = 'WITH q AS MATERIALIZED (SELECT embedding FROM case_vector WHERE patient_id = $1::uuid AND image_id = $2::uuid)';
const PLAIN_SQL = `${QUERY_CTE}
  SELECT c.image_id::text AS image_id FROM case_vector c WHERE c.patient_id <> $1::uuid
  ORDER BY c.embedding <=> (SELECT embedding FROM q) LIMIT ${k}`;
const PER_SHARD_SQL = `${QUERY_CTE}
  SELECT image_id::text AS image_id FROM (
    ${partitions.map((partition) => `(SELECT image_id, embedding <=> (SELECT embedding FROM q) AS distance FROM ${partition}
      WHERE patient_id <> $1::uuid ORDER BY embedding <=> (SELECT embedding FROM q) LIMIT ${k})`).join('\n    UNION ALL\n    ')}
  ) hits ORDER BY distance + 0, image_id LIMIT ${k}`;
// One shard's part: its own top-k from the query vector (what every shard runs for the per-shard top-k plan).
const LOCAL_SQL = `SELECT image_id::text AS image_id FROM case_vector WHERE patient_id <> $1::uuid
  ORDER BY embedding <=> $2::vector LIMIT ${k}`;

// The API's own fan-out, without the coordinator: the query photograph's embedding read from the application's
// database (the one node stands in for it here: search by case reads image_embedding there), then every shard's top k
// asked at once on a pooled connection of each shard, and the k x shards rows merged in this process by distance.
const FAN_OUT_QUERY_SQL = 'SELECT embedding::text AS embedding FROM case_vector WHERE patient_id = $1::uuid AND image_id = $2::uuid';
// ORDER BY the output column, not the expression written again with a cast: a target-list expression that differs
// from the sort key is computed as well for every row an exact scan ranks (the first run of this part took twice a
// lone shard's time with exact search); the same expression is computed once and still walks the HNSW index.
const FAN_OUT_PART_SQL = `SELECT image_id::text AS image_id, embedding <=> $2::vector AS distance FROM case_vector
  WHERE patient_id <> $1::uuid ORDER BY distance LIMIT ${k}`;

/** A configuration that sends one statement per search on one pooled connection of `pool()`. */
const statementConfiguration = (name, pool, sql, args, extra = {}) => ({
  name,
  ...extra,
  async open(setup) {
    const client = await pool().connect();
    if (setup) await client.query(setup);
    return {
      search: async (q) => (await client.query({ text: sql, values: args(q), name: `${name}:${setup ?? ''}` })).rows.map((row) => row.image_id),
      release: () => client.release(),
    };
  },
});

const byDistanceThenId = (a, b) => a.distance - b.distance || (a.image_id < b.image_id ? -1 : a.image_id > b.image_id ? 1 : 0);

const fanOut = {
  name: 'API fan-out, per-shard top-k',
  async open(setup) {
    const home = await single.connect();
    const parts = await Promise.all(shards.map((pool) => pool.connect()));
    // No parallel workers on the shards' sessions: every shard here shares the same two cores, and a parallel
    // exact scan on each of them at once (2 shards x 3 processes) gave 0.63x the coordinator's throughput at 1 client
    // and 0.49x at 4 (the coordinator reads through postgres_fdw cursors, which never get a parallel plan). On shards
    // with cores of their own this would be left on.
    await Promise.all(parts.map((client) => client.query('SET max_parallel_workers_per_gather = 0')));
    if (setup) await Promise.all(parts.map((client) => client.query(setup)));
    return {
      async search(q) {
        const { rows } = await home.query({ name: 'fan-out:query', text: FAN_OUT_QUERY_SQL, values: [q.patient_id, q.image_id] });
        const answers = await Promise.all(parts.map((client) => client.query({ name: `fan-out:part:${setup ?? ''}`, text: FAN_OUT_PART_SQL, values: [q.patient_id, rows[0].embedding] })));
        return answers.flatMap((answer) => answer.rows).sort(byDistanceThenId).slice(0, k).map((row) => row.image_id);
      },
      release() {
        home.release();
        for (const client of parts) client.release();
      },
    };
  },
};

const configurations = [
  statementConfiguration('one node', () => single, PLAIN_SQL, (q) => [q.patient_id, q.image_id]),
  statementConfiguration('coordinator, partitioned table', () => coordinator, PLAIN_SQL, (q) => [q.patient_id, q.image_id]),
  statementConfiguration('coordinator, per-shard top-k', () => coordinator, PER_SHARD_SQL, (q) => [q.patient_id, q.image_id]),
  fanOut,
  ...shards.map((pool, index) => statementConfiguration(`shard ${index + 1} alone`, () => pool, LOCAL_SQL, (q) => [q.patient_id, q.embedding], { partial: true })),
];

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** `clients` concurrent workers answer every query once; returns latencies (ms), wall time and the hits. */
async function runWindow(configuration, clients) {
  const latencies = [];
  const hits = new Array(queries.length);
  let nextQuery = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    const session = await configuration.open(configuration.setup);
    try {
      for (;;) {
        const index = nextQuery++;
        if (index >= queries.length) break;
        const t0 = performance.now();
        hits[index] = await session.search(queries[index]);
        latencies.push(performance.now() - t0);
      }
    } finally {
      session.release();
    }
  }));
  return { latencies, wallMs: performance.now() - started, hits };
}

async function measure(label, { setup = null, truth = null } = {}) {
  // Warm-up, not measured: every pooled session connects, and the coordinator's sessions open theirs on the shards.
  for (const configuration of configurations) await runWindow({ ...configuration, setup }, Math.max(...clientCounts));
  const results = [];
  for (const clients of clientCounts) {
    const collected = new Map(configurations.map((configuration) => [configuration.name, { latencies: [], wallMs: 0, answered: 0, agree: 0, compared: 0, recall: [] }]));
    for (let round = 0; round < rounds; round += 1) {
      // Rotate the order every round so no configuration always runs first (warm caches) or last.
      const order = configurations.map((_, index) => configurations[(index + round) % configurations.length]);
      for (const configuration of order) {
        const window = await runWindow({ ...configuration, setup }, clients);
        const entry = collected.get(configuration.name);
        entry.latencies.push(...window.latencies);
        entry.wallMs += window.wallMs;
        entry.answered += window.latencies.length;
        if (round === 0) entry.hits = window.hits;
      }
    }
    const reference = truth ?? collected.get('one node').hits;
    for (const configuration of configurations) {
      const entry = collected.get(configuration.name);
      if (!configuration.partial) {
        for (const [index, ids] of entry.hits.entries()) {
          entry.compared += 1;
          if (ids.join() === reference[index].join()) entry.agree += 1;
          const expected = new Set(reference[index]);
          entry.recall.push(ids.filter((id) => expected.has(id)).length / k);
        }
      }
      const sorted = [...entry.latencies].sort((a, b) => a - b);
      results.push({
        index: label,
        clients,
        configuration: configuration.name,
        queriesPerSecond: Number((entry.answered / (entry.wallMs / 1000)).toFixed(1)),
        p50Ms: Number(percentile(sorted, 50).toFixed(2)),
        p95Ms: Number(percentile(sorted, 95).toFixed(2)),
        ...(configuration.partial ? {} : truth
          ? { recallAt10: Number((entry.recall.reduce((a, b) => a + b, 0) / entry.recall.length).toFixed(3)) }
          : { sameTop10AsOneNode: `${entry.agree}/${entry.compared}` }),
      });
      log(JSON.stringify(results[results.length - 1]));
    }
    if (!truth && clients === clientCounts[0]) measure.truth = reference;
  }
  return results;
}

const sizeOf = async (pool) => {
  const { rows } = await pool.query(`SELECT pg_total_relation_size('case_vector')::bigint AS total, pg_relation_size('case_vector')::bigint AS heap,
    (SELECT count(*) FROM case_vector)::int AS n`);
  return { rows: rows[0].n, totalBytes: Number(rows[0].total), bytesPerRow: Math.round(Number(rows[0].total) / rows[0].n) };
};

// What one photograph costs in the application's own database (`--app-database URL`, e.g. the cluster's demo
// database postgresql://fundus:fundus@127.0.0.1:5442/fundus): every table and index, per photograph.
async function applicationBytesPerPhotograph(url) {
  const pool = poolOf(url);
  try {
    const { rows } = await pool.query(`SELECT relname AS table, pg_total_relation_size(relid)::bigint AS bytes FROM pg_stat_user_tables
      WHERE relname IN ('image_blob', 'fundus_image', 'image_embedding', 'grading', 'visit', 'patient', 'diagnosis', 'treatment', 'hba1c_reading', 'external_link', 'eye_summary')`);
    const [{ photographs, blobBytes }] = (await pool.query('SELECT count(*)::int AS photographs, coalesce(avg(octet_length(bytes)), 0)::float8 AS "blobBytes" FROM image_blob')).rows;
    const perTable = Object.fromEntries(rows.map((row) => [row.table, Math.round(Number(row.bytes) / photographs)]));
    return { photographs, averagePhotographBytes: Math.round(blobBytes), bytesPerPhotographByTable: perTable, bytesPerPhotographWithoutBlob: Object.entries(perTable).filter(([table]) => table !== 'image_blob').reduce((sum, [, bytes]) => sum + bytes, 0) };
  } finally {
    await pool.end();
  }
}
const appDatabase = option('app-database', null);

const output = {
  benchmark: 'cluster: search by case, k=10, one node vs sharded by patient (postgres_fdw hash partitions)',
  date: new Date().toISOString(),
  cases: caseCount,
  queries: queries.length,
  rounds,
  shards: shards.length,
  load,
  ...(appDatabase ? { application: await applicationBytesPerPhotograph(appDatabase) } : {}),
  sizes: { oneNode: await sizeOf(single), shards: await Promise.all(shards.map(sizeOf)) },
  exact: await measure('exact'),
};

if (withHnsw) {
  const build = async (pool) => {
    const started = performance.now();
    await pool.query('SET maintenance_work_mem = \'512MB\'');
    await pool.query('CREATE INDEX case_vector_embedding_hnsw ON case_vector USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)');
    const { rows } = await pool.query("SELECT pg_relation_size('case_vector_embedding_hnsw')::bigint AS bytes, (SELECT count(*) FROM case_vector)::int AS n");
    return { buildMs: Math.round(performance.now() - started), indexBytes: Number(rows[0].bytes), bytesPerVector: Math.round(Number(rows[0].bytes) / rows[0].n) };
  };
  log('building HNSW on the one node');
  const oneNode = await build(single);
  log('building HNSW on every shard at once');
  const started = performance.now();
  const perShard = await Promise.all(shards.map(build));
  output.hnswBuild = { oneNode, shards: perShard, shardsWallMs: Math.round(performance.now() - started) };
  // ef_search for every session: the coordinator's foreign scans open their own sessions on the shards.
  for (const [pool, url] of [[single, singleUrl], ...shards.map((pool, index) => [pool, shardUrls[index]])]) {
    // The GUC is pgvector's: until the library is loaded in the session, PostgreSQL treats it as superuser-only.
    await pool.query("SELECT '[1]'::vector");
    await pool.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} SET hnsw.ef_search = ${efSearch}`);
  }
  // The coordinator's sessions on the shards were opened before the ALTER and keep the old setting: start afresh.
  const stale = coordinator;
  coordinator = poolOf(coordinatorUrl);
  await stale.end();
  output.hnsw = await measure(`hnsw ef_search ${efSearch}`, { setup: `SET hnsw.ef_search = ${efSearch}`, truth: measure.truth });
  for (const [pool, url] of [[single, singleUrl], ...shards.map((pool, index) => [pool, shardUrls[index]])]) {
    await pool.query("SELECT '[1]'::vector");
    await pool.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} RESET hnsw.ef_search`);
  }
  await Promise.all([single, ...shards].map(dropIndexes));
}

console.log(JSON.stringify(output, null, 2));
await Promise.all([single, coordinator, ...shards].map((pool) => pool.end()));
