// Benchmark: a reshard's copy (apps/api/src/search/shards.ts copyIntoNext) with the carry-over, where the rows whose
// patients stay on a shard of both generations are copied within that shard, against the copy of every photograph
// through the primary (carry: false), side by side in one run, the two in turn, on the same rows.
//
//   bash scripts/cluster/start.sh --databases-only && bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env
//   npm run build && nice node bench/reshard-carry.mjs [--cases 100000] [--rounds 1] [--scenarios add,replace,double]
//
// Scratch databases, dropped afterwards: the application database on the primary (5442, copied from
// fundus_template: vector and postgres_fdw) and shards A and B (one on each node of SEARCH_SHARD_URLS, 5445 and
// 5446), C and D (second databases on the same nodes; machines of their own in production). --cases synthetic
// cases (bench/seed-cases.mjs, spread 1), attached to A and B as `npm run shards -- attach` does. Scenarios, from
// A, B: add (to A, B, C: a patient stays where its hash mod 2 and mod 3 agree, about a third), replace (to A, C:
// B's half moves), double (to A, B, C, D: half stays). Each copy, either way: prepareReshard, copyIntoNext timed (the
// rows, then the graphs' build), then checked (the next generation's rows, counted on its shards, equal the
// embedded photographs; every row inside its partition's hash bound; within the rows' time, the carry-over's),
// then abortReshard (which empties it); the
// live generation is never changed. No searches or writes run beside it (bench/shards-api.mjs measures a reshard
// under load).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { api, option, root } from './cli.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';
import { dropScratchDatabase } from '../test/support/drop-database.mjs';

const caseCount = Number(option('cases', 100_000));
const rounds = Number(option('rounds', 1));
const scenarioNames = String(option('scenarios', 'add,replace,double')).split(',');
const [{ openDatabase }, shards] = await Promise.all([api('db/database.js'), api('search/shards.js')]);

const shardNodes = (process.env.SEARCH_SHARD_URLS ?? '').split(',').filter(Boolean);
if (shardNodes.length < 2) throw new Error('SEARCH_SHARD_URLS must name two shard nodes: bash scripts/cluster/shard.sh && source /var/lib/fundus-cluster/shard-env');
const primaryNode = new URL(process.env.SHARD_COORDINATOR_URL ?? 'postgresql://fundus:fundus@127.0.0.1:5442/fundus_search');
const withDatabase = (url, name) => {
  const copy = new URL(url);
  copy.pathname = `/${name}`;
  return copy.toString();
};
async function onDatabase(url, sql) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}
const log = (line) => process.stderr.write(`${line}\n`);

const scratch = `fundus_bench_${randomBytes(4).toString('hex')}`;
// A and B on the two nodes; C and D second databases on them.
const shardDbs = [
  { name: 'A', node: shardNodes[0], database: `${scratch}_a` },
  { name: 'B', node: shardNodes[1], database: `${scratch}_b` },
  { name: 'C', node: shardNodes[0], database: `${scratch}_c` },
  { name: 'D', node: shardNodes[1], database: `${scratch}_d` },
].map((shard) => ({ ...shard, url: withDatabase(shard.node, shard.database) }));
const shardUrl = Object.fromEntries(shardDbs.map((shard) => [shard.name, shard.url]));
const SCENARIOS = { add: ['A', 'B', 'C'], replace: ['A', 'C'], double: ['A', 'B', 'C', 'D'] };
for (const name of scenarioNames) if (!SCENARIOS[name]) throw new Error(`--scenarios: add, replace or double, not ${name}`);

const created = [];
await onDatabase(withDatabase(primaryNode, 'postgres'), `CREATE DATABASE ${scratch} TEMPLATE fundus_template`);
created.push([withDatabase(primaryNode, 'postgres'), scratch]);
for (const shard of shardDbs) {
  await onDatabase(withDatabase(shard.node, 'postgres'), `CREATE DATABASE ${shard.database} TEMPLATE fundus`);
  created.push([withDatabase(shard.node, 'postgres'), shard.database]);
}
const db = await openDatabase({ database: { kind: 'postgres', url: withDatabase(primaryNode, scratch) }, migrationsDir: path.join(root, 'prisma', 'migrations') });
const result = { cases: caseCount, rounds, machine: { load: (await import('node:os')).loadavg().map((x) => Number(x.toFixed(2))) }, scenarios: {} };

