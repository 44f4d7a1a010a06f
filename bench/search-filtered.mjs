// Benchmark: filtered similar-case search at 100k-1M cases, the approximate path (per-grade partial HNSW indexes,
// iterative scans) against the exact path, through searchSimilarImages (apps/api/src/search/similar-images.ts).
//
//   npm run build && nice -n 10 npm run bench:search -- [--cases 100000] [--queries 100] [--ef 100,200,400,800]
//       [--sets srahim,eyepacs-raw,idrid,mexico]
//       [--embeddings DIR] [--max-scan-tuples 20000] [--upkeep-rows 200] [--data ../shared/data] [--keep]
//       [--rebuild ivfflat|hnsw] [--compare]
//   Again on a kept database, searches only: DATABASE_URL=<the kept one> npm run bench:search -- --cases N --existing
//   PostgreSQL: source .ci/env && DATABASE_URL=$TEST_DATABASE_URL nice -n 10 npm run bench:search -- --cases 1000000
//
// Cases cluster like real ones: each is a real photograph's embedding by the shipped model (../shared/data: the
// four sets photographed as is, 1,786 photographs, unless --sets names others) of the case's grade plus Gaussian noise whose
// norm is the median distance from a real embedding to its nearest real neighbour of the same grade, renormalised.
// Grades at EyePACS prevalence (Kaggle 2015 training labels: 73.5 / 7.0 / 15.1 / 2.5 / 2.0 %), two eyes a
// patient, birth years 1935-1994, visits 2016-2024. The real embeddings are computed once by the evaluate CLI
// (`--dump-embeddings`) into a cache outside the repository (--embeddings, default <tmp>/fundus-cbr-bench-
// embeddings/<model version>). Queries are fresh samples of the same mixture (an upload: not stored).
//
// Loading: COPY (pg-copy-streams on PostgreSQL, /dev/blob on PGlite), with the HNSW indexes of migration 0007
// dropped first and then rebuilt from their own definitions, timed: that is the index build time. For each filter
// and each ef_search, every query runs the exact path (the ground truth, also timed) and the approximate path;
// recall@10 = |approximate ∩ exact| / |exact|; latencies are wall time around searchSimilarImages (Prisma, one
// query at a time), and for the shipped settings also the database's own planning + execution time. Writes into a fresh PGlite directory or a scratch copy of
// DATABASE_URL's database (bench/scratch-database.mjs), dropped afterwards.
//
// --rebuild KIND: after the load (or on the --existing database), every grade's index is rebuilt as KIND through
// the vector-index command's service (search/vector-indexes.ts: IVFFlat lists from the grade's rows), timed and
// sized (`rebuild`), before the searches. --compare: the searches also run before the rebuild, on the indexes the
// database had (`millisecondsBefore`), against the same exact results, so both index kinds are measured in one run.
// `--ef none` runs the shipped settings only.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { loadRealMixture } from './real-mixture.mjs';

const caseCount = Number(option('cases', 100_000));
const queryCount = Number(option('queries', 100));
const efOption = String(option('ef', '100,200,400,800'));
const efValues = efOption === 'none' ? [] : efOption.split(',').map(Number);
const rebuildKind = option('rebuild', null);
const compare = process.argv.includes('--compare');
const maxScanTuples = Number(option('max-scan-tuples', 20_000));
const dataDir = path.resolve(root, option('data', '../shared/data'));
const modelPath = path.resolve(root, option('model', 'models/fundus-cbr.onnx'));
const SETS = String(option('sets', 'srahim,eyepacs-raw,idrid,mexico')).split(',');
const K = 10;

const [{ loadConfig }, { openDatabase }, search, { Prisma }, vectorIndexes] = await Promise.all([
  api('config.js'), api('db/database.js'), api('search/similar-images.js'), api('generated/prisma/client.js'), api('search/vector-indexes.js'),
]);
if (rebuildKind !== null) vectorIndexes.parseKind(rebuildKind);

// ---- real embeddings (cached outside the repository) and the mixture around them: bench/real-mixture.mjs
const { modelVersion, realByGrade, noiseNorm, random, sampleGrade, sampleEmbedding } = await loadRealMixture({
  dataDir, modelPath, sets: SETS, cacheDir: option('embeddings', null),
});
const uuid = (kind, index) => `${kind}0000000-0000-4000-8000-${index.toString(16).padStart(12, '0')}`;
const hash = (index) => index.toString(16).padStart(64, '0');

