// Benchmark: the API's sharded similar-case search (apps/api/src/search/shards.ts) against the primary searching
// alone, side by side in one run, and what keeping the projection costs (attach, replay, the triggers on writes).
//
//   bash scripts/cluster/start.sh --databases-only && bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env
//   npm run build && nice node bench/shards-api.mjs [--cases 100000] [--queries 100] [--clients 1,4] [--seconds 10] [--writes 300]
//       [--spread 1 | none | real] [--data ../shared/data] [--every-grade] [--reshard none] [--attach-graphs after | during]
//
// Scratch databases, dropped afterwards: the application database copied from the primary's template (5442, with
// vector and postgres_fdw: shard.sh) and one shard database on each node of SEARCH_SHARD_URLS (5445, 5446), copied
// from the node's database fundus (vector). Cases: bench/seed-cases.mjs (128-d unit embeddings around a centre per
// grade, noise of norm --spread; uniform random with --spread none; N/2 patients, grades 0-4 at a fixed mix; with
// --spread real, embeddings that cluster like the shipped model's of ../shared/data and grades at EyePACS
// prevalence, bench/real-mixture.mjs, as bench:search draws them),
// attached with attachShards and replayed, then the shards' graphs built (timed: the projection's first fill, as
// `npm run shards -- attach` makes it; --attach-graphs during: into graphs made before the backfill). Then:
// - writes: single-row embedding updates (as re-embedding and ingest write) with the projection on (each queues the
//   photograph: one outbox row from the statement's trigger) and off, alternating in rounds; then the replay of
//   what they queued, timed;
// - searches by stored case, k 10, per filter (none, grade 4, grade 0 + left eye, grade 2 + age 50-70; --every-grade
//   adds grades 0-3 alone), every query three ways in turn: the exact path (truth), the primary's
//   approximate path (a client with no shards registered), and the sharded path (the API's), wall time around
//   searchSimilarImages; recall@10 of both approximate paths against the exact;
// - the sharded path again with 100 photographs queued and not replayed (ranked on the primary beside the shards);
// - throughput: C concurrent searches without a filter for --seconds, primary alone and sharded, alternating;
// - the reshard (unless --reshard none): 2 search clients (the process opened before it: no filter and grade 4
//   in turn) and 1 writer (single-row embedding updates) run for --seconds, then on through a reshard from the
//   shards to them plus one more (a second scratch database on the first node): prepare, copy (timed, and within
//   it the build of the new shards' graphs), swap,
//   retire; search and write latencies per phase (before, during the copy, after the swap, when the old process
//   searches on the primary); then a process opened over the new shards: recall@10 and latency per filter, and
//   the new generation's rows counted against the primary's embedded photographs.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { api, option, root } from './cli.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';
import { loadRealMixture } from './real-mixture.mjs';
import { dropScratchDatabase } from '../test/support/drop-database.mjs';

const caseCount = Number(option('cases', 100_000));
const queryCount = Number(option('queries', 100));
const clientCounts = String(option('clients', '1,4')).split(',').map(Number);
const seconds = Number(option('seconds', 10));
const writeCount = Number(option('writes', 300));
// Embeddings around per-grade centres (bench/seed-cases.mjs); --spread none: uniform random vectors.
const spreadOption = option('spread', '1');
const spread = spreadOption === 'none' || spreadOption === 'real' ? null : Number(spreadOption);
if (spread !== null && !Number.isFinite(spread)) throw new Error('--spread: a number, none or real');
const mixture = spreadOption === 'real'
  ? await loadRealMixture({ dataDir: path.resolve(root, option('data', '../shared/data')), modelPath: path.join(root, 'models/fundus-cbr.onnx'), sets: ['srahim', 'eyepacs-raw', 'idrid', 'mexico'] })
  : null;
const K = 10;
const MODEL_VERSION = 'bench-shards';
const reshard = option('reshard', 'yes') !== 'none';
const everyGrade = process.argv.includes('--every-grade');
// The attach's HNSW graphs: built after the backfill (the CLI's way) or there from the start, filled row by row.
const attachGraphs = option('attach-graphs', 'after');
if (!['after', 'during'].includes(attachGraphs)) throw new Error('--attach-graphs: after or during');

const [{ openDatabase }, search, shards, { createLogger }] = await Promise.all([
  api('db/database.js'), api('search/similar-images.js'), api('search/shards.js'), api('logger.js'),
]);
const shardUrls = (process.env.SEARCH_SHARD_URLS ?? '').split(',').filter(Boolean);
if (shardUrls.length === 0) throw new Error('SEARCH_SHARD_URLS is not set: bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env');
const primaryTemplate = new URL(process.env.SHARD_COORDINATOR_URL ?? 'postgresql://fundus:fundus@127.0.0.1:5442/fundus_search');
primaryTemplate.pathname = '/fundus_template';

