// Load on loopback (issue 15): N concurrent clients (default 32) mixing search by case, search by photograph
// (upload + search) and ingest (upload + ingestCase) for a fixed time, against an API process over PostgreSQL and
// one over the embedded database, side by side in one run. Reports per operation: completed operations, errors
// (HTTP status >= 400, GraphQL errors, socket errors and timeouts: must be none), throughput, p50/p95/p99 of each
// HTTP request; and the API process's resident memory (idle, peak, end). The load generator is autocannon.
//
//   npm run build && npm run bench:load [-- --duration 120] [--connections 32] [--backends postgres,pglite,postgres+pool32,postgres+production,postgres+production+apis2,postgres+production+shards]
//        [--mix 20,8,4] [--model models/fundus-cbr.onnx] [--json out.json] [--profile DIR]
//
// PostgreSQL: a scratch copy of DATABASE_URL's (else TEST_DATABASE_URL's) database (bench/scratch-database.mjs);
// without either the PostgreSQL half is skipped and says so. Each database gets the demo cohort's rows (the
// synthetic demo-clinic) before the API starts; see seed() for its embeddings. The API runs as its own process (node
// apps/api/dist/index.js), so its memory is its own and the load generator does not share its event loop; both
// share this machine's cores, which the figures include.
// +shards: the API searches over shards (SEARCH_SHARD_URLS, search/shards.ts): a scratch database on each node of
// SEARCH_SHARD_URLS (copied from the node's database fundus, which has vector: scripts/cluster/shard.sh), attached
// to the seeded scratch primary and replayed before the API starts; the scratch primary needs postgres_fdw usable
// by its role, so take DATABASE_URL=postgresql://fundus:fundus@127.0.0.1:5442/fundus_template (shard.sh makes it so).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { startApiProcess } from '../test/support/processes.mjs';
import { api, option, root } from './cli.mjs';
import { syntheticJpeg, withComment } from './photographs.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { dropScratchDatabase } from '../test/support/drop-database.mjs';

const durationSeconds = Number(option('duration', 120));
const connections = Number(option('connections', 32));
const backends = String(option('backends', 'postgres,pglite')).split(',');
const [searchCaseClients, searchPhotoClients, ingestClients] = String(option('mix', '')).split(',').filter(Boolean).map(Number).concat([]);
const defaultModel = fs.existsSync(path.join(root, 'models/fundus-cbr.onnx')) ? path.join(root, 'models/fundus-cbr.onnx') : path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const modelPath = path.resolve(option('model', defaultModel));
const jsonOut = option('json', null);
const extraEnv = JSON.parse(option('env', '{}'));
/** --profile DIR: the API runs under node --cpu-prof, writing its profile there when it stops. */
const profileDir = option('profile', null);

// Of 32 clients: 20 search by case, 8 by photograph, 4 ingest (scaled to --connections when --mix is not given).
const mix = searchCaseClients
  ? { searchByCase: searchCaseClients, searchByPhotograph: searchPhotoClients ?? 0, ingest: ingestClients ?? 0 }
  : { searchByCase: Math.round((connections * 20) / 32), searchByPhotograph: Math.round((connections * 8) / 32), ingest: connections - Math.round((connections * 20) / 32) - Math.round((connections * 8) / 32) };

const [{ loadConfig }, { openDatabase }, { buildCohort }, { loadCohort }, { Embedder }] = await Promise.all([
  api('config.js'), api('db/database.js'), api('fixtures/cohort.js'), api('fixtures/seed.js'), api('embedding/embedder.js'),
]);

const SEARCH_BY_CASE = 'query C($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank similarity case { id ageAtVisit image { eye } referenceGrading { drGrade } treatments { type } } } } }';
const SEARCH_BY_PHOTOGRAPH = 'query P($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank similarity case { id referenceGrading { drGrade } } } } }';
const INGEST = 'mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id } } }';

const percentile = (sorted, p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);