// ---- database
// --existing: DATABASE_URL is a database this benchmark left with --keep (same --cases): the searches run again on
// it without loading or building anything, so a quiet window can be spent on the latencies alone.
const existing = process.argv.includes('--existing');
if (existing && !process.env.DATABASE_URL) throw new Error('--existing needs DATABASE_URL: the database a --keep run left');
const scratch = existing ? { env: {}, drop: async () => {} } : await createScratchEnvironment();
const config = loadConfig({ ...process.env, ...scratch.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn' });
const migrated = await openDatabase(config); // applies the migrations, 0007's indexes included
const indexDefinitions = await migrated.sql.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'image_embedding' AND indexdef LIKE '%USING hnsw%' ORDER BY indexname");
await migrated.close();
if (indexDefinitions.length === 0) throw new Error('no HNSW index in the migrations');

/** One way to run SQL and COPY on either database, outside the API's pool (bulk work only). */
async function openLoader() {
  if (config.database.kind === 'postgres') {
    const client = new pg.Client({ connectionString: config.database.url });
    await client.connect();
    return {
      exec: (sql) => client.query(sql),
      query: async (sql) => (await client.query(sql)).rows,
      copy: (table, columns, chunks) => pipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN WITH (FORMAT csv)`))),
      close: () => client.end(),
    };
  }
  const [{ PGlite }, { vector }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-pgvector')]);
  const db = await PGlite.create(config.database.dataDir, { extensions: { vector } });
  return {
    exec: (sql) => db.exec(sql),
    query: async (sql) => (await db.query(sql)).rows,
    copy: async (table, columns, chunks) => {
      const parts = [];
      for (const chunk of chunks()) parts.push(chunk);
      await db.query(`COPY ${table} (${columns}) FROM '/dev/blob' WITH (FORMAT csv)`, [], { blob: new Blob(parts) });
    },
    close: () => db.close(),
  };
}

const loader = await openLoader();
const grades = new Uint8Array(caseCount);
let loadSeconds = null;
const indexBuild = {};
if (existing) {
  const [{ n }] = await loader.query(`SELECT count(*)::int AS n FROM image_embedding WHERE model_version = '${modelVersion}'`);
  if (n < caseCount) throw new Error(`--existing: the database holds ${n} embeddings of ${modelVersion}, fewer than --cases ${caseCount}`);
} else {
const loadStarted = performance.now();
const patients = Math.ceil(caseCount / 2);
const CHUNK = 5_000;
await loader.exec(`${indexDefinitions.map((index) => `DROP INDEX ${index.indexname};`).join('\n')}
  ALTER TABLE fundus_image DISABLE TRIGGER USER; ALTER TABLE visit DISABLE TRIGGER USER; ALTER TABLE patient DISABLE TRIGGER USER;
  ALTER TABLE image_embedding DISABLE TRIGGER USER;
  INSERT INTO dataset (id, name, is_synthetic) VALUES ('00000000-0000-4000-8000-000000000003', 'bench-filtered', true);`);
await loader.copy('patient', 'id, dataset_id, mrn, mrn_system, birth_year, sex', function* () {
  for (let start = 0; start < patients; start += CHUNK) {
    let text = '';
    for (let i = start; i < Math.min(patients, start + CHUNK); i += 1) {
      text += `${uuid(1, i)},00000000-0000-4000-8000-000000000003,BF-${i},urn:bench:filtered,${1935 + Math.floor(random() * 60)},${random() < 0.5 ? 'FEMALE' : 'MALE'}\n`;
    }
    yield text;
  }
});
await loader.exec(`
  INSERT INTO visit (id, patient_id, visit_date)
    SELECT ('20000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, ('10000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
           DATE '2016-01-01' + ((hashtext(g::text) & 2047) * 3 / 2)
    FROM generate_series(0, ${patients - 1}) g;
  INSERT INTO image_blob (sha256, mime_type, byte_size, bytes) SELECT lpad(to_hex(g), 64, '0'), 'image/jpeg', 1, '\\x00'::bytea FROM generate_series(0, ${caseCount - 1}) g;`);
for (let i = 0; i < caseCount; i += 1) grades[i] = sampleGrade();
await loader.copy('fundus_image', 'id, visit_id, patient_id, eye, content_hash, width, height, dr_grade', function* () {
  for (let start = 0; start < caseCount; start += CHUNK) {
    let text = '';
    for (let i = start; i < Math.min(caseCount, start + CHUNK); i += 1) {
      const patient = Math.floor(i / 2);
      text += `${uuid(3, i)},${uuid(2, patient)},${uuid(1, patient)},${i % 2 ? 'RIGHT' : 'LEFT'},${hash(i)},1024,768,${grades[i]}\n`;
    }
    yield text;
  }
});
// The grade copy is written here as the migration's trigger would (triggers are off for the bulk load).
await loader.copy('image_embedding', 'image_id, model_version, embedding, dr_grade', function* () {
  for (let start = 0; start < caseCount; start += CHUNK) {
    let text = '';
    for (let i = start; i < Math.min(caseCount, start + CHUNK); i += 1) {
      text += `${uuid(3, i)},${modelVersion},"[${Array.from(sampleEmbedding(grades[i]), (x) => x.toFixed(6)).join(',')}]",${grades[i]}\n`;
    }
    yield text;
  }
});
await loader.exec(`ALTER TABLE fundus_image ENABLE TRIGGER USER; ALTER TABLE visit ENABLE TRIGGER USER; ALTER TABLE patient ENABLE TRIGGER USER;
  ALTER TABLE image_embedding ENABLE TRIGGER USER; ANALYZE;`);
loadSeconds = (performance.now() - loadStarted) / 1000;

// The eye_summary triggers were off: its rows are not needed by search and are left empty.
await loader.exec(`SET maintenance_work_mem = '${config.database.kind === 'postgres' ? '1GB' : '256MB'}'; SET max_parallel_maintenance_workers = 1;`);
for (const index of indexDefinitions) {
  const started = performance.now();
  await loader.exec(index.indexdef);
  const [size] = await loader.query(`SELECT pg_relation_size('${index.indexname}')::float8 AS bytes`);
  indexBuild[index.indexname] = { seconds: +((performance.now() - started) / 1000).toFixed(1), megabytes: +(size.bytes / 2 ** 20).toFixed(1) };
}
await loader.exec('ANALYZE image_embedding;');
}
const [tableSize] = await loader.query("SELECT pg_total_relation_size('image_embedding')::float8 AS bytes, (SELECT count(*) FROM image_embedding)::int AS rows");
const gradeCounts = await loader.query('SELECT dr_grade, count(*)::int AS n FROM image_embedding GROUP BY dr_grade ORDER BY dr_grade');
await loader.close();

// ---- searches through the API's own module and Prisma client
const db = await openDatabase(config);
const queries = Array.from({ length: queryCount }, () => sampleEmbedding(sampleGrade()));
const noFilters = { drGrades: [], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };
const scenarios = [
  ['no filter', noFilters],
  ...[0, 1, 2, 3, 4].map((grade) => [`grade ${grade}`, { ...noFilters, drGrades: [grade] }]),
  ['grades 3+4', { ...noFilters, drGrades: [3, 4] }],
  ['grade 0 + left eye + age 50-69', { ...noFilters, drGrades: [0], eye: 'LEFT', ageMin: 50, ageMax: 69 }],
  ['grade 2 + right eye + age 40-59', { ...noFilters, drGrades: [2], eye: 'RIGHT', ageMin: 40, ageMax: 59 }],
  ['grade 4 + left eye + age 50-69', { ...noFilters, drGrades: [4], eye: 'LEFT', ageMin: 50, ageMax: 69 }],
];
const request = (vector, filters, mode) => ({ modelVersion, query: { vector, contentHash: 'f'.repeat(64) }, k: K, filters, excludePatientId: null, mode });
const timed = async (fn) => {
  const started = performance.now();
  const value = await fn();
  return [performance.now() - started, value];
};
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)];
const round = (value, digits = 2) => Number(value.toFixed(digits));

for (let warm = 0; warm < 20; warm += 1) {
  await search.searchSimilarImages(db.prisma, request(queries[warm % queries.length], scenarios[warm % scenarios.length][1], 'APPROXIMATE'));
}
// The ground truth once per scenario and query: the exact path's hits and time, shared by both index sets.
const truths = {};
for (const [name, filters] of scenarios) {
  truths[name] = [];
  for (const vector of queries) {
    const [ms, exact] = await timed(() => search.searchSimilarImages(db.prisma, request(vector, filters, 'EXACT')));
    truths[name].push({ ms, ids: new Set(exact.map((hit) => hit.imageId)) });
  }
  const exactPlan = (await db.prisma.$queryRaw(Prisma.sql`EXPLAIN ${search.exactSearchSql(request(queries[0], filters, 'EXACT'))}`)).map((row) => row['QUERY PLAN']).join('\n');
  if (/hnsw|ivfflat/.test(exactPlan)) throw new Error(`the exact statement scans a vector index under "${name}": the ground truth would be approximate`);
}

async function measureScenarios(label) {
  const results = {};
  for (const [name, filters] of scenarios) {
    const exactMs = truths[name].map((truth) => truth.ms);
    // 'shipped': the default tuning (one statement on the session's settings, or SET LOCAL of the grade-filtered
    // ef_search where a filtered grade still has an HNSW graph); each ef: that ef_search for every search, SET
    // LOCAL in a transaction.
    const variants = ['shipped', ...efValues];
    const perEf = Object.fromEntries(variants.map((ef) => [ef, { ms: [], recall: [], short: 0 }]));
    for (const [index, vector] of queries.entries()) {
      const truth = truths[name][index].ids;
      for (const ef of variants) {
        const tuning = ef === 'shipped' ? search.APPROXIMATE_SEARCH_TUNING : { ...search.APPROXIMATE_SEARCH_TUNING, efSearch: ef, efSearchGradeFiltered: ef, maxScanTuples };
        const [approximateMs, hits] = await timed(() => search.searchSimilarImages(db.prisma, request(vector, filters, 'APPROXIMATE'), tuning));
        perEf[ef].ms.push(approximateMs);
        perEf[ef].recall.push(truth.size === 0 ? 1 : hits.filter((hit) => truth.has(hit.imageId)).length / truth.size);
        if (hits.length < Math.min(K, truth.size)) perEf[ef].short += 1;
      }
    }
    // The database's own time for the shipped statement (planning + execution, EXPLAIN ANALYZE without per-node
    // timing): what the design costs, apart from the client and from waiting for a core on a shared machine.
    const serverMs = [];
    const graphGrades = await search.hnswGrades(db.prisma);
    for (const vector of queries) {
      const shipped = search.APPROXIMATE_SEARCH_TUNING;
      const walksGraph = filters.drGrades.length > 0 && filters.drGrades.length < 5 && filters.drGrades.some((grade) => graphGrades.has(grade));
      const settings = Object.entries(search.vectorSessionSettings(shipped, walksGraph ? shipped.efSearchGradeFiltered : shipped.efSearch));
      const [, explained] = await db.prisma.$transaction([
        db.prisma.$queryRaw`SELECT ${Prisma.join(settings.map(([setting, value]) => Prisma.sql`set_config(${setting}, ${value}, true)`))}`,
        db.prisma.$queryRaw(Prisma.sql`EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) ${await search.approximateStatementFor(db.prisma, request(vector, filters, 'APPROXIMATE'))}`),
      ]);
      const text = explained.map((row) => row['QUERY PLAN']).join('\n');
      serverMs.push(Number(/Planning Time: ([\d.]+)/.exec(text)[1]) + Number(/Execution Time: ([\d.]+)/.exec(text)[1]));
    }
    // Which indexes the planner picks for the approximate statement.
    const plan = await db.prisma.$queryRaw(Prisma.sql`EXPLAIN ${await search.approximateStatementFor(db.prisma, request(queries[0], filters, 'APPROXIMATE'))}`);
    const planText = plan.map((row) => row['QUERY PLAN']).join('\n');
    results[name] = {
      plan: [...new Set(planText.match(/image_embedding_\w+/g) ?? ['sequential scan'])].join(' '),
      exact: { p50: round(percentile(exactMs, 50)), p95: round(percentile(exactMs, 95)) },
      shippedServerMs: { p50: round(percentile(serverMs, 50)), p95: round(percentile(serverMs, 95)) },
      approximate: Object.fromEntries(variants.map((ef) => {
        const { ms, recall, short } = perEf[ef];
        return [ef === 'shipped' ? 'shipped' : `ef${ef}`, { recallAt10: round(recall.reduce((a, b) => a + b, 0) / recall.length, 3), recallMin: round(Math.min(...recall), 2), p50: round(percentile(ms, 50)), p95: round(percentile(ms, 95)), short }];
      })),
    };
    process.stderr.write(`${label} ${name}: ${JSON.stringify(results[name])}\n`);
  }
  return results;
}

const resultsBefore = rebuildKind !== null && compare ? await measureScenarios('before') : null;
// ---- the rebuild step: every grade's index as --rebuild's kind, through the vector-index command's service
const rebuild = {};
if (rebuildKind !== null) {
  for (const grade of vectorIndexes.VECTOR_INDEX_GRADES) {
    const built = await vectorIndexes.rebuildVectorIndex({ db, grade, kind: rebuildKind });
    rebuild[built.name] = { lists: built.lists, rows: built.rows, seconds: built.seconds, megabytes: built.megabytes, dropped: built.dropped };
    process.stderr.write(`rebuilt ${JSON.stringify(built)}\n`);
  }
  search.forgetIndexKinds(db.prisma);
  for (let warm = 0; warm < 20; warm += 1) {
    await search.searchSimilarImages(db.prisma, request(queries[warm % queries.length], scenarios[warm % scenarios.length][1], 'APPROXIMATE'));
  }
}
const results = await measureScenarios(rebuildKind ?? 'shipped');

// ---- index upkeep: what one ingested case and one re-embedded photograph pay at this size, through the same
// statement ingestion and `npm run reembed` use (upsertImageEmbedding: grade copy trigger + one HNSW insert).
const upkeepRows = existing ? 0 : Number(option('upkeep-rows', 200));
await db.sql.exec(`
  INSERT INTO image_blob (sha256, mime_type, byte_size, bytes) SELECT lpad(to_hex(g), 64, '0'), 'image/jpeg', 1, '\\x00'::bytea FROM generate_series(${caseCount}, ${caseCount + upkeepRows - 1}) g;
  INSERT INTO fundus_image (id, visit_id, patient_id, eye, content_hash, width, height, dr_grade)
    SELECT ('30000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, '${uuid(2, 0)}', '${uuid(1, 0)}', 'LEFT', lpad(to_hex(g), 64, '0'), 1024, 768, (ARRAY[0,0,0,0,0,0,0,1,2,2,3,4])[1 + g % 12]
    FROM generate_series(${caseCount}, ${caseCount + upkeepRows - 1}) g;`);
const upkeep = { ingestMs: [], reembedMs: [] };
for (let i = 0; i < upkeepRows; i += 1) {
  const id = uuid(3, caseCount + i);
  const [ingestMs] = await timed(() => search.upsertImageEmbedding(db.prisma, { imageId: id, modelVersion, embedding: sampleEmbedding(grades[i]) }));
  upkeep.ingestMs.push(ingestMs);
  const [reembedMs] = await timed(() => search.upsertImageEmbedding(db.prisma, { imageId: uuid(3, i), modelVersion: `${modelVersion}-next`, embedding: sampleEmbedding(grades[i]) }));
  upkeep.reembedMs.push(reembedMs);
}
const [copied] = await db.sql.query(`SELECT count(*)::int AS n FROM image_embedding e JOIN fundus_image fi ON fi.id = e.image_id WHERE e.dr_grade IS NOT DISTINCT FROM fi.dr_grade AND (e.model_version = '${modelVersion}-next' OR e.image_id >= '${uuid(3, caseCount)}')`);
if (upkeepRows > 0 && copied.n !== 2 * upkeepRows) throw new Error(`grade copied on ${copied.n} of ${2 * upkeepRows} upserted embeddings`);

const report = {
  date: new Date().toISOString().slice(0, 10),
  database: db.kind,
  cases: caseCount,
  gradeCounts: Object.fromEntries(gradeCounts.map((row) => [row.dr_grade ?? 'ungraded', row.n])),
  model: modelVersion,
  sets: SETS,
  realEmbeddings: realByGrade.map((items) => items.length),
  noiseNorm: round(noiseNorm, 3),
  queries: queryCount,
  maxScanTuples,
  shippedTuning: search.APPROXIMATE_SEARCH_TUNING,
  existingDatabase: existing,
  loadSeconds: loadSeconds === null ? null : round(loadSeconds, 1),
  tableMegabytes: round(tableSize.bytes / 2 ** 20, 1),
  indexBuild,
  indexBuildSeconds: existing ? null : round(Object.values(indexBuild).reduce((sum, index) => sum + index.seconds, 0), 1),
  indexMegabytes: existing ? null : round(Object.values(indexBuild).reduce((sum, index) => sum + index.megabytes, 0), 1),
  rebuildKind,
  rebuild,
  rebuildSeconds: rebuildKind === null ? null : round(Object.values(rebuild).reduce((sum, index) => sum + index.seconds, 0), 1),
  rebuildMegabytes: rebuildKind === null ? null : round(Object.values(rebuild).reduce((sum, index) => sum + index.megabytes, 0), 1),
  millisecondsBefore: resultsBefore,
  milliseconds: results,
  upkeepMsPerRow: upkeepRows === 0 ? null : Object.fromEntries(Object.entries(upkeep).map(([name, values]) => [name, { p50: round(percentile(values, 50)), p95: round(percentile(values, 95)) }])),
};
console.log(JSON.stringify(report, null, 2));
await db.close();
// --keep leaves the scratch database (or PGlite directory) for EXPLAIN ANALYZE by hand; drop it yourself.
if (process.argv.includes('--keep')) process.stderr.write(`kept: ${JSON.stringify(scratch.env)}\n`);
else await scratch.drop();