const scratch = `fundus_bench_${randomBytes(4).toString('hex')}`;
const withDatabase = (url, name) => {
  const copy = new URL(url);
  copy.pathname = `/${name}`;
  return copy.toString();
};
async function onAdmin(url, sql) {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
const nodes = [primaryTemplate.toString(), ...shardUrls];
// The primary's fundus_template has vector and postgres_fdw (shard.sh); a shard node's fundus has vector only.
for (const [index, url] of nodes.entries()) await onAdmin(url, `CREATE DATABASE ${scratch} TEMPLATE ${index === 0 ? 'fundus_template' : 'fundus'}`);
const primaryUrl = withDatabase(primaryTemplate, scratch);
const scratchShards = shardUrls.map((url) => withDatabase(url, scratch));
// The reshard's extra shard: another database on the first node (one machine here; its own node in production).
const extraShard = withDatabase(shardUrls[0], `${scratch}_extra`);
if (reshard) await onAdmin(shardUrls[0], `CREATE DATABASE ${scratch}_extra TEMPLATE fundus`);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const summary = (times) => {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50Ms: Number(percentile(sorted, 50).toFixed(2)), p95Ms: Number(percentile(sorted, 95).toFixed(2)) };
};
const log = (line) => process.stderr.write(`${line}\n`);

