// The PostgreSQL pools of db/database.ts: named prepared statements (db/statement-names.ts: a connection parses a
// statement once and runs it again by name with other values, and the answers are those of the values given), and
// the grade-filtered pool beside the main one (a grade-filtered search is one statement there, no transaction).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { POSTGRES_SKIP_REASON, createTestDatabase, migrationsDir, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const [{ loadCohort }, { buildCohort }, search, driverRows] = await Promise.all([dist('fixtures/seed.js'), dist('fixtures/cohort.js'), dist('search/similar-images.js'), dist('db/driver-rows.js')]);
const NO_FILTERS = { drGrades: [], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };

describe('named prepared statements on PostgreSQL', { skip: POSTGRES_SKIP_REASON }, () => {
  let database;
  before(async () => {
    database = await createTestDatabase('postgres');
  });
  after(async () => database?.drop());

  /** A database handle of one connection, so the prepared statements read back are the ones it made. */
  async function openOneConnection(namedStatements) {
    const { openDatabase } = await import('../../apps/api/dist/db/database.js');
    return openDatabase({ database: { kind: 'postgres', url: database.config.url }, migrationsDir, databasePoolSize: 1, databaseNamedStatements: namedStatements });
  }

  test('a parameterised statement is prepared once under its name and answers for each execution\'s values', async () => {
    const db = await openOneConnection(true);
    try {
      const run = (value) => db.prisma.$queryRaw`SELECT ${value}::int * 2 AS doubled`;
      assert.deepEqual(await run(3), [{ doubled: 6 }], 'the first execution, unnamed');
      assert.deepEqual(await run(20), [{ doubled: 40 }], 'the second, prepared under its name');
      assert.deepEqual(await run(7), [{ doubled: 14 }], 'the third binds its own value to the prepared statement');
      const prepared = await db.prisma.$queryRaw`SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE ${'%doubled%'} AND name <> ${''}`;
      const doubled = prepared.filter((row) => /AS doubled$/.test(row.statement));
      assert.equal(doubled.length, 1, `one prepared statement for the three executions: ${JSON.stringify(prepared)}`);
      assert.match(doubled[0].name, /^fcbr_[0-9a-f]{24}$/);
      assert.ok(db.namedStatements.stats().named >= 1);
      // The SQL runner (audit rows, upload tokens, migrations) names its parameterised statements too.
      for (const value of [1, 2, 41]) assert.deepEqual(await db.sql.query('SELECT $1::int + 1 AS incremented', [value]), [{ incremented: value + 1 }]);
      const runner = await db.sql.query("SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 1 AS incremented'");
      assert.equal(runner.length, 1);
      assert.match(runner[0].name, /^fcbr_/);
    } finally {
      await db.close();
    }
  });

  test('turned off (DATABASE_NAMED_STATEMENTS=false), nothing is prepared by name', async () => {
    const db = await openOneConnection(false);
    try {
      assert.deepEqual(await db.prisma.$queryRaw`SELECT ${5}::int * 2 AS doubled`, [{ doubled: 10 }]);
      const [{ n }] = await db.prisma.$queryRaw`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name <> ${''}`;
      assert.equal(n, 0);
      assert.equal(db.namedStatements, null);
    } finally {
      await db.close();
    }
  });

  test('a grade-filtered search runs as one statement on the grade-filtered pool, whose sessions walk with the larger ef_search; the hits are the exact top k', async () => {
    const { db } = database;
    const { modelVersion } = await loadCohort(db, buildCohort('test-clinic'));
    await db.sql.exec('ANALYZE image_embedding');
    const gradeFiltered = search.gradeFilteredClientFor(db.prisma);
    assert.ok(gradeFiltered, 'openDatabase registers a grade-filtered client for its PostgreSQL pool');
    const setting = async (client) => (await client.$queryRaw`SELECT current_setting('hnsw.ef_search') AS ef`)[0].ef;
    assert.equal(await setting(db.prisma), String(search.APPROXIMATE_SEARCH_TUNING.efSearch));
    assert.equal(await setting(gradeFiltered), String(search.APPROXIMATE_SEARCH_TUNING.efSearchGradeFiltered));
    assert.ok((await search.hnswGrades(db.prisma)).size > 0, 'the migration\'s HNSW graphs are in place');
    const queries = await db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.content_hash LIMIT 4');
    // No transaction may be opened on the main client for these searches (it was BEGIN, set_config, the search,
    // COMMIT), and every approximate one must run on the grade-filtered client.
    const transaction = db.prisma.$transaction;
    let transactions = 0;
    db.prisma.$transaction = (...args) => {
      transactions += 1;
      return transaction.apply(db.prisma, args);
    };
    // The grade-filtered client's statements go through the driver runner over its pool (db/driver-rows.ts).
    const filteredRunner = driverRows.driverRunnerFor(gradeFiltered);
    assert.ok(filteredRunner, 'the grade-filtered client has a driver runner over its pool');
    const filteredQuery = filteredRunner.query;
    let onGradeFiltered = 0;
    filteredRunner.query = (...args) => {
      onGradeFiltered += 1;
      return filteredQuery.apply(filteredRunner, args);
    };
    let approximateSearches = 0;
    try {
      let compared = 0;
      for (const { id, patient } of queries) {
        for (const grade of [0, 1, 2, 3, 4]) {
          const request = (mode) => ({ modelVersion, query: { imageId: id }, k: 3, filters: { ...NO_FILTERS, drGrades: [grade] }, excludePatientId: patient, mode });
          const approximate = await search.searchSimilarImages(db.prisma, request('APPROXIMATE'));
          approximateSearches += 1;
          const exact = await search.searchSimilarImages(db.prisma, request('EXACT'));
          assert.deepEqual(approximate.map((hit) => hit.imageId), exact.map((hit) => hit.imageId), `grade ${grade}`);
          assert.ok(approximate.every((hit) => hit.grade === grade));
          if (exact.length === 3) compared += 1;
        }
      }
      assert.ok(compared >= 10, `only ${compared} grade-filtered searches had 3 hits`);
      assert.equal(transactions, 0, 'grade-filtered searches opened a transaction');
      assert.equal(onGradeFiltered, approximateSearches, 'each grade-filtered search ran on the grade-filtered pool');
    } finally {
      db.prisma.$transaction = transaction;
      filteredRunner.query = filteredQuery;
    }
  });
});