/** The next generation's rows counted on its shards, and those outside their partition's hash bound (read on the
 *  primary through its foreign partitions, materialised first so that the check runs on the primary). */
async function checkNext(urls, generation) {
  let rows = 0;
  for (const url of urls) rows += (await onDatabase(url, `SELECT count(*)::int AS n FROM ${shards.shardTableName(generation)}`))[0].n;
  const partitions = await db.sql.query(`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'case_projection_next' ORDER BY (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\\d+)'))[1]::int`);
  let outside = 0;
  for (const [remainder, { name }] of partitions.entries()) {
    const [{ n }] = await db.sql.query(`WITH shard AS MATERIALIZED (SELECT patient_id FROM ${shards.SHARD_SCHEMA}.${name})
      SELECT count(*) FILTER (WHERE NOT satisfies_hash_partition('${shards.SHARD_SCHEMA}.case_projection_next'::regclass, ${partitions.length}, ${remainder}, patient_id))::int AS n FROM shard`);
    outside += n;
  }
  return { rows, outside };
}

try {
  let started = performance.now();
  await seedSyntheticCases(db, { caseCount, modelVersion: 'bench-carry', dimension: 128, spread: 1 });
  log(`seeded ${caseCount} cases in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  const live = [shardUrl.A, shardUrl.B];
  await shards.attachShards(db, live, { graphs: false });
  await shards.replayAll(db.sql);
  await shards.buildAttachedGraphs(db.sql, live);
  result.attachSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
  const [{ embedded }] = await db.sql.query('SELECT count(*)::int AS embedded FROM image_embedding');
  result.embedded = embedded;
  log(`attached to A, B in ${result.attachSeconds} s (${embedded} embeddings)`);

  for (const scenario of scenarioNames) {
    const to = SCENARIOS[scenario].map((name) => shardUrl[name]);
    const runs = { carry: [], full: [] };
    for (let round = 0; round < rounds; round += 1) {
      // The order alternates between scenarios and rounds, so neither way always goes first.
      const order = (round + scenarioNames.indexOf(scenario)) % 2 === 0 ? ['carry', 'full'] : ['full', 'carry'];
      for (const way of order) {
        const plan = await shards.prepareReshard(db, to);
        const t = performance.now();
        const copied = await shards.copyIntoNext(db.sql, { shardUrls: to, carry: way === 'carry' });
        const seconds = (performance.now() - t) / 1000;
        const check = await checkNext(to, plan.generation);
        if (check.rows !== embedded || check.outside !== 0) throw new Error(`${scenario} ${way}: ${check.rows} rows of ${embedded} in the next generation, ${check.outside} outside their hash bound`);
        await shards.abortReshard(db.sql);
        const run = {
          seconds: Number(seconds.toFixed(2)), rowsSeconds: Number((seconds - copied.graphSeconds).toFixed(2)), carrySeconds: Number(copied.carrySeconds.toFixed(2)), graphSeconds: Number(copied.graphSeconds.toFixed(2)),
          carriedRows: copied.carriedRows, throughPrimaryRows: copied.projected, carriedOn: copied.carriedOn.length,
        };
        runs[way].push(run);
        log(`${scenario} (A, B -> ${SCENARIOS[scenario].join(', ')}) ${way}: ${JSON.stringify(run)}`);
      }
    }
    const mean = (list, key) => list.reduce((sum, run) => sum + run[key], 0) / list.length;
    result.scenarios[scenario] = {
      to: SCENARIOS[scenario], runs,
      carriedShare: Number((mean(runs.carry, 'carriedRows') / embedded).toFixed(3)),
      fullOverCarry: { seconds: Number((mean(runs.full, 'seconds') / mean(runs.carry, 'seconds')).toFixed(2)), rowsSeconds: Number((mean(runs.full, 'rowsSeconds') / mean(runs.carry, 'rowsSeconds')).toFixed(2)) },
    };
    log(`${scenario}: ${JSON.stringify({ carriedShare: result.scenarios[scenario].carriedShare, fullOverCarry: result.scenarios[scenario].fullOverCarry })}`);
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await db.close();
  for (const [adminUrl, name] of created.reverse()) await dropScratchDatabase(adminUrl, name).catch((error) => log(`could not drop ${name}: ${error.message}`));
}
