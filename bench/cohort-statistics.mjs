// Benchmark: cohortStatistics through the real HTTP API as a researcher — every table plus one Kaplan-Meier curve
// (time to a one-step worsening) — at a given cohort size. Target (issue 11): p95 <= 300 ms on PostgreSQL at
// 100k patients and 400k visits; the embedded database is measured at demo size.
//
//   npm run build && source .ci/env && DATABASE_URL=$TEST_DATABASE_URL node bench/cohort-statistics.mjs --patients 100000 --visits-per-patient 4
//   npm run build && node bench/cohort-statistics.mjs --patients 120 --visits-per-patient 4      # PGlite, demo size
//
// The patients are synthetic rows written in bulk by SQL (bench/seed-cohort.mjs): yearly visits with a graded
// photograph of each eye, grades that worsen at random, HbA1c readings and anti-VEGF injections for PDR eyes.
// Requests cycle through a few distinct filters (all, women, type 2 diabetes, baseline grade 1-3), each repeated:
// a repeat of the same cohort is allowed by differencing control.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { seedLongitudinalCohort } from './seed-cohort.mjs';

const patients = Number(option('patients', 100_000));
const visitsPerPatient = Number(option('visits-per-patient', 4));
const requestCount = Number(option('requests', 40));
// --distinct: every request a new cohort (minimum diabetes duration 0, 1, 2, ... years), so each one is compared
// with the remembered ones and stored; without it four cohorts repeat and repeats skip that work.
const distinct = process.argv.includes('--distinct');

const [{ loadConfig }, { openDatabase }, { createServer }, { createLogger }, { DEMO_USERS }] = await Promise.all([
  api('config.js'), api('db/database.js'), api('server.js'), api('logger.js'), api('auth/local-issuer.js'),
]);
const scratchDatabase = await createScratchEnvironment();
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-bench-keys-'));
const config = loadConfig({ ...process.env, ...scratchDatabase.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', AUTH_LOCAL_ISSUER: 'true', AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '1000000' });
const db = await openDatabase(config);
const seedStarted = performance.now();
const seeded = await seedLongitudinalCohort(db, { patients, visitsPerPatient });
const seedSeconds = (performance.now() - seedStarted) / 1000;

const server = await createServer(config, { database: db, logger: createLogger('warn'), embedder: null });
const running = await server.listen(0, '127.0.0.1');
const token = await server.localIssuer.sign(DEMO_USERS.find((user) => user.role === 'researcher'));
const query = `query C($filter: CohortFilterInput!) { cohortStatistics(filter: $filter, timeToWorsening: { event: ONE_STEP }) {
  patients eyes
  gradeDistributions { name cells rowTotals columnTotals total suppressedCells }
  transitionMatrix { cells total }
  treatments { counts { cells } injectionsPerPatientYear { n median lowerQuartile upperQuartile } }
  hba1cByGrade { group n median lowerQuartile upperQuartile }
  timeToWorsening { curves { stratum eyes steps { time survival lower upper } numbersAtRisk { time atRisk } censorTimes } }
} }`;
const filters = [{}, { sexes: ['FEMALE'] }, { diabetesTypes: ['TYPE_2'] }, { drGrades: [1, 2, 3] }];

async function once(filter) {
  const t0 = performance.now();
  const response = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables: { filter } }) });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return { ms: performance.now() - t0, patients: body.data.cohortStatistics.patients, steps: body.data.cohortStatistics.timeToWorsening.curves[0]?.steps.length ?? 0 };
}
for (const filter of filters) await once(filter);
const times = [];
let last;
for (let index = 0; index < requestCount; index += 1) {
  last = await once(distinct ? { diabetesDurationMinYears: index } : filters[index % filters.length]);
  times.push(last.ms);
}
times.sort((a, b) => a - b);
const at = (q) => Number(times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(1));
process.stdout.write(`${JSON.stringify({ database: db.kind, ...seeded, seedSeconds: Number(seedSeconds.toFixed(1)), requests: requestCount, cohorts: distinct ? 'distinct' : 'four, repeated', p50Ms: at(0.5), p95Ms: at(0.95), maxMs: at(1), targetP95Ms: 300 }, null, 2)}\n`);
await new Promise((resolve) => server.httpServer.close(resolve));
await db.close();
await scratchDatabase.drop();
fs.rmSync(keyDir, { recursive: true, force: true });
