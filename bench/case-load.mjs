// The cost of loading a page of cases (case.service.ts, loadCases) as the search path does, in the API process
// and in PostgreSQL, optionally side by side with another build's: one client, demo cohort, a random page of
// `--k` cases a load with the parts the load benchmark's search by case selects (own gradings and treatments).
// Rounds alternate the builds (ABBA), so drift in the machine's speed falls on both.
//   source .ci/env && DATABASE_URL=$TEST_DATABASE_URL node bench/case-load.mjs [--baseline ../old/apps/api/dist]
//     [--loads 300] [--rounds 10] [--k 11]
// PostgreSQL's CPU is the utime + stime of every `postgres` process on this machine (/proc), so it needs the server
// on this machine and nothing else using it; it is null where /proc cannot be read.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createTestDatabase } from '../test/support/backends.mjs';
import { median, option, root } from './cli.mjs';

if (!process.env.DATABASE_URL) throw new Error('bench/case-load.mjs measures PostgreSQL: set DATABASE_URL (source .ci/env && DATABASE_URL=$TEST_DATABASE_URL ...)');
const loads = Number(option('loads', '300'));
const rounds = Number(option('rounds', '10'));
const k = Number(option('k', '11'));
const baselineDist = option('baseline', null);
const parts = { followUpGradings: false, diagnoses: false, treatments: true, hba1cReadings: false, externalLinks: false };

const fromDist = (dist) => (file) => import(path.resolve(dist, file));
const current = fromDist(path.join(root, 'apps', 'api', 'dist'));
const database = await createTestDatabase('postgres', { templateUrl: process.env.DATABASE_URL });
try {
  const [cohort, seed, caseService] = await Promise.all([current('fixtures/cohort.js'), current('fixtures/seed.js'), current('modules/case/case.service.js')]);
  await seed.loadCohort(database.db, cohort.buildCohort('demo-clinic'));
  const builds = [{ name: 'this build', loadCases: caseService.loadCases, prisma: database.db.prisma, close: async () => {} }];
  if (baselineDist) {
    const baseline = fromDist(path.resolve(baselineDist));
    const db = await (await baseline('db/database.js')).openDatabase({ database: { kind: 'postgres', url: database.config.url }, migrationsDir: path.join(root, 'prisma', 'migrations') });
    builds.push({ name: 'baseline', loadCases: (await baseline('modules/case/case.service.js')).loadCases, prisma: db.prisma, close: () => db.close() });
  }
  const ids = (await database.db.sql.query('SELECT id::text AS id FROM fundus_image')).map((row) => row.id);
  const page = () => Array.from({ length: k }, () => ids[Math.floor(Math.random() * ids.length)]);
  const postgresTicks = () => {
    try {
      return execFileSync('pgrep', ['-x', 'postgres']).toString().trim().split('\n').reduce((sum, pid) => {
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return sum + Number(fields[11]) + Number(fields[12]);
      }, 0);
    } catch {
      return null;
    }
  };
  const ticksPerMs = 100 / 1000; // USER_HZ
  const results = builds.map((build) => ({ build: build.name, rounds: [] }));
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    for (const build of order) {
      for (let warm = 0; warm < 30; warm += 1) await build.loadCases(build.prisma, page(), parts);
      const started = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      const ticks = postgresTicks();
      for (let index = 0; index < loads; index += 1) await build.loadCases(build.prisma, page(), parts);
      const used = process.cpuUsage(cpu);
      const ticksAfter = postgresTicks();
      results[builds.indexOf(build)].rounds.push({
        wallMs: Number(process.hrtime.bigint() - started) / 1e6 / loads,
        apiCpuMs: (used.user + used.system) / 1000 / loads,
        postgresCpuMs: ticks === null || ticksAfter === null ? null : (ticksAfter - ticks) / ticksPerMs / loads,
      });
    }
  }
  const round3 = (value) => (value === null ? null : Math.round(value * 1000) / 1000);
  const summary = results.map(({ build, rounds: measured }) => ({
    build,
    medianWallMs: round3(median(measured.map((r) => r.wallMs))),
    medianApiCpuMs: round3(median(measured.map((r) => r.apiCpuMs))),
    medianPostgresCpuMs: measured.some((r) => r.postgresCpuMs === null) ? null : round3(median(measured.map((r) => r.postgresCpuMs))),
  }));
  const ratios = baselineDist
    ? {
        // Per round, this build over the baseline; the median of those.
        apiCpu: round3(median(results[0].rounds.map((r, i) => r.apiCpuMs / results[1].rounds[i].apiCpuMs))),
        postgresCpu: summary.some((s) => s.medianPostgresCpuMs === null) ? null : round3(median(results[0].rounds.map((r, i) => r.postgresCpuMs / results[1].rounds[i].postgresCpuMs))),
        wall: round3(median(results[0].rounds.map((r, i) => r.wallMs / results[1].rounds[i].wallMs))),
      }
    : null;
  console.log(JSON.stringify({ k, loads, rounds, parts, summary, ratios, perRound: results }, null, 2));
  await Promise.all(builds.map((build) => build.close()));
} finally {
  await database.drop();
}
process.exit(0);
