// The statement an API with no model loaded or pinned runs on every search to choose the model version
// (search/similar-images.ts, findNewestModelVersion): before migration 0011 an aggregate over every embedding,
// since then one step down the (created_at, model_version) index. Both texts on the same database, alternately,
// in one run. The seeded embeddings are written in one statement, so they share one timestamp: the case where a
// tie-break by a column outside the index would sort them all.
//
//   npm run build && DATABASE_URL=... node bench/newest-model-version.mjs [--cases 100000] [--runs 15]
//
// PostgreSQL: a scratch copy of DATABASE_URL's database; without it, embedded PGlite.
import { performance } from 'node:perf_hooks';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';

const caseCount = Number(option('cases', 100000));
const runs = Number(option('runs', 15));
const [{ openDatabase }, { findNewestModelVersion }] = await Promise.all([api('db/database.js'), api('search/similar-images.js')]);

const BEFORE = 'SELECT model_version FROM image_embedding GROUP BY model_version ORDER BY max(created_at) DESC, model_version LIMIT 1';

const scratch = await createScratchEnvironment();
const database = scratch.env.DATABASE_URL ? { kind: 'postgres', url: scratch.env.DATABASE_URL } : { kind: 'pglite', dataDir: scratch.env.PGLITE_DATA_DIR };
const db = await openDatabase({ database, migrationsDir: `${root}/prisma/migrations` });
try {
  const seeding = performance.now();
  await seedSyntheticCases(db, { caseCount, modelVersion: 'bench-v1', dimension: 128 });
  console.error(`seeded ${caseCount} cases in ${((performance.now() - seeding) / 1000).toFixed(1)} s (${database.kind})`);
  const times = { before: [], now: [] };
  for (let run = 0; run < runs; run += 1) {
    let start = performance.now();
    const [old] = await db.sql.query(BEFORE);
    times.before.push(performance.now() - start);
    start = performance.now();
    const current = await findNewestModelVersion(db.prisma);
    times.now.push(performance.now() - start);
    if (old.model_version !== current) throw new Error(`the two statements disagree: ${old.model_version} against ${current}`);
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const result = { database: database.kind, cases: caseCount, runs, medianMs: { aggregate: median(times.before), createdAtIndex: median(times.now) } };
  result.ratio = result.medianMs.aggregate / result.medianMs.createdAtIndex;
  console.log(JSON.stringify(result, null, 2));
} finally {
  await db.close();
  await scratch.drop();
}