const result = { cases: caseCount, spread: spreadOption === 'real' ? 'real' : spread, shards: shardUrls.length, queries: queryCount, k: K, machine: { load: (await import('node:os')).loadavg().map((x) => Number(x.toFixed(2))) } };
const migrationsDir = path.join(root, 'prisma', 'migrations');
const db = await openDatabase({ database: { kind: 'postgres', url: primaryUrl }, migrationsDir });
const alone = await openDatabase({ database: { kind: 'postgres', url: primaryUrl }, migrationsDir });
let shardSearch;
try {
  let started = performance.now();
  await seedSyntheticCases(db, { caseCount, modelVersion: MODEL_VERSION, dimension: 128, spread, mixture, copyUrl: primaryUrl });
  result.seedSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
  result.grades = Object.fromEntries((await db.sql.query('SELECT dr_grade, count(*)::int AS n FROM fundus_image GROUP BY dr_grade ORDER BY dr_grade')).map((row) => [row.dr_grade, row.n]));
  log(`seeded ${caseCount} cases in ${result.seedSeconds} s, by grade ${JSON.stringify(result.grades)}`);

  started = performance.now();
  // As `npm run shards -- attach` does (graphs after the backfill), or with --attach-graphs during, into the graphs.
  const attached = await shards.attachShards(db, scratchShards, { graphs: attachGraphs === 'during' });
  const replayed = await shards.replayAll(db.sql);
  const graphSeconds = attachGraphs === 'after' ? await shards.buildAttachedGraphs(db.sql, scratchShards) : 0;
  const attachSeconds = (performance.now() - started) / 1000;
  result.attach = { graphs: attachGraphs, queued: attached.queued, projected: replayed.projected, seconds: Number(attachSeconds.toFixed(1)), graphSeconds: Number(graphSeconds.toFixed(1)), embeddingsPerSecond: Math.round(replayed.projected / attachSeconds) };
  log(`attach: ${JSON.stringify(result.attach)}`);
  for (const url of scratchShards) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('ANALYZE case_projection');
    await client.end();
  }

  // ---- writes with the projection on and off, alternating
  const writeIds = (await db.sql.query(`SELECT id::text AS id FROM fundus_image ORDER BY md5(id::text) LIMIT ${writeCount}`)).map((row) => row.id);
  const writeTimes = { on: [], off: [] };
  const rounds = 6;
  for (let round = 0; round < rounds; round += 1) {
    for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      await db.sql.query('UPDATE search_projection_state SET enabled = $1 WHERE id', [mode === 'on']);
      for (const id of writeIds.slice((round * writeIds.length) / rounds, ((round + 1) * writeIds.length) / rounds)) {
        const t = performance.now();
        await db.sql.query(`UPDATE image_embedding SET embedding = embedding, created_at = now() WHERE image_id = $1 AND model_version = $2`, [id, MODEL_VERSION]);
        writeTimes[mode].push(performance.now() - t);
      }
    }
  }
  await db.sql.query('UPDATE search_projection_state SET enabled = true WHERE id');
  started = performance.now();
  const writesReplayed = await shards.replayAll(db.sql);
  result.writes = {
    on: summary(writeTimes.on), off: summary(writeTimes.off), writesEach: writeTimes.on.length,
    replay: { images: writesReplayed.images, seconds: Number(((performance.now() - started) / 1000).toFixed(2)) },
  };
  log(`writes: ${JSON.stringify(result.writes)}`);

  // ---- searches, one at a time
  shardSearch = shards.openShardSearch({ shardUrls: scratchShards, generation: 1, poolSize: 10, logger: createLogger('warn') });
  search.registerShardedSearcher(db.prisma, shardSearch);
  const queries = (await db.sql.query(`SELECT id::text AS id, patient_id::text AS patient_id FROM fundus_image ORDER BY md5('q' || id::text) LIMIT ${queryCount}`));
  const none = { drGrades: [], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };
  const filters = {
    none,
    'grade 4': { ...none, drGrades: [4] },
    'grade 0 + left eye': { ...none, drGrades: [0], eye: 'LEFT' },
    'grade 2 + age 50-70': { ...none, drGrades: [2], ageMin: 50, ageMax: 70 },
    // --every-grade: each DR grade's filter alone too
    ...(everyGrade ? Object.fromEntries([0, 1, 2, 3].map((grade) => [`grade ${grade}`, { ...none, drGrades: [grade] }])) : {}),
  };
  const searchOf = (query, filter) => ({ modelVersion: MODEL_VERSION, query: { imageId: query.id }, k: K, filters: filter, excludePatientId: query.patient_id });
  const recall = (hits, truth) => truth.length === 0 ? 1 : hits.filter((hit) => truth.some((one) => one.imageId === hit.imageId)).length / truth.length;
  result.searches = {};
  const measureFilters = async (label) => {
    for (const [name, filter] of Object.entries(filters)) {
      const times = { exact: [], alone: [], sharded: [] };
      const recalls = { alone: [], sharded: [] };
      for (const [index, query] of queries.entries()) {
        const one = searchOf(query, filter);
        let t = performance.now();
        const truth = await search.searchSimilarImages(db.prisma, { ...one, mode: 'EXACT' });
        times.exact.push(performance.now() - t);
        for (const path of index % 2 === 0 ? ['alone', 'sharded'] : ['sharded', 'alone']) {
          t = performance.now();
          const hits = await search.searchSimilarImages(path === 'alone' ? alone.prisma : db.prisma, one);
          times[path].push(performance.now() - t);
          recalls[path].push(recall(hits, truth));
        }
      }
      const mean = (values) => Number((values.reduce((a, b) => a + b, 0) / values.length).toFixed(3));
      result.searches[`${label}${name}`] = {
        exact: summary(times.exact),
        alone: { ...summary(times.alone), recallAt10: mean(recalls.alone) },
        sharded: { ...summary(times.sharded), recallAt10: mean(recalls.sharded) },
      };
      log(`${label}${name}: ${JSON.stringify(result.searches[`${label}${name}`])}`);
    }
  };
  const before = shardSearch.stats();
  await measureFilters('');

  // ---- 100 photographs queued, not replayed: ranked on the primary beside the shards
  await db.sql.query(`INSERT INTO search_projection_outbox (image_id) SELECT id FROM fundus_image ORDER BY md5('w' || id::text) LIMIT 100`);
  for (const name of Object.keys(filters)) if (name !== 'none' && name !== 'grade 4') delete filters[name];
  await measureFilters('100 queued, ');
  await shards.replayAll(db.sql);
  const stats = shardSearch.stats();
  result.shardStats = { shardSearches: stats.shardSearches - before.shardSearches, withQueued: stats.withQueued - before.withQueued, primaryFallbacks: stats.primaryFallbacks - before.primaryFallbacks };

  // ---- throughput without a filter, C clients, alternating
  result.throughput = {};
  for (const clients of clientCounts) {
    const rates = { alone: [], sharded: [] };
    for (let round = 0; round < 2; round += 1) {
      for (const path of round % 2 === 0 ? ['alone', 'sharded'] : ['sharded', 'alone']) {
        const prisma = path === 'alone' ? alone.prisma : db.prisma;
        const until = performance.now() + (seconds * 1000) / 2;
        let done = 0;
        await Promise.all(Array.from({ length: clients }, async (_, worker) => {
          for (let next = worker; performance.now() < until; next += clients) {
            await search.searchSimilarImages(prisma, searchOf(queries[next % queries.length], none));
            done += 1;
          }
        }));
        rates[path].push(done / (seconds / 2));
      }
    }
    const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
    result.throughput[clients] = { alonePerSecond: Number(mean(rates.alone).toFixed(1)), shardedPerSecond: Number(mean(rates.sharded).toFixed(1)), ratio: Number((mean(rates.sharded) / mean(rates.alone)).toFixed(2)) };
    log(`throughput at ${clients} clients: ${JSON.stringify(result.throughput[clients])}`);
  }

  // ---- the reshard, with searches and writes going on
  if (reshard) {
    const phaseOf = { now: 'before' };
    const oldBefore = shardSearch.stats();
    const times = { search: {}, write: {} };
    const record = (kind, ms) => (times[kind][phaseOf.now] ??= []).push(ms);
    let stop = false;
    const load = Promise.all([
      ...[0, 1].map(async (worker) => {
        for (let next = worker; !stop; next += 2) {
          const t = performance.now();
          await search.searchSimilarImages(db.prisma, searchOf(queries[next % queries.length], next % 4 < 2 ? none : filters['grade 4']));
          record('search', performance.now() - t);
        }
      }),
      (async () => {
        for (let next = 0; !stop; next += 1) {
          const t = performance.now();
          await db.sql.query('UPDATE image_embedding SET embedding = embedding, created_at = now() WHERE image_id = $1 AND model_version = $2', [writeIds[next % writeIds.length], MODEL_VERSION]);
          record('write', performance.now() - t);
        }
      })(),
    ]);
    // The API's background replay, as every process over shards runs it.
    const replayLoop = shards.startReplayLoop({ sql: db.sql, intervalMs: 250, logger: createLogger('warn') });
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      await wait(seconds * 1000);
      const newShards = [...scratchShards, extraShard];
      phaseOf.now = 'copy';
      let t = performance.now();
      const plan = await shards.prepareReshard(db, newShards);
      const copied = await shards.copyIntoNext(db.sql, { shardUrls: newShards });
      const copySeconds = (performance.now() - t) / 1000;
      t = performance.now();
      const finished = await shards.finishReshard(db.sql);
      const swapMs = performance.now() - t;
      phaseOf.now = 'after swap (old process: primary)';
      await wait(seconds * 1000);
      t = performance.now();
      const retired = await shards.retireShards(db.sql);
      const retireMs = performance.now() - t;
      stop = true;
      await load;
      await replayLoop.stop();
      await shards.replayAll(db.sql);
      const phases = (kind) => Object.fromEntries(Object.entries(times[kind]).map(([phase, values]) => [phase, { ...summary(values), count: values.length }]));
      const [{ embedded }] = await db.sql.query('SELECT count(DISTINCT image_id)::int AS embedded FROM image_embedding');
      let onNewShards = 0;
      for (const url of newShards) {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        onNewShards += (await client.query(`SELECT count(*)::int AS n FROM ${shards.shardTableName(finished.generation)}`)).rows[0].n;
        await client.query(`ANALYZE ${shards.shardTableName(finished.generation)}`);
        await client.end();
      }
      result.reshard = {
        from: plan.from.length, to: plan.to.length, generation: finished.generation,
        copy: { images: copied.images, projected: copied.projected, seconds: Number(copySeconds.toFixed(1)), graphSeconds: Number(copied.graphSeconds.toFixed(1)), embeddingsPerSecond: Math.round(copied.projected / copySeconds) },
        swapMs: Number(swapMs.toFixed(1)), retire: { ms: Number(retireMs.toFixed(1)), emptied: retired.emptied.length, failed: retired.failed.length },
        rows: { embedded, onNewShards },
        // The old process's searches from the load's start: on its shards (with queued photographs beside them),
        // and on the primary once it found the projection resharded.
        oldProcess: Object.fromEntries(Object.entries(shardSearch.stats()).map(([name, count]) => [name, count - oldBefore[name]])),
        searches: phases('search'), writes: phases('write'),
      };
      log(`reshard: ${JSON.stringify(result.reshard)}`);
      // A process opened over the new shards.
      await shardSearch.close();
      shardSearch = shards.openShardSearch({ shardUrls: newShards, generation: finished.generation, poolSize: 10, logger: createLogger('warn') });
      search.registerShardedSearcher(db.prisma, shardSearch);
      await measureFilters(`after the reshard (${newShards.length} shards), `);
    } finally {
      stop = true;
      await load.catch(() => {});
      await replayLoop.stop();
    }
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await shardSearch?.close();
  await alone.close();
  await db.close();
  for (const url of nodes) await dropScratchDatabase(withDatabase(url, 'postgres'), scratch).catch((error) => log(`could not drop ${scratch} on ${new URL(url).port}: ${error.message}`));
  if (reshard) await dropScratchDatabase(withDatabase(shardUrls[0], 'postgres'), `${scratch}_extra`).catch((error) => log(`could not drop ${scratch}_extra: ${error.message}`));
}
