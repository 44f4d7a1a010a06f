// Probe (issue 15): per-grade IVFFlat against per-grade HNSW on a database left by `npm run bench:search -- --keep`.
// On a copy of one grade's rows (so nothing else sees its indexes): recall@10 of an HNSW graph at several ef_search
// and of an IVFFlat index at several probes against exact, for 30 queries taken from the other grades' stored
// embeddings (the hard case), with the database's own time (EXPLAIN ANALYZE). Drops its table at the end.
//
//   nice -n 10 node bench/ivfflat-probe.mjs <kept DATABASE_URL> <grade> <lists, about sqrt(rows)>
import pg from 'pg';
const [url, grade, lists] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const client = new pg.Client({ connectionString: url });
await client.connect();
const q = (sql, params) => client.query(sql, params).then((r) => r.rows);
const table = `probe_grade_${grade}`;
await q(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} AS SELECT image_id, embedding FROM image_embedding WHERE dr_grade = ${grade}; ANALYZE ${table}`);
await q(`SET maintenance_work_mem = '512MB'`);
let t = Date.now();
await q(`CREATE INDEX ${table}_hnsw ON ${table} USING hnsw (embedding vector_cosine_ops)`);
console.log(JSON.stringify({ grade, hnswBuildSeconds: (Date.now() - t) / 1000 }));
const queries = (await q(`SELECT embedding::text AS v FROM image_embedding WHERE dr_grade <> $1 ORDER BY hashtext(image_id::text) LIMIT 30`, [grade])).map((r) => r.v);
const top = async (v, order) => (await q(`SELECT image_id FROM ${table} ORDER BY ${order} LIMIT 10`, [v])).map((r) => r.image_id);
const serverMs = async (v) => { const text = (await q(`EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) SELECT image_id FROM ${table} ORDER BY embedding <=> $1::vector LIMIT 10`, [v])).map((r) => r['QUERY PLAN']).join('\n'); return Number(/Planning Time: ([\d.]+)/.exec(text)[1]) + Number(/Execution Time: ([\d.]+)/.exec(text)[1]); };
const truth = [];
for (const v of queries) truth.push(new Set(await top(v, '(embedding <=> $1::vector) + 0')));
const measure = async (label) => {
  let found = 0, min = 1; const ms = [];
  for (const [i, v] of queries.entries()) { const hits = await top(v, 'embedding <=> $1::vector'); const r = hits.filter((h) => truth[i].has(h)).length / 10; found += r; min = Math.min(min, r); ms.push(await serverMs(v)); }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({ grade, label, recall: +(found / queries.length).toFixed(3), min, dbP50: +ms[15].toFixed(2), dbP95: +ms[28].toFixed(2) }));
};
for (const ef of [100, 400, 1000]) { await q(`SET hnsw.ef_search = ${ef}`); await measure(`hnsw ef ${ef}`); }
await q(`DROP INDEX ${table}_hnsw`);
t = Date.now();
await q(`CREATE INDEX ${table}_ivf ON ${table} USING ivfflat (embedding vector_cosine_ops) WITH (lists = ${lists})`);
console.log(JSON.stringify({ grade, ivfflatBuildSeconds: (Date.now() - t) / 1000, megabytes: Number((await q(`SELECT pg_relation_size('${table}_ivf') / 1048576.0 AS mb`))[0].mb) }));
for (const probes of [5, 10, 20, 40]) { await q(`SET ivfflat.probes = ${probes}`); await measure(`ivfflat lists ${lists} probes ${probes}`); }
await q(`DROP TABLE ${table}`);
await client.end();
