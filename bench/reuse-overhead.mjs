// Benchmark: what the CBR reuse step (similarCases.suggestion: the calibrated vote, the hits' grades and outcomes,
// and the suggestion_log row) adds to a similar-case search at N stored cases (default 10 000), side by side in
// one run: every query is sent with and without the suggestion selected, alternately, through the real HTTP API.
// Target (issue 13): at most 10 ms added at p95.
//
//   npm run build && node bench/reuse-overhead.mjs [--cases 10000] [--requests 40]
//
// Searches by stored case (no ONNX work, which the reuse step does not touch). The cases are bench/seed-cases.mjs's
// synthetic rows, embedded under the model version of models/fundus-cbr.reuse.json so suggestions are calibrated
// (the production path). Scenarios: k = 10 (the vote of the calibration's 15 neighbours needs a second, graded
// search), k = 20 (the hits already hold the vote), and k = 10 under a grade filter (a second, unfiltered search).
// Uses a fresh embedded PGlite database, or a scratch copy of DATABASE_URL's database (bench/scratch-database.mjs).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';

const caseCount = Number(option('cases', 10_000));
const requestCount = Number(option('requests', 40));
const calibration = JSON.parse(fs.readFileSync(path.join(root, 'models/fundus-cbr.reuse.json'), 'utf8'));

const [{ loadConfig }, { openDatabase }, { createServer }, { createLogger }] = await Promise.all([api('config.js'), api('db/database.js'), api('server.js'), api('logger.js')]);
const scratchDatabase = await createScratchEnvironment();
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-bench-keys-'));
const config = loadConfig({ ...process.env, ...scratchDatabase.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', AUTH_LOCAL_ISSUER: 'true', AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '1000000' });
const db = await openDatabase(config);
await seedSyntheticCases(db, { caseCount, modelVersion: calibration.modelVersion, dimension: 128 });
const server = await createServer(config, { database: db, logger: createLogger('warn'), embedder: null });
const running = await server.listen(0, '127.0.0.1');
const { DEMO_USERS } = await api('auth/local-issuer.js');
const authorization = `Bearer ${await server.localIssuer.sign(DEMO_USERS.find((user) => user.role === 'clinician'))}`;

const queryIds = (await db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 16')).map((row) => row.id);
const HITS = 'hits { rank similarity case { id patient { mrn } referenceGrading { drGrade } treatments { type } followUp { gradings { drGrade visitDate } treatments { type } } } }';
const SUGGESTION = 'suggestion { id status suggestedGrade gradeProbabilities { grade probability } referableProbability hitGrades { grade count } outcomes { treatedAfter worsening { years followedUp worsened } } }';
const queries = {
  without: `query S($input: SimilarCasesInput!) { similarCases(input: $input) { ${HITS} } }`,
  with: `query S($input: SimilarCasesInput!) { similarCases(input: $input) { ${HITS} ${SUGGESTION} } }`,
};
const scenarios = { 'k=10': { k: 10 }, 'k=20': { k: 20 }, 'k=10, grade 4 only': { k: 10, filters: { drGrades: [4] } } };

// Wall time, and the CPU time of this process over the request: with PGlite the database runs in this process,
// so CPU time is the request's whole cost and, unlike wall time, barely moves when other jobs load the machine.
async function searchOnce(variant, input) {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const response = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ query: queries[variant], variables: { input } }) });
  const body = await response.json();
  if (body.errors || body.data.similarCases.hits.length !== input.k) throw new Error(JSON.stringify(body.errors ?? body).slice(0, 300));
  if (variant === 'with' && body.data.similarCases.suggestion.status !== 'SUGGESTED' && body.data.similarCases.suggestion.status !== 'ABSTAINED') throw new Error(`uncalibrated: ${JSON.stringify(body.data.similarCases.suggestion)}`);
  const cpu = process.cpuUsage(cpu0);
  return { wall: performance.now() - t0, cpu: (cpu.user + cpu.system) / 1000 };
}

for (let warm = 0; warm < 6; warm += 1) for (const variant of ['without', 'with']) await searchOnce(variant, { imageId: queryIds[warm % queryIds.length], k: 10 });
const timings = Object.fromEntries(Object.keys(scenarios).map((name) => [name, { without: [], with: [] }]));
for (let index = 0; index < requestCount; index += 1) {
  for (const [name, scenario] of Object.entries(scenarios)) {
    const input = { imageId: queryIds[index % queryIds.length], ...scenario };
    // Alternate which variant goes first, so neither always follows the other's cache effects.
    const order = index % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
    for (const variant of order) timings[name][variant].push(await searchOnce(variant, input));
  }
}
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)];
const round = (value) => Number(value.toFixed(1));
const summarise = (without, withSuggestion) => ({
  without: { p50: round(percentile(without, 50)), p95: round(percentile(without, 95)) },
  with: { p50: round(percentile(withSuggestion, 50)), p95: round(percentile(withSuggestion, 95)) },
  addedP50: round(percentile(withSuggestion, 50) - percentile(without, 50)),
  addedP95: round(percentile(withSuggestion, 95) - percentile(without, 95)),
});
const report = {
  cases: caseCount,
  database: db.kind,
  calibrationModelVersion: calibration.modelVersion,
  voteNeighbours: calibration.rule.neighbours,
  requestsPerCell: requestCount,
  loadAverage: os.loadavg().map(round),
  wallMilliseconds: Object.fromEntries(Object.entries(timings).map(([name, cell]) => [name, summarise(cell.without.map((t) => t.wall), cell.with.map((t) => t.wall))])),
  // With PostgreSQL the database's CPU is another process's: only the wall times count there.
  ...(db.kind === 'pglite' ? { cpuMilliseconds: Object.fromEntries(Object.entries(timings).map(([name, cell]) => [name, summarise(cell.without.map((t) => t.cpu), cell.with.map((t) => t.cpu))])) } : {}),
  targetAddedP95Ms: 10,
};
console.log(JSON.stringify(report, null, 2));
await new Promise((resolve) => server.httpServer.close(resolve));
await running.close();
await db.close();
await scratchDatabase.drop();
fs.rmSync(keyDir, { recursive: true, force: true });