function rssMiB(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** One operation's tally: latencies (ms) per request step, errors by kind with a few examples. */
function createTally(name, steps) {
  return { name, steps, latencies: Object.fromEntries(steps.map((step) => [step, []])), completed: 0, errors: 0, errorExamples: [], acknowledged: 0 };
}

function recordError(tally, what) {
  tally.errors += 1;
  if (tally.errorExamples.length < 5) tally.errorExamples.push(what.slice(0, 300));
}

/** The GraphQL or REST error code in a response body, if any. */
function errorOf(status, body) {
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return status >= 400 ? `HTTP ${status}` : null;
  }
  if (parsed?.errors?.length) return `HTTP ${status} ${parsed.errors.map((error) => error.extensions?.code ?? error.message).join(',')}`;
  return status >= 400 ? `HTTP ${status}` : null;
}

/**
 * Runs one autocannon instance of `clients` connections whose every connection repeats `requests` in order; the
 * n-th response of a connection belongs to step n mod steps (pipelining 1 keeps them in order).
 */
function runInstance({ baseUrl, tally, clients, requests, onStart }) {
  if (clients === 0) return Promise.resolve(null);
  const position = new WeakMap();
  const instance = autocannon({
    url: baseUrl,
    connections: clients,
    pipelining: 1,
    duration: durationSeconds,
    timeout: 30,
    requests,
  });
  instance.on('response', (client, statusCode, _bytes, responseTime) => {
    const index = position.get(client) ?? 0;
    position.set(client, index + 1);
    const step = tally.steps[index % tally.steps.length];
    tally.latencies[step].push(responseTime);
    if (index % tally.steps.length === tally.steps.length - 1) tally.completed += 1;
  });
  instance.on('reqError', (error) => recordError(tally, `socket: ${error.code ?? error.message}`));
  onStart?.(instance);
  return new Promise((resolve) => instance.on('done', resolve));
}

/**
 * One operation's clients against the API processes: one autocannon instance per process with its share of the
 * clients (as a load balancer would split them), one tally; null when no client ran, else the summed timeouts.
 */
async function runOperation({ baseUrls, clients, ...operation }) {
  const shares = baseUrls.map((_, index) => Math.floor(clients / baseUrls.length) + (index < clients % baseUrls.length ? 1 : 0));
  const results = await Promise.all(baseUrls.map((baseUrl, index) => runInstance({ ...operation, baseUrl, clients: shares[index] })));
  return results.every((result) => result === null) ? null : { timeouts: results.reduce((total, result) => total + (result?.timeouts ?? 0), 0) };
}

