// Benchmark: what authentication, policy and audit add to a search by case id at N stored cases (default 10 000),
// measured side by side in one run: two API servers on the same database, one as shipped (JWT verified with jose,
// policy asked, one chained audit row written before the response) and one baseline without authentication or
// audit rows (createServer's insecureBaselineForBenchmarks; the policy lookup, an in-memory table, runs in both).
// Requests alternate between the two, so drift and noise hit both alike. Target (issue 10): at most 2 ms added at
// p95 on PostgreSQL.
//
//   npm run build && DATABASE_URL=postgresql://... node bench/auth-overhead.mjs [--cases 10000] [--requests 400]
//   npm run build && node bench/auth-overhead.mjs            # the embedded PGlite database
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';

const caseCount = Number(option('cases', 10_000));
const requestCount = Number(option('requests', 400));

const [{ loadConfig }, { openDatabase }, { createServer }, { createLogger }, { DEMO_USERS }] = await Promise.all([
  api('config.js'), api('db/database.js'), api('server.js'), api('logger.js'), api('auth/local-issuer.js'),
]);

const scratchDatabase = await createScratchEnvironment();
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-bench-keys-'));
const config = loadConfig({ ...process.env, ...scratchDatabase.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', AUTH_LOCAL_ISSUER: 'true', AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '1000000' });
const db = await openDatabase(config);
const modelVersion = 'bench-auth+w00000000';
await seedSyntheticCases(db, { caseCount, modelVersion, dimension: 128 });
const [{ id: queryId }] = await db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
const imageIds = (await db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 50')).map((row) => row.id);

const logger = createLogger('warn');
const secured = await createServer({ ...config, searchModelVersion: modelVersion }, { database: db, logger, embedder: null });
const baseline = await createServer({ ...config, searchModelVersion: modelVersion }, { database: db, logger, embedder: null, insecureBaselineForBenchmarks: true });
const securedRunning = await secured.listen(0, '127.0.0.1');
const baselineRunning = await baseline.listen(0, '127.0.0.1');
const token = await secured.localIssuer.sign(DEMO_USERS.find((user) => user.role === 'clinician'));
const query = 'query S($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank similarity case { id patient { mrn } referenceGrading { drGrade } treatments { type } } } } }';

async function searchOnce(url, headers, imageId) {
  const t0 = performance.now();
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables: { input: { imageId, k: 10 } } }) });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return performance.now() - t0;
}

const targets = [
  { name: 'baseline (no authentication, no audit)', url: baselineRunning.url, headers: {}, times: [] },
  { name: 'as shipped (JWT + policy + audit row)', url: securedRunning.url, headers: { authorization: `Bearer ${token}` }, times: [] },
];
for (let index = 0; index < 20; index += 1) for (const target of targets) await searchOnce(target.url, target.headers, imageIds[index % imageIds.length]);
for (let index = 0; index < requestCount; index += 1) {
  // Alternate which server goes first, so neither always meets a warmer cache.
  const order = index % 2 === 0 ? targets : [...targets].reverse();
  for (const target of order) target.times.push(await searchOnce(target.url, target.headers, imageIds[index % imageIds.length] ?? queryId));
}
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const summary = targets.map((target) => ({ name: target.name, p50: quantile(target.times, 0.5), p95: quantile(target.times, 0.95) }));
const [auditRows] = await db.sql.query('SELECT count(*)::int AS n FROM audit_event');
const result = {
  database: db.kind,
  cases: caseCount,
  requestsEach: requestCount,
  p50Ms: Object.fromEntries(summary.map((entry) => [entry.name, Number(entry.p50.toFixed(2))])),
  p95Ms: Object.fromEntries(summary.map((entry) => [entry.name, Number(entry.p95.toFixed(2))])),
  addedP50Ms: Number((summary[1].p50 - summary[0].p50).toFixed(2)),
  addedP95Ms: Number((summary[1].p95 - summary[0].p95).toFixed(2)),
  ratioP95: Number((summary[1].p95 / summary[0].p95).toFixed(3)),
  auditRowsWritten: auditRows.n,
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
await new Promise((resolve) => secured.httpServer.close(resolve));
await new Promise((resolve) => baseline.httpServer.close(resolve));
await db.close();
await scratchDatabase.drop();
fs.rmSync(keyDir, { recursive: true, force: true });
