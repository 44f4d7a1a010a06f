// Sharded similar-case search (apps/api/src/search/shards.ts) on PostgreSQL: the API over a primary whose search
// projection is kept on two shard databases (postgres_fdw foreign partitions hashed by patient; here databases of
// the test server, reached over TCP as separate nodes would be). Against the exact ranking of the primary: the
// shards' answers under every filter; a grade correction searched as corrected before the replay and on the shard
// after it; an erased patient gone from both; a shard that cannot be reached, where the primary answers and the
// outbox keeps the writes until the shard is back; the attach step's refusals; and two reshards (2 -> 3 shards step
// by step with writes between the steps, then 3 -> 2 through the CLI), after which every photograph is on the shard
// of its patient in the new generation, the old shards are emptied, and a process opened before the reshard
// searches on the primary.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { promisify } from 'node:util';
import { POSTGRES_SKIP_REASON, createTestDatabase, repositoryRoot, startApi } from '../support/backends.mjs';
import { dropScratchDatabase } from '../support/drop-database.mjs';

const shards = await import(path.join(repositoryRoot, 'apps/api/dist/search/shards.js'));
const { loadConfig } = await import(path.join(repositoryRoot, 'apps/api/dist/config.js'));
const { buildCohort } = await import(path.join(repositoryRoot, 'apps/api/dist/fixtures/cohort.js'));
const { loadCohort } = await import(path.join(repositoryRoot, 'apps/api/dist/fixtures/seed.js'));
const { registerShardedSearcher } = await import(path.join(repositoryRoot, 'apps/api/dist/search/similar-images.js'));
const { createLogger } = await import(path.join(repositoryRoot, 'apps/api/dist/logger.js'));

const SKIP = POSTGRES_SKIP_REASON || (process.env.TEST_SUPERUSER_DATABASE_URL ? false : 'TEST_SUPERUSER_DATABASE_URL is not set: run `bash .ci/run` (scripts/ci-setup.sh makes the superuser that installs postgres_fdw)');

const SIMILAR = `query Similar($input: SimilarCasesInput!) {
  similarCases(input: $input) { hits { similarity case { id patient { id } referenceGrading { drGrade } } } }
}`;

const FILTERS = [
  {},
  { drGrades: [4] },
  { drGrades: [0, 1] },
  { eye: 'LEFT' },
  { sex: 'FEMALE', ageMin: 40 },
  { ageMax: 65, drGrades: [2, 3] },
  { treatmentTypes: ['ANTI_VEGF', 'PRP_LASER'] },
];