/** This script's own connection to a backend's scratch database (seeding, attaching, counting): never over shards. */
function scriptConfig(env) {
  return loadConfig({ ...process.env, ...env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', SEARCH_SHARD_URLS: '' });
}

/**
 * The demo cohort's rows (patients, visits, gradings, treatments; placeholder images) with the fixture's synthetic
 * embeddings relabelled as the loaded model's version: searches then cost what they cost over the demo cohort
 * (row count, dimension, filters, case loading) without rendering and embedding two thousand photographs first
 * (about 20 minutes on the shared 2-core machine). Hits' similarities are meaningless; uploads and ingests still
 * run the real preprocessing and model at request time.
 */
async function seed(env) {
  const config = scriptConfig(env);
  const db = await openDatabase(config);
  const embedder = await Embedder.load({ modelPath, device: 'cpu' });
  const started = Date.now();
  const version = embedder.metadata.modelVersion;
  // Written under the loaded model's version from the start, so loadCohort's closing ANALYZE sees the rows as
  // searched. (Relabelling them afterwards by an UPDATE, as this script did until 2026-12-02, left every row dead
  // once in each vector index and the planner's statistics naming the old version: searches planned as if no row
  // matched, with a btree scan and sort in place of the HNSW walk, at about twice the database time.)
  const cohort = { ...buildCohort('demo-clinic'), modelVersion: version };
  const dimension = cohort.patients.flatMap((patient) => patient.visits).flatMap((visit) => visit.images)[0].embedding.length;
  if (dimension !== embedder.metadata.embeddingDim) throw new Error(`the fixture's embeddings have ${dimension} dimensions, the model ${embedder.metadata.embeddingDim}`);
  await loadCohort(db, cohort);
  const seconds = (Date.now() - started) / 1000;
  const rows = await db.sql.query('SELECT i.id::text AS id, i.dr_grade AS grade FROM fundus_image i JOIN image_embedding e ON e.image_id = i.id WHERE e.model_version = $1', [version]);
  await embedder.release();
  await db.close();
  return { rows, seconds };
}

/** One scratch shard database on each node of SEARCH_SHARD_URLS, attached to the primary of `env` and replayed. */
async function attachScratchShards(env) {
  const nodes = (process.env.SEARCH_SHARD_URLS ?? '').split(',').filter(Boolean);
  if (nodes.length === 0) throw new Error('+shards needs SEARCH_SHARD_URLS: bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env');
  const name = `fundus_load_${Date.now().toString(36)}`;
  const at = (url, database) => Object.assign(new URL(url), { pathname: `/${database}` }).toString();
  const urls = [];
  const drop = async () => {
    for (const url of urls) await dropScratchDatabase(at(url, 'postgres'), name).catch((error) => console.error(`[load] could not drop ${name}: ${error.message}`));
  };
  try {
    for (const node of nodes) {
      const admin = new pg.Client({ connectionString: at(node, 'postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE fundus`);
      } finally {
        await admin.end();
      }
      urls.push(at(node, name));
    }
    const { attachShards, replayAll } = await api('search/shards.js');
    const db = await openDatabase(scriptConfig(env));
    try {
      await attachShards(db, urls);
      const replayed = await replayAll(db.sql);
      return { urls, projected: replayed.projected, drop };
    } finally {
      await db.close();
    }
  } catch (error) {
    await drop();
    throw error;
  }
}

async function countIngested(env) {
  const config = scriptConfig(env);
  const db = await openDatabase(config);
  try {
    const [row] = await db.sql.query("SELECT count(*)::int AS n FROM fundus_image i JOIN visit v ON v.id = i.visit_id JOIN patient p ON p.id = v.patient_id WHERE p.mrn LIKE 'LOAD-%'");
    return row.n;
  } finally {
    await db.close();
  }
}

/** Resident memory and CPU seconds (user + system) of a process, from /proc. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / 100;
  } catch {
    return null;
  }
}

/**
 * What PostgreSQL's backends of the scratch database are doing, sampled every 250 ms: active and running (CPU),
 * or waiting on a lock (Lock/transactionid, tuple: a row lock, such as the audit chain's head), on the WAL flush
 * (IO/WALSync, LWLock/WALWrite), or idle inside a transaction (the client is working between statements).
 */
async function sampleDatabase(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const counts = {};
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await client.query(`SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction' ELSE coalesce(wait_event_type || '/' || wait_event, 'running') END AS what, count(*)::int AS n
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction') GROUP BY 1`);
      samples += 1;
      for (const row of rows) counts[row.what] = (counts[row.what] ?? 0) + row.n;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    await client.end();
    // Mean number of backends in each state over the run.
    return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([what, n]) => [what, Number((n / Math.max(samples, 1)).toFixed(2))]));
  };
}

async function runBackend(variant) {
  const [kind, ...tweaks] = variant.split('+');
  const variantEnv = {};
  let apiProcesses = 1;
  let sharded = false;
  for (const tweak of tweaks) {
    const pool = /^pool(\d+)$/.exec(tweak);
    const apis = /^apis(\d+)$/.exec(tweak);
    if (pool) variantEnv.DATABASE_POOL_SIZE = pool[1];
    // Stateless API replicas on one database (upload tokens and rate limits live in it): each operation's clients
    // are split between the processes, as a load balancer would.
    else if (apis) apiProcesses = Number(apis[1]);
    // graphql-js checks every failed instanceof for a second copy of itself unless NODE_ENV is production.
    else if (tweak === 'production') variantEnv.NODE_ENV = 'production';
    // Every statement PostgreSQL's unnamed one, parsed and planned on each execution (the build before named ones).
    else if (tweak === 'unnamed') variantEnv.DATABASE_NAMED_STATEMENTS = 'false';
    else if (tweak === 'shards') sharded = true;
    else throw new Error(`unknown variant ${tweak} (known: poolN, production, apisN, unnamed, shards)`);
  }
  if (sharded && kind !== 'postgres') throw new Error('+shards needs PostgreSQL');
  // SEARCH_SHARD_URLS names the shard nodes (for +shards' scratch databases); no API process inherits it.
  if (!sharded) variantEnv.SEARCH_SHARD_URLS = '';
  if (apiProcesses > 1 && kind !== 'postgres') throw new Error('several API processes need PostgreSQL: the embedded database is one process\'s');
  if (kind === 'postgres') {
    const url = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
    if (!url) return { database: kind, skipped: 'set DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL with pgvector' };
    process.env.DATABASE_URL = url;
  } else {
    delete process.env.DATABASE_URL;
  }
  const scratch = await createScratchEnvironment();
  const env = Object.fromEntries(Object.entries(scratch.env).filter(([, value]) => value !== undefined));
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-load-keys-'));
  const servers = [];
  let shardScratch = null;
  try {
    const seeded = await seed(scratch.env);
    if (sharded) {
      shardScratch = await attachScratchShards(scratch.env);
      variantEnv.SEARCH_SHARD_URLS = shardScratch.urls.join(',');
    }
    const output = [];
    for (let index = 0; index < apiProcesses; index += 1) {
      servers.push(await startApiProcess({
        env: { ...env, MODEL_PATH: modelPath, AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '10000000', LOG_LEVEL: 'warn', ...extraEnv, ...variantEnv },
        output,
        timeoutMs: 300_000,
        nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`] : [],
      }));
    }
    const server = servers[0];
    const authorization = `Bearer ${await server.tokenFor('demo-clinician')}`;
    const json = { 'content-type': 'application/json', authorization };
    const photographs = await Promise.all([0, 1, 2, 3].map(syntheticJpeg));
    const ingestBase = await syntheticJpeg(11);
    const caseIds = seeded.rows.map((row) => row.id);
    let random = 1;
    const next = () => (random = (random * 1103515245 + 12345) % 2147483648) / 2147483648;
    const runId = Date.now().toString(36);
    let ingestSerial = 0;

    // Warm-up: a few of each on every process, outside the figures.
    for (let index = 0; index < 5 * servers.length; index += 1) {
      const target = servers[index % servers.length];
      const response = await fetch(target.url, { method: 'POST', headers: json, body: JSON.stringify({ query: SEARCH_BY_CASE, variables: { input: { imageId: caseIds[index], k: 10, filters: { drGrades: [index % 5] } } } }) });
      const body = await response.json();
      if (body.errors) throw new Error(`warm-up search failed: ${JSON.stringify(body.errors).slice(0, 300)}`);
      const uploaded = await fetch(`${target.baseUrl}/uploads`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization }, body: photographs[index % 4] });
      if (uploaded.status !== 201) throw new Error(`warm-up upload answered ${uploaded.status}`);
    }

    const tallies = {
      searchByCase: createTally('search by case', ['search']),
      searchByPhotograph: createTally('search by photograph', ['upload', 'search']),
      ingest: createTally('ingest', ['upload', 'ingestCase']),
    };
    const check = (tally, step) => (status, body) => {
      const error = errorOf(status, body);
      if (error) recordError(tally, `${step}: ${error}`);
      return error;
    };
    const sum = (values) => (values.some((value) => value === null) ? null : values.reduce((total, value) => total + value, 0));
    const rssOfApis = () => sum(servers.map((one) => rssMiB(one.pid)));
    const cpuOfApis = () => sum(servers.map((one) => cpuSeconds(one.pid)));
    const idleRss = rssOfApis();
    const cpuBefore = cpuOfApis();
    const stopSampling = kind === 'postgres' ? await sampleDatabase(env.DATABASE_URL) : null;
    const rss = [];
    const sampler = setInterval(() => {
      const value = rssOfApis();
      if (value !== null) rss.push(value);
    }, 500);
    const baseUrls = servers.map((one) => one.baseUrl);
    const started = Date.now();
    const results = await Promise.all([
      runOperation({
        baseUrls,
        tally: tallies.searchByCase,
        clients: mix.searchByCase,
        requests: [{
          method: 'POST', path: '/graphql', headers: json,
          setupRequest: (request) => ({ ...request, body: JSON.stringify({ query: SEARCH_BY_CASE, variables: { input: { imageId: caseIds[Math.floor(next() * caseIds.length)], k: 10, filters: { drGrades: [Math.floor(next() * 5)] } } } }) }),
          onResponse: check(tallies.searchByCase, 'search'),
        }],
      }),
      runOperation({
        baseUrls,
        tally: tallies.searchByPhotograph,
        clients: mix.searchByPhotograph,
        requests: [
          {
            method: 'POST', path: '/uploads', headers: { 'content-type': 'image/jpeg', authorization },
            setupRequest: (request) => ({ ...request, body: photographs[Math.floor(next() * photographs.length)] }),
            onResponse: (status, body, context) => {
              context.token = check(tallies.searchByPhotograph, 'upload')(status, body) ? null : JSON.parse(body).uploadToken;
            },
          },
          {
            method: 'POST', path: '/graphql', headers: json,
            setupRequest: (request, context) => ({ ...request, body: JSON.stringify({ query: SEARCH_BY_PHOTOGRAPH, variables: { input: { uploadToken: context.token ?? 'upl_missing', k: 10, filters: next() < 0.5 ? null : { drGrades: [Math.floor(next() * 5)] } } } }) }),
            onResponse: check(tallies.searchByPhotograph, 'search'),
          },
        ],
      }),
      runOperation({
        baseUrls,
        tally: tallies.ingest,
        clients: mix.ingest,
        requests: [
          {
            method: 'POST', path: '/uploads', headers: { 'content-type': 'image/jpeg', authorization },
            setupRequest: (request, context) => {
              context.serial = (ingestSerial += 1);
              return { ...request, body: withComment(ingestBase, `load ${runId} ${context.serial}`) };
            },
            onResponse: (status, body, context) => {
              context.token = check(tallies.ingest, 'upload')(status, body) ? null : JSON.parse(body).uploadToken;
            },
          },
          {
            method: 'POST', path: '/graphql', headers: json,
            setupRequest: (request, context) => ({
              ...request,
              body: JSON.stringify({ query: INGEST, variables: { input: { uploadToken: context.token ?? 'upl_missing', dataset: 'load', patient: { mrn: `LOAD-${runId}-${context.serial}`, mrnSystem: 'urn:oid:1.2.3.4.77', birthYear: 1950 + (context.serial % 50) }, visitDate: '2024-06-01', eye: context.serial % 2 ? 'LEFT' : 'RIGHT', grading: { drGrade: context.serial % 5 } } } }),
            }),
            onResponse: (status, body) => {
              if (check(tallies.ingest, 'ingestCase')(status, body)) return;
              if (JSON.parse(body).data?.ingestCase?.status === 'ADDED') tallies.ingest.acknowledged += 1;
            },
          },
        ],
      }),
    ]);
    const elapsed = (Date.now() - started) / 1000;
    clearInterval(sampler);
    const endRss = rssOfApis();
    const apiCpuSeconds = cpuOfApis() - cpuBefore;
    const databaseBackends = stopSampling ? await stopSampling() : null;
    for (const [key, result] of Object.entries({ searchByCase: results[0], searchByPhotograph: results[1], ingest: results[2] })) {
      if (!result) continue;
      // autocannon's own counts: timeouts and non-2xx, besides what onResponse saw in the bodies.
      if (result.timeouts) recordError(tallies[key], `${result.timeouts} timeouts`);
    }
    // The audit log's group commit and the rate limit's leases in each process (/readyz's counters).
    const audit = { inserts: 0, requests: 0 };
    const rateLimit = { storeCalls: 0, admitted: 0 };
    const searchShards = sharded ? { shardSearches: 0, withQueued: 0, primaryFallbacks: 0 } : null;
    for (const one of servers) {
      const { counters } = await (await fetch(`${one.baseUrl}/readyz`)).json();
      if (searchShards) for (const key of Object.keys(searchShards)) searchShards[key] += counters.searchShards?.[key] ?? 0;
      audit.inserts += counters.audit.inserts;
      audit.requests += counters.audit.requests;
      rateLimit.storeCalls += counters.rateLimit?.storeCalls ?? 0;
      rateLimit.admitted += counters.rateLimit?.admitted ?? 0;
    }
    for (const one of servers.splice(0)) await one.stop();
    const stored = await countIngested(scratch.env);
    const operations = Object.entries(tallies).filter(([key]) => mix[key] > 0).map(([key, tally]) => ({
      operation: tally.name,
      clients: mix[key],
      completed: tally.completed,
      errors: tally.errors,
      errorExamples: tally.errorExamples,
      perSecond: Number((tally.completed / elapsed).toFixed(1)),
      latencyMs: Object.fromEntries(Object.entries(tally.latencies).map(([step, values]) => {
        const sorted = [...values].sort((a, b) => a - b);
        return [step, { requests: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) }];
      })),
    }));
    const requests = Object.values(tallies).reduce((sum, tally) => sum + Object.values(tally.latencies).reduce((n, values) => n + values.length, 0), 0);
    return {
      database: variant,
      apiProcesses,
      cases: caseIds.length,
      seedSeconds: Number(seeded.seconds.toFixed(1)),
      seconds: Number(elapsed.toFixed(1)),
      operations,
      ingest: { acknowledged: tallies.ingest.acknowledged, stored, lost: tallies.ingest.acknowledged - Math.min(stored, tallies.ingest.acknowledged) },
      // Summed over the API processes (utilisation: cores' worth).
      ...(shardScratch ? { shards: { nodes: shardScratch.urls.length, attached: shardScratch.projected, ...searchShards } } : {}),
      apiCpu: { seconds: Number(apiCpuSeconds.toFixed(1)), msPerRequest: Number(((apiCpuSeconds * 1000) / Math.max(requests, 1)).toFixed(1)), utilisation: Number((apiCpuSeconds / elapsed).toFixed(2)) },
      databaseBackends,
      // The warm-up requests are counted too (the rows are seeded straight into the database, not through the API).
      auditRequestsPerInsert: audit.inserts ? Number((audit.requests / audit.inserts).toFixed(2)) : null,
      // Null on PGlite, whose count stays in the process's memory.
      requestsPerRateLimitUpdate: rateLimit.storeCalls ? Number((rateLimit.admitted / rateLimit.storeCalls).toFixed(2)) : null,
      apiRssMiB: { idle: idleRss && Math.round(idleRss), peak: rss.length ? Math.round(Math.max(...rss)) : null, end: endRss && Math.round(endRss) },
      apiWarnings: output.filter((line) => /"level":(40|50|60)/.test(line)).slice(0, 5),
    };
  } finally {
    for (const one of servers) await one.stop();
    await shardScratch?.drop();
    await scratch.drop();
    fs.rmSync(keyDir, { recursive: true, force: true });
  }
}

const report = { connections: mix.searchByCase + mix.searchByPhotograph + mix.ingest, mix, durationSeconds, model: path.relative(root, modelPath), cpus: os.cpus().length, results: [] };
for (const kind of backends) {
  console.error(`[load] ${kind}: seeding the demo cohort, then ${durationSeconds} s of load`);
  report.results.push(await runBackend(kind));
}
console.log(JSON.stringify(report, null, 2));
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2));

// One markdown table for bench/README.md.
const rows = [];
for (const result of report.results) {
  if (result.skipped) {
    rows.push(`| ${result.database} | skipped: ${result.skipped} |`);
    continue;
  }
  for (const operation of result.operations) {
    for (const [step, latency] of Object.entries(operation.latencyMs)) {
      rows.push(`| ${result.database} | ${operation.operation} | ${step} | ${operation.clients} | ${operation.completed} | ${operation.errors} | ${operation.perSecond} | ${latency.p50} | ${latency.p95} | ${latency.p99} |`);
    }
  }
}
console.error(['| database | operation | request | clients | operations | errors | operations/s | p50 ms | p95 ms | p99 ms |', '|---|---|---|---|---|---|---|---|---|---|', ...rows].join('\n'));
for (const result of report.results.filter((r) => !r.skipped)) {
  console.error(`${result.database}: API CPU ${result.apiCpu.msPerRequest} ms a request (${result.apiCpu.utilisation} of a core); PostgreSQL backends on average: ${JSON.stringify(result.databaseBackends)}`);
  console.error(`${result.database}: audit log, requests per INSERT: ${result.auditRequestsPerInsert}; rate limit, requests per counter update: ${result.requestsPerRateLimitUpdate}`);
  if (result.shards) console.error(`${result.database}: shards ${JSON.stringify(result.shards)}`);
  console.error(`${result.database}: API RSS idle ${result.apiRssMiB.idle} MiB, peak ${result.apiRssMiB.peak} MiB, end ${result.apiRssMiB.end} MiB; ingest acknowledged ${result.ingest.acknowledged}, stored ${result.ingest.stored}, lost ${result.ingest.lost}`);
}
if (report.results.some((result) => result.operations?.some((operation) => operation.errors > 0) || result.ingest?.lost > 0)) process.exitCode = 1;
