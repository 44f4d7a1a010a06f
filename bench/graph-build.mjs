// Benchmark: an HNSW graph grown an insert at a time against the same graph built over rows already there, side
// by side on the same vectors: build time and recall@10 against exact search. It is the choice behind the shards'
// attach and reshard (apps/api/src/search/shards.ts builds the graphs after the rows).
//
//   source .ci/env && node bench/graph-build.mjs [--rows 50000] [--queries 200] [--spread 1] [--ef 40,100]
//
// A scratch database on TEST_DATABASE_URL's server (vector extension from its template), dropped afterwards. Rows:
// 128-d unit vectors around five centres (one a grade, as bench/seed-cases.mjs draws them: noise of norm --spread).
// Table `grown`: the graph (m 16, ef_construction 64, vector_cosine_ops, as the shards' graphs) made on the empty
// table, then the rows inserted in batches of 500, as the replay writes them; table `built`: the rows, then the
// graph; both with maintenance_work_mem 512 MB (SHARD_GRAPH_BUILD_MEMORY). Queries: fresh draws of the same
// mixture, top 10 by cosine distance; truth is the exact ranking of the same rows.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { option } from './cli.mjs';
import { dropScratchDatabase } from '../test/support/drop-database.mjs';

const rows = Number(option('rows', 50_000));
const queryCount = Number(option('queries', 200));
const spread = Number(option('spread', 1));
const efs = String(option('ef', '40,100')).split(',').map(Number);
const DIMENSION = 128;
const K = 10;
const base = process.env.TEST_DATABASE_URL;
if (!base) throw new Error('TEST_DATABASE_URL is not set: source .ci/env');

const urlOf = (name) => {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
};
const scratch = `fundus_graph_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: urlOf('postgres') });
await admin.connect();
await admin.query(`CREATE DATABASE ${scratch} TEMPLATE ${new URL(base).pathname.slice(1)}`);
await admin.end();
const client = new pg.Client({ connectionString: urlOf(scratch) });
await client.connect();
const log = (line) => process.stderr.write(`${line}\n`);
const seconds = (since) => Number(((performance.now() - since) / 1000).toFixed(1));
// Uniform noise on [-a, a] per component has norm a * sqrt(dimension / 3).
const half = spread / Math.sqrt(DIMENSION / 3);
const draw = (table, count) => `
  INSERT INTO ${table} (id, embedding)
  SELECT g, l2_normalize(c.centre + (SELECT array_agg((2 * random() - 1) * ${half} + 0 * d + 0 * g) FROM generate_series(1, ${DIMENSION}) d)::vector)
  FROM generate_series(1, ${count}) g JOIN centre c ON c.id = g % 5`;
try {
  await client.query(`SET maintenance_work_mem = '512MB'`);
  await client.query(`CREATE TABLE centre AS SELECT id, l2_normalize((SELECT array_agg(random() - 0.5 + 0 * d + 0 * id) FROM generate_series(1, ${DIMENSION}) d)::vector) AS centre FROM generate_series(0, 4) id`);
  for (const table of ['source', 'query', 'grown', 'built']) await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, embedding vector(${DIMENSION}) NOT NULL)`);
  await client.query(draw('source', rows));
  await client.query(draw('query', queryCount));
  const result = { rows, queries: queryCount, spread, k: K };

  let started = performance.now();
  await client.query('CREATE INDEX grown_hnsw ON grown USING hnsw (embedding vector_cosine_ops)');
  for (let from = 1; from <= rows; from += 500) await client.query('INSERT INTO grown SELECT * FROM source WHERE id BETWEEN $1 AND $2', [from, from + 499]);
  result.grownSeconds = seconds(started);
  started = performance.now();
  await client.query('INSERT INTO built SELECT * FROM source');
  const rowsSeconds = seconds(started);
  await client.query('CREATE INDEX built_hnsw ON built USING hnsw (embedding vector_cosine_ops)');
  result.builtSeconds = seconds(started);
  result.builtRowsSeconds = rowsSeconds;
  result.speedup = Number((result.grownSeconds / result.builtSeconds).toFixed(2));
  log(`grown ${result.grownSeconds} s, built ${result.builtSeconds} s (rows ${rowsSeconds} s): ${result.speedup}x`);
  for (const table of ['source', 'grown', 'built']) await client.query(`ANALYZE ${table}`);

  const queries = (await client.query('SELECT id, embedding::text AS embedding FROM query ORDER BY id')).rows;
  const top = async (table, embedding) => (await client.query(`SELECT id FROM ${table} ORDER BY embedding <=> $1::vector LIMIT ${K}`, [embedding])).rows.map((row) => row.id);
  // `source` has no graph: its ranking is exact.
  const truth = [];
  for (const query of queries) truth.push(await top('source', query.embedding));
  result.recallAt10 = {};
  for (const ef of efs) {
    await client.query(`SET hnsw.ef_search = ${ef}`);
    const recall = { grown: [], built: [] };
    // Alternating which graph goes first, so a warm cache favours neither.
    for (const [index, query] of queries.entries()) {
      for (const table of index % 2 === 0 ? ['grown', 'built'] : ['built', 'grown']) {
        const hits = await top(table, query.embedding);
        recall[table].push(hits.filter((id) => truth[index].includes(id)).length / K);
      }
    }
    const mean = (values) => Number((values.reduce((a, b) => a + b, 0) / values.length).toFixed(3));
    const differences = recall.built.map((value, index) => value - recall.grown[index]);
    // 95% interval of the paired mean difference: 2,000 resamples of the queries (a fixed-seed generator).
    let state = 20261206;
    const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const resampled = Array.from({ length: 2000 }, () => mean(differences.map(() => differences[Math.floor(uniform() * differences.length)]))).sort((a, b) => a - b);
    result.recallAt10[ef] = {
      grown: mean(recall.grown), built: mean(recall.built),
      builtMinusGrown: mean(differences), interval95: [resampled[49], resampled[1949]],
      grownMin: Math.min(...recall.grown), builtMin: Math.min(...recall.built),
    };
    log(`ef_search ${ef}: ${JSON.stringify(result.recallAt10[ef])}`);
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await client.end();
  await dropScratchDatabase(urlOf('postgres'), scratch).catch((error) => log(`could not drop ${scratch}: ${error.message}`));
}
