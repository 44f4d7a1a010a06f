// `npm run vector-index` (search/vector-indexes.ts) on both databases, as an operator runs it: a child process on
// the configured database (PGlite belongs to one process at a time, so the suite closes its own handle around each
// CLI run). status names each grade's index and rows; rebuild replaces migration 0007's HNSW graphs by IVFFlat
// indexes with lists from the rows, one vector index per grade, recorded and audited; searches then still return k
// hits, the same as EXACT, also when the planner is made to take the IVFFlat index; bad input exits 2 and changes
// nothing; a rebuild back to HNSW restores the migration's index.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, createTestDatabase, migrationsDir, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const [{ openDatabase }, { loadCohort }, { buildCohort }, search, vectorIndexes, { Prisma }] = await Promise.all([
  dist('db/database.js'), dist('fixtures/seed.js'), dist('fixtures/cohort.js'), dist('search/similar-images.js'), dist('search/vector-indexes.js'), dist('generated/prisma/client.js'),
]);
const CLI = path.join(repositoryRoot, 'apps', 'api', 'dist', 'cli', 'vector-index.js');
const NO_FILTERS = { drGrades: [], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };

for (const backend of BACKENDS) {
  describe(`npm run vector-index on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    let db;
    let modelVersion;
    let environment;
    before(async () => {
      database = await createTestDatabase(backend);
      db = database.db;
      ({ modelVersion } = await loadCohort(db, buildCohort('test-clinic')));
      await db.sql.exec('ANALYZE image_embedding');
      const { PATH, HOME } = process.env;
      environment = backend === 'pglite'
        ? { PATH, HOME, PGLITE_DATA_DIR: database.config.dataDir, LOG_LEVEL: 'warn', SEED_DEMO_COHORT: 'false' }
        : { PATH, HOME, DATABASE_URL: database.config.url, LOG_LEVEL: 'warn', SEED_DEMO_COHORT: 'false' };
    });
    after(async () => {
      await db?.close();
      await database?.drop();
    });

    /** The CLI as a child process; on PGlite the suite's own handle is closed while it runs, then reopened. */
    async function cli(...args) {
      if (backend === 'pglite') await db.close();
      const run = spawnSync(process.execPath, [CLI, ...args], { env: environment, encoding: 'utf8', timeout: 120_000 });
      if (backend === 'pglite') db = await openDatabase({ database: { kind: 'pglite', dataDir: database.config.dataDir }, migrationsDir });
      return run;
    }
    const vectorIndexRows = () => db.sql.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'image_embedding' AND (indexdef LIKE '%USING hnsw%' OR indexdef LIKE '%USING ivfflat%') ORDER BY indexname");
    const gradeCounts = async () => Object.fromEntries((await db.sql.query('SELECT dr_grade, count(*)::int AS n FROM image_embedding WHERE dr_grade IS NOT NULL GROUP BY dr_grade')).map((row) => [row.dr_grade, row.n]));

    test('status: each grade has the migration\'s HNSW graph, its rows now, and no rebuild yet', async () => {
      const run = await cli('status', '--json');
      assert.equal(run.status, 0, run.stderr);
      const { grades: status, whole } = JSON.parse(run.stdout);
      const counts = await gradeCounts();
      const [{ n: rows }] = await db.sql.query('SELECT count(*)::int AS n FROM image_embedding');
      assert.deepEqual(whole, { index: null, rowsNow: rows, recommendation: null }, 'no whole-case-base index before a rebuild; none advised at this size');
      assert.deepEqual(status.map((grade) => grade.grade), [0, 1, 2, 3, 4]);
      for (const grade of status) {
        assert.deepEqual(grade.indexes.map((index) => [index.name, index.kind]), [[`image_embedding_hnsw_grade_${grade.grade}`, 'hnsw']]);
        assert.equal(grade.rowsNow, counts[grade.grade] ?? 0);
        assert.ok(grade.rowsNow > 0, 'the test cohort has every grade');
        assert.equal(grade.build, null);
        assert.equal(grade.recommendation, null, 'a graph under 50,000 rows needs no rebuild');
      }
      const text = await cli('status');
      assert.match(text.stdout, /^grade 4: image_embedding_hnsw_grade_4 \(hnsw, [\d.]+ MB\); rows now \d+, never rebuilt/m);
      assert.match(text.stdout, /^whole case base: none \(searches without a grade filter merge the grades' indexes\); rows now \d+$/m);
    });

    test('bad input exits 2 with a clear message and changes nothing', async () => {
      const indexesBefore = await vectorIndexRows();
      for (const [args, message] of [
        [['rebuild', '--grade', '7'], /--grade must be an ICDR grade 0-4, got "7"/],
        [['rebuild', '--grade', '-1'], /--grade must be an ICDR grade 0-4/],
        [['rebuild', '--kind', 'flat'], /--kind must be one of ivfflat, hnsw, got "flat"/],
        [['rebuild', '--lists', '5'], /unknown option --lists/],
        [['reindex'], /unknown command "reindex"/],
        [['status', '--grade', '1'], /status takes no --grade/],
        [['status', '--whole'], /status takes no --grade, --kind or --whole/],
        [['rebuild', '--whole', '--grade', '2'], /give --grade or --whole, not both/],
        [['rebuild', '--whole', '--kind', 'hnsw'], /the whole-case-base index is IVFFlat only/],
      ]) {
        const run = await cli(...args);
        assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, message);
      }
      assert.deepEqual(await vectorIndexRows(), indexesBefore);
      assert.deepEqual(await db.sql.query('SELECT * FROM vector_index_build'), []);
      await assert.rejects(vectorIndexes.rebuildVectorIndex({ db, grade: 5, kind: 'ivfflat' }), (error) => error.code === 'BAD_USER_INPUT');
      assert.deepEqual(await vectorIndexRows(), indexesBefore);
    });

    test('rebuild: every grade becomes one IVFFlat index with lists from its rows, recorded and audited', async () => {
      const run = await cli('rebuild', '--json');
      assert.equal(run.status, 0, run.stderr);
      const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
      const built = lines.filter((line) => !('whole' in line));
      const counts = await gradeCounts();
      const [{ n: rows }] = await db.sql.query('SELECT count(*)::int AS n FROM image_embedding');
      // Without --grade the whole-case-base index is built too, last: IVFFlat over every row, half precision.
      assert.deepEqual(lines.at(-1).whole && [lines.at(-1).whole.name, lines.at(-1).whole.rows, lines.at(-1).whole.lists, lines.at(-1).whole.dimensions], [vectorIndexes.WHOLE_INDEX_NAME, rows, vectorIndexes.wholeIndexListsFor(rows), 128]);
      assert.deepEqual(built.map((one) => [one.grade, one.name, one.rows, one.lists, one.dropped]), [0, 1, 2, 3, 4].map((grade) => [
        grade, `image_embedding_ivfflat_grade_${grade}`, counts[grade], vectorIndexes.ivfflatListsFor(counts[grade]), [`image_embedding_hnsw_grade_${grade}`],
      ]));
      const indexes = await vectorIndexRows();
      assert.deepEqual(indexes.map((row) => row.indexname), ['image_embedding_hnsw_ungraded', ...[0, 1, 2, 3, 4].map((grade) => `image_embedding_ivfflat_grade_${grade}`), vectorIndexes.WHOLE_INDEX_NAME]);
      assert.match(indexes[6].indexdef, new RegExp(`USING ivfflat \\(\\(\\(?embedding\\)?::halfvec\\(128\\)\\) halfvec_cosine_ops\\) WITH \\(lists='${vectorIndexes.wholeIndexListsFor(rows)}'\\)$`));
      assert.match(indexes[5].indexdef, new RegExp(`USING ivfflat \\(embedding vector_cosine_ops\\) WITH \\(lists='${vectorIndexes.ivfflatListsFor(counts[4])}'\\) WHERE \\(dr_grade = 4\\)`));
      assert.ok(counts[0] <= 100, `grade 0 holds ${counts[0]} rows: at most 10 lists, so probes 10 read them all and searches below are exact`);
      const status = await vectorIndexes.vectorIndexStatus({ db });
      for (const grade of status) {
        assert.equal(grade.indexes.length, 1);
        assert.equal(grade.indexes[0].kind, 'ivfflat');
        assert.deepEqual([grade.build.kind, grade.build.lists, grade.build.rowsAtBuild], ['ivfflat', grade.indexes[0].lists, grade.rowsNow]);
        assert.equal(grade.recommendation, null);
      }
      const audit = await db.sql.query("SELECT outcome, details FROM audit_event WHERE operation = 'maintain-vector-index' ORDER BY seq");
      assert.deepEqual(audit.map((row) => [row.outcome, row.details.action, row.details.grade ?? (row.details.whole ? 'whole' : null)]), [['OK', 'status', null], ['OK', 'status', null], ...[0, 1, 2, 3, 4].map((grade) => ['OK', 'rebuild', grade]), ['OK', 'rebuild', 'whole']]);
      const whole = await vectorIndexes.wholeIndexStatus({ db });
      assert.deepEqual([whole.index.name, whole.index.lists, whole.rowsNow, whole.recommendation], [vectorIndexes.WHOLE_INDEX_NAME, vectorIndexes.wholeIndexListsFor(rows), rows, null]);
    });

    test('after the rebuild, searches return k hits and the same hits as EXACT, also through the IVFFlat indexes', async () => {
      search.forgetIndexKinds(db.prisma);
      assert.deepEqual([...(await search.hnswGrades(db.prisma))], [], 'no grade walks a graph any more');
      // Every search connection starts with the IVFFlat settings (session options, db/database.ts).
      const [settings] = await db.prisma.$queryRaw`SELECT current_setting('ivfflat.probes') AS probes, current_setting('ivfflat.iterative_scan') AS scan, current_setting('ivfflat.max_probes') AS max`;
      assert.deepEqual(settings, { probes: '10', scan: 'relaxed_order', max: '100' });
      const queries = await db.sql.query("SELECT fi.id::text AS id, fi.patient_id::text AS patient FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.content_hash LIMIT 6");
      const scenarios = [NO_FILTERS, ...[0, 1, 2, 3, 4].map((grade) => ({ ...NO_FILTERS, drGrades: [grade] })), { ...NO_FILTERS, drGrades: [0, 2], eye: 'LEFT' }];
      let compared = 0;
      for (const { id, patient } of queries) {
        for (const filters of scenarios) {
          const request = (mode) => ({ modelVersion, query: { imageId: id }, k: 5, filters, excludePatientId: patient, mode });
          const exact = await search.searchSimilarImages(db.prisma, request('EXACT'));
          const approximate = await search.searchSimilarImages(db.prisma, request('APPROXIMATE'));
          assert.deepEqual(approximate.map((hit) => hit.imageId), exact.map((hit) => hit.imageId), JSON.stringify(filters));
          if (exact.length === 5 && filters.drGrades.length === 1) {
            // The approximate statement itself (no exact fallback) with the sequential scan priced out: the
            // planner takes the grade's IVFFlat index, and its iterative scan still returns the exact top k.
            const [plan, rows] = await db.prisma.$transaction(async (tx) => {
              await tx.$executeRawUnsafe('SET LOCAL enable_seqscan = off');
              const found = await tx.$queryRaw(search.approximateSearchSql(request('APPROXIMATE')));
              const shown = await tx.$queryRaw(Prisma.sql`EXPLAIN ${search.approximateSearchSql(request('APPROXIMATE'))}`);
              return [shown.map((row) => row['QUERY PLAN']).join('\n'), found];
            });
            assert.match(plan, new RegExp(`image_embedding_ivfflat_grade_${filters.drGrades[0]}`));
            assert.deepEqual(rows.map((row) => row.image_id), exact.map((hit) => hit.imageId));
            compared += 1;
          }
        }
      }
      assert.ok(compared >= 10, `only ${compared} grade-filtered searches had 5 hits`);
    });

    test('without a grade filter, and for the vote\'s graded neighbours, searches take the whole-case-base index: the same hits as EXACT', async () => {
      search.forgetIndexKinds(db.prisma);
      assert.equal(await search.wholeIndexDimensions(db.prisma), 128);
      const queries = await db.sql.query("SELECT fi.id::text AS id, fi.patient_id::text AS patient FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.content_hash LIMIT 6");
      for (const { id, patient } of queries) {
        for (const filters of [NO_FILTERS, search.EVERY_GRADE_FILTERS, { ...NO_FILTERS, eye: 'RIGHT', ageMin: 40 }]) {
          const request = (mode) => ({ modelVersion, query: { imageId: id }, k: 5, filters, excludePatientId: patient, mode });
          const exact = await search.searchSimilarImages(db.prisma, request('EXACT'));
          assert.ok(exact.length > 0);
          const [plan, rows] = await db.prisma.$transaction(async (tx) => {
            await tx.$executeRawUnsafe('SET LOCAL enable_seqscan = off');
            const statement = search.wholeIndexSearchSql(request('APPROXIMATE'), 128);
            const found = await tx.$queryRaw(statement);
            const shown = await tx.$queryRaw(Prisma.sql`EXPLAIN ${statement}`);
            return [shown.map((row) => row['QUERY PLAN']).join('\n'), found];
          });
          // (Under the selective eye + age filter at this size the planner may rank the few matching rows itself.)
          if (filters.eye === null) assert.match(plan, new RegExp(vectorIndexes.WHOLE_INDEX_NAME), JSON.stringify(filters));
          assert.deepEqual(rows.map((row) => row.image_id), exact.map((hit) => hit.imageId), JSON.stringify(filters));
          // The service's own path answers the same (it takes the whole-case-base index when there is one).
          assert.deepEqual((await search.searchSimilarImages(db.prisma, request('APPROXIMATE'))).map((hit) => hit.imageId), exact.map((hit) => hit.imageId));
          if (filters === search.EVERY_GRADE_FILTERS) assert.ok(exact.every((hit) => hit.grade !== null), 'the voters are graded');
        }
      }
      // A grade filter never takes it: its statement orders by the full-precision distance.
      const [{ id }] = queries;
      const graded = await db.prisma.$queryRaw(Prisma.sql`EXPLAIN ${search.approximateSearchSql({ modelVersion, query: { imageId: id }, k: 5, filters: { ...NO_FILTERS, drGrades: [2] }, excludePatientId: null, mode: 'APPROXIMATE' })}`);
      assert.doesNotMatch(graded.map((row) => row['QUERY PLAN']).join('\n'), new RegExp(vectorIndexes.WHOLE_INDEX_NAME));
    });

    test('rebuild --grade 0 --kind hnsw brings back the migration\'s graph; grade-filtered walks of it use the larger ef_search', async () => {
      const run = await cli('rebuild', '--grade', '0', '--kind', 'hnsw');
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^grade 0: built image_embedding_hnsw_grade_0 \(hnsw\) over \d+ rows .*dropped image_embedding_ivfflat_grade_0$/m);
      const [grade0] = await vectorIndexes.vectorIndexStatus({ db });
      assert.deepEqual(grade0.indexes.map((index) => index.name), ['image_embedding_hnsw_grade_0']);
      assert.deepEqual([grade0.build.kind, grade0.build.lists], ['hnsw', null]);
      search.forgetIndexKinds(db.prisma);
      assert.deepEqual([...(await search.hnswGrades(db.prisma))], [0]);
    });

    test('rebuild --kind hnsw for every grade also drops the whole-case-base index; searches without a filter merge the graphs again', async () => {
      const run = await cli('rebuild', '--kind', 'hnsw');
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^whole case base: dropped the whole-case-base index$/m);
      assert.deepEqual((await vectorIndexRows()).map((row) => row.indexname), ['image_embedding_hnsw_grade_0', 'image_embedding_hnsw_grade_1', 'image_embedding_hnsw_grade_2', 'image_embedding_hnsw_grade_3', 'image_embedding_hnsw_grade_4', 'image_embedding_hnsw_ungraded']);
      search.forgetIndexKinds(db.prisma);
      assert.equal(await search.wholeIndexDimensions(db.prisma), null);
      const [{ id, patient }] = await db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient FROM fundus_image fi ORDER BY fi.content_hash LIMIT 1');
      const request = (mode) => ({ modelVersion, query: { imageId: id }, k: 5, filters: NO_FILTERS, excludePatientId: patient, mode });
      assert.deepEqual((await search.searchSimilarImages(db.prisma, request('APPROXIMATE'))).map((hit) => hit.imageId), (await search.searchSimilarImages(db.prisma, request('EXACT'))).map((hit) => hit.imageId));
    });

    test('status recommends a rebuild when an IVFFlat grade more than doubled and its lists would grow', () => {
      const ivfflat = { name: 'image_embedding_ivfflat_grade_2', kind: 'ivfflat', lists: 150, valid: true, megabytes: 1 };
      const build = { kind: 'ivfflat', lists: 150, rowsAtBuild: 150_000, builtAt: new Date() };
      assert.equal(vectorIndexes.rebuildRecommendation(ivfflat, 290_000, build), null, 'under 2x');
      assert.match(vectorIndexes.rebuildRecommendation(ivfflat, 310_000, build), /rows grew from 150000 at build to 310000 .*lists 150, 557 for the rows now\): rebuild recommended/);
      const tiny = { ...ivfflat, lists: 1 };
      assert.equal(vectorIndexes.rebuildRecommendation(tiny, 2, { ...build, lists: 1, rowsAtBuild: 0 }), null, 'lists stay 1: nothing to gain');
      assert.match(vectorIndexes.rebuildRecommendation({ ...ivfflat, kind: 'hnsw', lists: null }, 50_000, null), /HNSW over 50000 rows \(>= 50000\): rebuild as ivfflat recommended/);
      assert.equal(vectorIndexes.rebuildRecommendation({ ...ivfflat, kind: 'hnsw', lists: null }, 49_999, null), null);
      assert.match(vectorIndexes.rebuildRecommendation(undefined, 10, null), /no vector index/);
      assert.deepEqual([0, 1, 2, 99, 100, 1500, 100_000, 1_000_000, 4_000_000].map(vectorIndexes.ivfflatListsFor), [1, 1, 1, 10, 10, 39, 316, 1000, 2000]);
    });
  });
}