/** A URL of the test server's database `name`, as `base` (the role and password stay). */
function databaseUrl(base, name) {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

test('without shards (the embedded database) the triggers queue nothing until the projection is turned on', async () => {
  const database = await createTestDatabase('pglite');
  try {
    await loadCohort(database.db, buildCohort('test-clinic'));
    const queued = async () => (await database.db.sql.query('SELECT count(*)::int AS n FROM search_projection_outbox'))[0].n;
    assert.equal(await queued(), 0, 'the cohort\'s writes queued nothing');
    await database.db.sql.query(`UPDATE fundus_image SET dr_grade = 4 WHERE id = (SELECT id FROM fundus_image ORDER BY id LIMIT 1)`);
    assert.equal(await queued(), 0);
    // The gate is the state row: on, the same write queues its photograph (attach turns it on, on PostgreSQL).
    await database.db.sql.query('UPDATE search_projection_state SET enabled = true WHERE id');
    await database.db.sql.query(`UPDATE fundus_image SET dr_grade = 3 WHERE id = (SELECT id FROM fundus_image ORDER BY id LIMIT 1)`);
    assert.equal(await queued(), 1);
  } finally {
    await database.drop();
  }
});

describe('similar-case search over shards (PostgreSQL)', { skip: SKIP }, () => {
  // Shards 0 and 1 are attached at the start; shard 2 joins in the reshard test.
  const shardNames = [0, 1, 2].map((index) => `fundus_t_${randomBytes(4).toString('hex')}_shard${index}`);
  const shardUrls = shardNames.map((name) => databaseUrl(process.env.TEST_DATABASE_URL, name));
  const adminUrl = databaseUrl(process.env.TEST_DATABASE_URL, 'postgres');
  let api;
  let images;

  async function onShard(index, sql, params = []) {
    const client = new pg.Client({ connectionString: shardUrls[index] });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  }
  /** The HNSW graphs (and anything else named like them) of a shard's table, with whether each is valid. */
  const graphsOf = (index, table) => onShard(index, `SELECT c.relname AS name, i.indisvalid AS valid, pg_get_indexdef(c.oid) LIKE '%USING hnsw%' AS hnsw
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '${table}'::regclass AND c.relname LIKE '${table}_hnsw_%' ORDER BY 1`);
  const graphNames = (table) => [0, 1, 2, 3, 4].map((grade) => `${table}_hnsw_grade_${grade}`).concat(`${table}_hnsw_ungraded`).sort();
  const shardRows = async () => (await Promise.all([0, 1].map((index) => onShard(index, 'SELECT image_id::text AS image_id, patient_id::text AS patient_id, dr_grade FROM case_projection')))).map((rows, index) => rows.map((row) => ({ ...row, shard: index }))).flat();
  const queued = async () => (await api.db.sql.query('SELECT count(*)::int AS n FROM search_projection_outbox'))[0].n;

  async function similar(imageId, filters, { exact = false, k = 5 } = {}) {
    const { body } = await api.graphql(SIMILAR, { input: { imageId, k, filters, exact } });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    return body.data.similarCases.hits.map((hit) => ({ id: hit.case.id, similarity: hit.similarity, grade: hit.case.referenceGrading?.drGrade ?? null, patient: hit.case.patient.id }));
  }

  function assertSameHits(actual, expected, what) {
    assert.deepEqual(actual.map((hit) => hit.id), expected.map((hit) => hit.id), what);
    actual.forEach((hit, index) => assert.ok(Math.abs(hit.similarity - expected[index].similarity) < 1e-9, `${what}: similarity of rank ${index + 1}`));
  }

  before(async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const template = new URL(process.env.TEST_DATABASE_URL).pathname.slice(1);
    for (const name of shardNames) await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
    await admin.end();
    api = await startApi('postgres', {
      prepare: async (db, database) => {
        // The DBA's step on the primary: postgres_fdw, usable by the application's role.
        const superuser = new pg.Client({ connectionString: databaseUrl(process.env.TEST_SUPERUSER_DATABASE_URL, new URL(database.url).pathname.slice(1)) });
        await superuser.connect();
        await superuser.query(`CREATE EXTENSION IF NOT EXISTS postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO ${new URL(process.env.TEST_DATABASE_URL).username}`);
        await superuser.end();
        // The operator's command: attach, the backfill into tables without graphs, then the graphs built over them.
        const { stdout } = await promisify(execFile)(process.execPath, [path.join(repositoryRoot, 'apps/api/dist/cli/shards.js'), 'attach', '--shards', shardUrls.slice(0, 2).join(','), '--json'], { env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'silent' } });
        const attached = JSON.parse(stdout);
        assert.equal(attached.alreadyAttached, false);
        const [{ n }] = await db.sql.query('SELECT count(DISTINCT image_id)::int AS n FROM image_embedding');
        assert.equal(attached.queued, n);
        assert.equal(attached.replayed.images, n);
        assert.ok(attached.graphSeconds > 0);
        for (const index of [0, 1]) assert.deepEqual(await graphsOf(index, 'case_projection'), graphNames('case_projection').map((name) => ({ name, valid: true, hnsw: true })), `shard ${index}'s graphs after attach`);
      },
      // The background replay's first pass runs at start-up; afterwards each test replays when it means to.
      env: (database) => ({ DATABASE_URL: database.url, SEARCH_SHARD_URLS: shardUrls.slice(0, 2).join(','), SEARCH_SHARD_REPLAY_INTERVAL_MS: '3600000' }),
    });
    images = await api.db.sql.query(`SELECT fi.id::text AS id, fi.patient_id::text AS patient_id, fi.dr_grade FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.id`);
  });

  after(async () => {
    await api?.close();
    for (const name of shardNames) await dropScratchDatabase(adminUrl, name).catch(() => {});
  });

  test('every embedding is on the shard of its patient, and only there', async () => {
    const rows = await shardRows();
    assert.deepEqual(rows.map((row) => row.image_id).sort(), images.map((image) => image.id).sort());
    const shardOf = new Map();
    for (const row of rows) {
      if (shardOf.has(row.patient_id)) assert.equal(shardOf.get(row.patient_id), row.shard, `patient ${row.patient_id} on one shard`);
      shardOf.set(row.patient_id, row.shard);
    }
    const perShard = [0, 1].map((index) => rows.filter((row) => row.shard === index).length);
    assert.ok(perShard.every((count) => count > 0), `both shards hold photographs: ${perShard}`);
    assert.equal(await queued(), 0);
    // Through the primary's partitioned table, as ad-hoc SQL sees it: the same rows.
    const [{ n }] = await api.db.sql.query('SELECT count(*)::int AS n FROM search_shards.case_projection');
    assert.equal(n, rows.length);
  });

  test('the shards answer similarCases under every filter with the exact ranking\'s hits', async () => {
    const before = api.server.shards.search.stats();
    let compared = 0;
    for (const query of images.filter((_, index) => index % 9 === 0)) {
      for (const filters of FILTERS) {
        const expected = await similar(query.id, filters, { exact: true });
        assertSameHits(await similar(query.id, filters), expected, `query ${query.id} filters ${JSON.stringify(filters)}`);
        compared += expected.length;
      }
    }
    assert.ok(compared > 50, `hits compared: ${compared}`);
    const stats = api.server.shards.search.stats();
    const { counters } = await (await fetch(`${api.baseUrl}/readyz`)).json();
    assert.deepEqual(counters.searchShards, { shards: 2, ...stats }, '/readyz shows the same counts');
    assert.ok(stats.shardSearches - before.shardSearches >= FILTERS.length, `searches the shards answered: ${stats.shardSearches - before.shardSearches}`);
    assert.equal(stats.primaryFallbacks, before.primaryFallbacks);
  });

  test('a grade correction is searched as corrected before the replay, and reaches the shard with it', async () => {
    // A grade-0 photograph and a grade-0 query of another patient whose nearest grade-0 hit it is: a shard still
    // holding the old grade would answer the query's grade-0 search with it first.
    let target;
    let zeroQuery;
    for (const candidate of images.filter((image) => image.dr_grade === 0)) {
      const [nearest] = await similar(candidate.id, { drGrades: [0] }, { exact: true, k: 1 });
      const back = nearest && (await similar(nearest.id, { drGrades: [0] }, { exact: true, k: 1 }))[0];
      if (back?.id === candidate.id) {
        target = candidate;
        zeroQuery = nearest;
        break;
      }
    }
    assert.ok(target, 'a grade-0 photograph that is its neighbour\'s nearest');
    const query = images.find((image) => image.patient_id !== target.patient_id && image.dr_grade === 4);
    const { body } = await api.graphql(`mutation { recordGrading(input: { caseId: "${target.id}", drGrade: 4 }) { referenceGrading { drGrade } } }`);
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    assert.ok(await queued() > 0, 'the correction queued the photograph for the shards');
    const gradeFours = images.filter((image) => image.dr_grade === 4 || image.id === target.id).length;
    const before = api.server.shards.search.stats();
    const hits = await similar(query.id, { drGrades: [4] }, { k: gradeFours });
    assert.ok(hits.some((hit) => hit.id === target.id && hit.grade === 4), 'the corrected photograph is a grade-4 hit before any replay');
    assertSameHits(hits, await similar(query.id, { drGrades: [4] }, { exact: true, k: gradeFours }), 'grade 4 after the correction');
    const zeroHits = await similar(zeroQuery.id, { drGrades: [0] }, { k: 3 });
    assert.equal(zeroHits.length, 3);
    assert.ok(!zeroHits.some((hit) => hit.id === target.id), 'no longer a grade-0 hit');
    assertSameHits(zeroHits, await similar(zeroQuery.id, { drGrades: [0] }, { exact: true, k: 3 }), 'grade 0 after the correction');
    assert.ok(api.server.shards.search.stats().withQueued > before.withQueued, 'the queued photograph was ranked on the primary');
    await api.server.shards.replayNow();
    assert.equal(await queued(), 0);
    const row = (await shardRows()).find((one) => one.image_id === target.id);
    assert.equal(row.dr_grade, 4);
  });

  test('an erased patient is never a hit, before the replay and after it, and leaves the shards', async () => {
    const erased = images[images.length - 1].patient_id;
    const query = images.find((image) => image.patient_id !== erased);
    await api.db.sql.query('DELETE FROM patient WHERE id = $1', [erased]);
    const hits = await similar(query.id, {}, { k: 100 });
    assert.ok(hits.length > 0 && !hits.some((hit) => hit.patient === erased), 'before the replay');
    await api.server.shards.replayNow();
    assert.ok(!(await shardRows()).some((row) => row.patient_id === erased), 'the shards hold nothing of the patient');
    assertSameHits(await similar(query.id, {}, { k: 20 }), await similar(query.id, {}, { k: 20, exact: true }), 'after the replay');
    images = images.filter((image) => image.patient_id !== erased);
  });

  test('every other write a filter reads re-projects the photograph: sex, birth year, visit date, treatments, eye', async () => {
    const [patient] = await api.db.sql.query(`SELECT p.id::text AS id, p.sex::text AS sex FROM patient p WHERE EXISTS (SELECT 1 FROM fundus_image fi WHERE fi.patient_id = p.id) ORDER BY p.id LIMIT 1`);
    const own = await api.db.sql.query('SELECT id::text AS id, visit_id::text AS visit_id, eye::text AS eye FROM fundus_image WHERE patient_id = $1 ORDER BY id', [patient.id]);
    const newSex = patient.sex === 'FEMALE' ? 'MALE' : 'FEMALE';
    const moved = own[0];
    const newEye = moved.eye === 'LEFT' ? 'RIGHT' : 'LEFT';
    const queuedFor = async (ids) => (await api.db.sql.query('SELECT count(DISTINCT image_id)::int AS n FROM search_projection_outbox WHERE image_id = ANY($1::uuid[])', [ids]))[0].n;
    const ids = own.map((image) => image.id);
    await api.db.sql.query('UPDATE patient SET sex = $2::sex, birth_year = 1950 WHERE id = $1', [patient.id, newSex]);
    assert.equal(await queuedFor(ids), ids.length, 'a change of sex or birth year queues every photograph of the patient');
    await api.server.shards.replayNow();
    await api.db.sql.query(`UPDATE visit SET visit_date = DATE '2021-06-01' WHERE id = $1`, [moved.visit_id]);
    assert.equal(await queuedFor([moved.id]), 1, 'a visit date queues its photographs');
    await api.db.sql.query(`INSERT INTO treatment (patient_id, type, eye, performed_on) VALUES ($1, 'VITRECTOMY', 'BOTH', DATE '2021-06-02')`, [patient.id]);
    await api.db.sql.query('UPDATE fundus_image SET eye = $2::eye WHERE id = $1', [moved.id, newEye]);
    assert.equal(await queuedFor(ids), ids.length, 'a treatment queues every photograph of the patient');
    await api.server.shards.replayNow();
    assert.equal(await queued(), 0);
    const [row] = (await Promise.all([0, 1].map((index) => onShard(index, 'SELECT sex, age_at_visit, treatment_types, eye FROM case_projection WHERE image_id = $1', [moved.id])))).flat();
    const treatmentTypes = (await api.db.sql.query(`SELECT DISTINCT type::text AS type FROM treatment WHERE patient_id = $1 AND (eye::text = $2 OR eye IN ('BOTH', 'UNSPECIFIED')) ORDER BY 1`, [patient.id, newEye])).map((one) => one.type);
    assert.ok(treatmentTypes.includes('VITRECTOMY'));
    assert.deepEqual({ ...row }, { sex: newSex, age_at_visit: 2021 - 1950, treatment_types: treatmentTypes, eye: newEye });
    const query = images.find((image) => image.patient_id !== patient.id);
    for (const filters of [{ sex: newSex, ageMin: 71, ageMax: 71 }, { treatmentTypes: ['VITRECTOMY'] }, { eye: newEye, ageMax: 71 }]) {
      const expected = await similar(query.id, filters, { exact: true, k: 3 });
      assertSameHits(await similar(query.id, filters, { k: 3 }), expected, `after the changes, ${JSON.stringify(filters)}`);
    }
  });

  test('with a shard unreachable the primary answers, and the outbox keeps the writes until it is back', async () => {
    const [shardName] = shardNames.slice(1);
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${shardName} WITH ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user', [shardName]);
      const target = images.find((image) => image.dr_grade === 1);
      const { body } = await api.graphql(`mutation { recordGrading(input: { caseId: "${target.id}", drGrade: 3 }) { id } }`);
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const before = api.server.shards.search.stats();
      const query = images.find((image) => image.patient_id !== target.patient_id);
      assertSameHits(await similar(query.id, { drGrades: [3] }, { k: 8 }), await similar(query.id, { drGrades: [3] }, { k: 8, exact: true }), 'answered while a shard is down');
      assert.ok(api.server.shards.search.stats().primaryFallbacks > before.primaryFallbacks, 'the primary answered');
      await assert.rejects(api.server.shards.replayNow(), 'the replay cannot reach the shard');
      assert.ok(await queued() > 0, 'the write waits in the outbox');
      await admin.query(`ALTER DATABASE ${shardName} WITH ALLOW_CONNECTIONS true`);
      // postgres_fdw keeps a broken connection per session until it fails once; the replay's retry gets a new one.
      let replayed = false;
      for (let attempt = 0; attempt < 5 && !replayed; attempt += 1) replayed = await api.server.shards.replayNow().then(() => true, () => false);
      assert.ok(replayed, 'the replay works again once the shard is back');
      assert.equal(await queued(), 0);
      assert.equal((await shardRows()).find((row) => row.image_id === target.id).dr_grade, 3);
    } finally {
      await admin.query(`ALTER DATABASE ${shardName} WITH ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.end();
    }
  });

  test('attach refuses other shards, and the API refuses to start over shards the database does not name', async () => {
    const attachedUrls = shardUrls.slice(0, 2);
    assert.deepEqual((await shards.attachShards(api.db, attachedUrls)).alreadyAttached, true);
    // An attach that stopped before all its graphs were built: attaching again builds the missing one.
    await onShard(1, 'DROP INDEX case_projection_hnsw_grade_3');
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(repositoryRoot, 'apps/api/dist/cli/shards.js'), 'attach', '--shards', attachedUrls.join(',')], { env: { ...process.env, DATABASE_URL: api.database.url, LOG_LEVEL: 'silent' } });
    assert.match(stdout, /already attached .*nothing changed.*search graphs checked/);
    assert.deepEqual(await graphsOf(1, 'case_projection'), graphNames('case_projection').map((name) => ({ name, valid: true, hnsw: true })));
    await assert.rejects(shards.attachShards(api.db, shardUrls.slice(0, 1)), (error) => error.code === 'CONFLICT' && /npm run shards -- reshard/.test(error.message));
    await assert.rejects(shards.attachShards(api.db, [shardUrls[0], shardUrls[0]]), (error) => error.code === 'BAD_USER_INPUT');
    await assert.rejects(shards.assertShardsAttached(api.db.sql, [...attachedUrls].reverse()), (error) => error.code === 'CONFLICT' && /npm run shards -- attach/.test(error.message));
    assert.throws(() => loadConfig({ SEARCH_SHARD_URLS: shardUrls.join(',') }), /SEARCH_SHARD_URLS needs DATABASE_URL/);
    assert.throws(() => loadConfig({ DATABASE_URL: process.env.TEST_DATABASE_URL, SEARCH_SHARD_URLS: 'http://example.org/x' }), /postgresql:\/\/ URL/);
  });

  test('a reshard moves the projection to three shards while searches and writes go on, and empties the old ones', async () => {
    const [oldUrls, newUrls] = [shardUrls.slice(0, 2), shardUrls];
    const rowsOf = async (indexes, table) => (await Promise.all(indexes.map((index) => onShard(index, `SELECT image_id::text AS image_id, patient_id::text AS patient_id, dr_grade FROM ${table}`)))).map((rows, position) => rows.map((row) => ({ ...row, shard: indexes[position] }))).flat();
    const embedded = async () => (await api.db.sql.query('SELECT DISTINCT image_id::text AS id FROM image_embedding ORDER BY 1')).map((row) => row.id);
    const grade = async (caseId, drGrade) => {
      const { body } = await api.graphql(`mutation { recordGrading(input: { caseId: "${caseId}", drGrade: ${drGrade} }) { id } }`);
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    };
    const oldSearch = api.server.shards.search;

    const plan = await shards.prepareReshard(api.db, newUrls);
    assert.deepEqual({ generation: plan.generation, unchanged: plan.unchanged, to: plan.to.length }, { generation: 2, unchanged: false, to: 3 });
    await assert.rejects(shards.prepareReshard(api.db, [shardUrls[2]]), (error) => error.code === 'CONFLICT' && /reshard --abort/.test(error.message), 'another reshard while one is under way');
    await assert.rejects(shards.finishReshard(api.db.sql), (error) => error.code === 'CONFLICT' && /copy/.test(error.message), 'finished before its copy');
    // Writes before the copy reaches them, and after it: both must be in the new generation.
    const [before, afterCopy] = images.filter((image) => image.dr_grade === 2);
    await grade(before.id, 1);
    // A second prepare while a copy runs (another operator) empties the next generation: that copy must stop.
    await assert.rejects(shards.copyIntoNext(api.db.sql, { shardUrls: newUrls, batch: 97, onBatch: () => shards.prepareReshard(api.db, newUrls) }), (error) => error.code === 'CONFLICT' && /prepared again/.test(error.message));
    await assert.rejects(shards.copyIntoNext(api.db.sql, { shardUrls: oldUrls }), (error) => error.code === 'CONFLICT' && /not .*reshard --abort/.test(error.message), 'a copy to other shards than the prepared ones');
    // The copy writes tables without graphs and builds them after. A graph an earlier build left invalid is built
    // again: here one is made to fail on shard 0 (a division by zero in its expression) once rows are there.
    const graphsDuringCopy = [];
    const batches = [];
    let broken = false;
    const copied = await shards.copyIntoNext(api.db.sql, {
      shardUrls: newUrls,
      batch: 97,
      onBatch: async (done) => {
        graphsDuringCopy.push(...(await graphsOf(2, 'case_projection_g2')), ...(await graphsOf(1, 'case_projection_g2')));
        batches.push(done);
        if (broken || (await onShard(0, 'SELECT count(*)::int AS n FROM case_projection_g2'))[0].n === 0) return;
        broken = true;
        await assert.rejects(onShard(0, 'CREATE INDEX CONCURRENTLY case_projection_g2_hnsw_grade_0 ON case_projection_g2 ((1 / (coalesce(dr_grade, 0) - coalesce(dr_grade, 0))))'), /division by zero/);
        assert.deepEqual(await graphsOf(0, 'case_projection_g2'), [{ name: 'case_projection_g2_hnsw_grade_0', valid: false, hnsw: false }]);
      },
    });
    // Shards 0 and 1 are in both generations: the rows whose patients stay on them are carried over within the
    // shard (hash mod 2 = mod 3 = the shard's remainder: about a third), the rest come through the primary.
    assert.deepEqual(copied.carriedOn, oldUrls.map(shards.shardName));
    assert.ok(copied.carried > 0 && copied.images > 0, JSON.stringify(copied));
    assert.equal(copied.carried + copied.images, (await embedded()).length, 'each photograph once: carried or copied');
    assert.equal(copied.carriedRows + copied.projected, copied.carried + copied.images, 'one embedding a photograph');
    assert.ok(batches.some((done) => done.carried > 0 && done.images === 0), 'carried over before the copy through the primary');
    assert.ok(broken, 'the copy took more than one batch');
    assert.deepEqual(graphsDuringCopy, [], 'no graph while the rows are copied');
    assert.ok(copied.graphSeconds > 0);
    for (const index of [0, 1, 2]) assert.deepEqual(await graphsOf(index, 'case_projection_g2'), graphNames('case_projection_g2').map((name) => ({ name, valid: true, hnsw: true })), `shard ${index}'s graphs`);
    await grade(afterCopy.id, 0);
    const erased = images.find((image) => image.patient_id !== before.patient_id && image.patient_id !== afterCopy.patient_id).patient_id;
    await api.db.sql.query('DELETE FROM patient WHERE id = $1', [erased]);
    images = images.filter((image) => image.patient_id !== erased);
    await api.server.shards.replayNow();
    // Still the old generation: the running process searches its shards.
    const query = images.find((image) => image.id !== before.id && image.id !== afterCopy.id);
    let stats = oldSearch.stats();
    assertSameHits(await similar(query.id, { drGrades: [0, 1] }, { k: 10 }), await similar(query.id, { drGrades: [0, 1] }, { k: 10, exact: true }), 'during the reshard');
    assert.equal(oldSearch.stats().shardSearches, stats.shardSearches + 1);

    const finished = await shards.finishReshard(api.db.sql);
    assert.equal(finished.generation, 2);
    assert.deepEqual(finished.shards, newUrls.map(shards.shardName));
    // The process opened over generation 1 now searches on the primary, with the same answers.
    stats = oldSearch.stats();
    assertSameHits(await similar(query.id, { drGrades: [0, 1] }, { k: 10 }), await similar(query.id, { drGrades: [0, 1] }, { k: 10, exact: true }), 'after the reshard, in a process opened before it');
    assert.equal(oldSearch.stats().resharded, stats.resharded + 1);
    assert.equal(oldSearch.stats().shardSearches, stats.shardSearches);
    assert.deepEqual(await shards.retireShards(api.db.sql), { emptied: oldUrls.map(shards.shardName), failed: [], dropped: true });
    assert.deepEqual(await rowsOf([0, 1], 'case_projection'), [], 'the retired generation\'s tables are empty');

    const rows = await rowsOf([0, 1, 2], 'case_projection_g2');
    assert.deepEqual(rows.map((row) => row.image_id).sort(), await embedded(), 'every embedded photograph, once, in the new generation');
    assert.ok(!rows.some((row) => row.patient_id === erased), 'the erased patient is not there');
    assert.equal(rows.find((row) => row.image_id === before.id).dr_grade, 1);
    assert.equal(rows.find((row) => row.image_id === afterCopy.id).dr_grade, 0);
    const shardOf = new Map();
    for (const row of rows) {
      assert.equal(shardOf.get(row.patient_id) ?? row.shard, row.shard, `patient ${row.patient_id} on one shard`);
      shardOf.set(row.patient_id, row.shard);
    }
    assert.deepEqual([...new Set(rows.map((row) => row.shard))].sort(), [0, 1, 2], 'each of the three shards holds patients');
    const attachment = await shards.readShardAttachment(api.db.sql);
    assert.deepEqual({ ...attachment, servers: attachment.servers.length }, { enabled: true, shards: 3, generation: 2, servers: 3, next: null, retired: [] });
    // Every row is in the partition the primary's hash routes its patient to, the carried ones too (the rows read
    // first, so that postgres_fdw does not ship the primary's regclass to the shard).
    for (const remainder of [0, 1, 2]) {
      const [{ wrong, n }] = await api.db.sql.query(`WITH shard AS MATERIALIZED (SELECT patient_id FROM search_shards.case_projection_g2_${remainder})
        SELECT count(*) FILTER (WHERE NOT satisfies_hash_partition('search_shards.case_projection'::regclass, 3, ${remainder}, patient_id))::int AS wrong, count(*)::int AS n FROM shard`);
      assert.ok(n > 0);
      assert.equal(wrong, 0, `rows of partition ${remainder} outside its hash bound`);
    }

    // A process started now with the new shards (what server.ts's openShards does) searches them; the old list is refused.
    await assert.rejects(shards.assertShardsAttached(api.db.sql, oldUrls), (error) => error.code === 'CONFLICT');
    const { generation } = await shards.assertShardsAttached(api.db.sql, newUrls);
    const newSearch = shards.openShardSearch({ shardUrls: newUrls, generation, poolSize: 2, logger: createLogger('silent') });
    registerShardedSearcher(api.db.prisma, newSearch);
    try {
      for (const filters of FILTERS) assertSameHits(await similar(query.id, filters, { k: 8 }), await similar(query.id, filters, { k: 8, exact: true }), `over three shards, ${JSON.stringify(filters)}`);
      assert.equal(newSearch.stats().shardSearches, FILTERS.length);
      assert.equal(newSearch.stats().primaryFallbacks, 0);

      // Back to two shards (0 and 2) through the operator's command.
      const cli = (...args) => promisify(execFile)(process.execPath, [path.join(repositoryRoot, 'apps/api/dist/cli/shards.js'), ...args], { env: { ...process.env, DATABASE_URL: api.database.url, LOG_LEVEL: 'silent' } });
      const { stdout } = await cli('reshard', '--shards', `${shardUrls[0]},${shardUrls[2]}`, '--grace-seconds', '0', '--json');
      const printed = JSON.parse(stdout);
      assert.equal(printed.finished.generation, 3);
      assert.equal(printed.copied.images + printed.copied.carried, (await embedded()).length);
      assert.deepEqual(printed.copied.carriedOn, [shardUrls[0], shardUrls[2]].map(shards.shardName), 'both shards stay: their rows carried over');
      assert.deepEqual(printed.retired, { emptied: newUrls.map(shards.shardName), failed: [], dropped: true });
      assert.deepEqual(await rowsOf([0, 1, 2], 'case_projection_g2'), []);
      assert.deepEqual((await rowsOf([0, 2], 'case_projection_g3')).map((row) => row.image_id).sort(), await embedded());
      const { stdout: abortOut } = await cli('reshard', '--abort');
      assert.match(abortOut, /no reshard was under way/);
      await assert.rejects(cli('reshard', '--abort', '--shards', shardUrls[0]), (error) => error.code === 2 && /takes no --shards/.test(error.stderr));
      const [audit] = await api.db.sql.query(`SELECT outcome, details FROM audit_event WHERE operation = 'maintain-search-shards' AND details->>'action' = 'reshard' ORDER BY occurred_at DESC LIMIT 1`);
      assert.equal(audit.outcome, 'OK');
      assert.equal(audit.details.generation, 3);
    } finally {
      await newSearch.close();
    }
  });

  test('an aborted reshard leaves the live shards as they were and empties what it had copied', async () => {
    const before = await shards.readShardAttachment(api.db.sql);
    const plan = await shards.prepareReshard(api.db, [shardUrls[1]]);
    assert.equal(plan.generation, before.generation + 1);
    // A write during the copy is replayed between its batches, not left queued until the copy ends.
    const target = images.find((image) => image.dr_grade !== null);
    let batches = 0;
    const queuedAtBatch = [];
    await shards.copyIntoNext(api.db.sql, {
      shardUrls: [shardUrls[1]],
      batch: 50,
      onBatch: async () => {
        batches += 1;
        queuedAtBatch.push(await queued());
        if (batches === 1) {
          const { body } = await api.graphql(`mutation { recordGrading(input: { caseId: "${target.id}", drGrade: 2 }) { id } }`);
          assert.equal(body.errors, undefined, JSON.stringify(body.errors));
          assert.ok(await queued() > 0, 'the correction is queued');
        }
      },
    });
    assert.ok(batches >= 2, `batches: ${batches}`);
    assert.deepEqual(queuedAtBatch.slice(1), queuedAtBatch.slice(1).map(() => 0), 'replayed between the batches');
    const table = shards.shardTableName(plan.generation);
    assert.ok((await onShard(1, `SELECT count(*)::int AS n FROM ${table}`))[0].n > 0, 'the copy reached the next shard');
    assert.deepEqual(await shards.abortReshard(api.db.sql), { aborted: true, failed: [] });
    assert.equal((await onShard(1, `SELECT count(*)::int AS n FROM ${table}`))[0].n, 0, 'emptied');
    assert.deepEqual(await shards.readShardAttachment(api.db.sql), before);
    await assert.rejects(shards.finishReshard(api.db.sql), (error) => error.code === 'CONFLICT' && /no reshard/.test(error.message));
    await assert.rejects(shards.copyIntoNext(api.db.sql, { shardUrls: [shardUrls[1]] }), (error) => error.code === 'CONFLICT' && /no reshard/.test(error.message));
  });
});
