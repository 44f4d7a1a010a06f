// The demo path of `npm start`: synthetic fundus photographs rendered per grade and embedded by the loaded model
// (here the tiny contract model), so stored-case search and upload search compare one model version.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, createTestDatabase, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps/api/dist', file));

for (const backend of BACKENDS) {
  describe(`demo cohort seeding on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    let embedder;
    let seeded;
    before(async () => {
      const [{ Embedder }, { seedDemoCohortIfEmpty, renderSyntheticPhotograph }] = await Promise.all([dist('embedding/embedder.js'), dist('fixtures/seed.js')]);
      database = await createTestDatabase(backend);
      embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
      seeded = await seedDemoCohortIfEmpty(database.db, { name: 'mini-clinic', renderImage: renderSyntheticPhotograph, embedder });
    });
    after(async () => {
      await database?.drop();
      await embedder?.release();
    });

    test('every photograph is a decodable JPEG embedded by the loaded model, with a heat map', async () => {
      assert.equal(seeded.modelVersion, embedder.metadata.modelVersion);
      const rows = await database.db.sql.query(`
        SELECT fi.width, fi.height, b.mime_type, b.bytes, e.model_version, e.attention_width
        FROM fundus_image fi JOIN image_blob b ON b.sha256 = fi.content_hash JOIN image_embedding e ON e.image_id = fi.id`);
      assert.equal(rows.length, seeded.images);
      assert.ok(rows.length >= 8);
      for (const row of rows) {
        assert.equal(row.model_version, embedder.metadata.modelVersion);
        assert.equal(row.mime_type, 'image/jpeg');
        assert.ok(row.attention_width > 0);
        const meta = await sharp(Buffer.from(row.bytes)).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', row.width, row.height]);
      }
    });

    test('the patients are marked synthetic and a second seed adds nothing', async () => {
      const { seedDemoCohortIfEmpty } = await dist('fixtures/seed.js');
      const [{ synthetic }] = await database.db.sql.query('SELECT bool_and(is_synthetic) AS synthetic FROM dataset');
      assert.equal(synthetic, true);
      assert.equal(await seedDemoCohortIfEmpty(database.db, { name: 'mini-clinic' }), null);
    });
  });
}

// demo-clinic's records beyond the photographs (oedema risk, HbA1c series, treatments between visits with their
// indications) land in the database as generated: six of its patients, four with injection courses, loaded with
// placeholder bytes and fixture vectors to stay fast (the photographs are checked above).
for (const backend of BACKENDS) {
  describe(`demo-clinic records on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    let cohort;
    before(async () => {
      const [{ loadCohort }, { buildCohort }] = await Promise.all([dist('fixtures/seed.js'), dist('fixtures/cohort.js')]);
      database = await createTestDatabase(backend);
      const demo = buildCohort('demo-clinic');
      const injected = demo.patients.filter((p) => p.treatments.some((t) => t.type === 'ANTI_VEGF' && t.visitIndex === null)).slice(0, 4);
      const untreated = demo.patients.filter((p) => p.treatments.every((t) => t.type === 'OBSERVATION')).slice(0, 2);
      cohort = { ...demo, patients: [...injected, ...untreated] };
      await loadCohort(database.db, cohort);
    });
    after(async () => {
      await database?.drop();
    });

    test('visits, gradings with oedema risk, HbA1c series and treatments between visits are all stored', async () => {
      const generated = {
        visits: cohort.patients.reduce((sum, p) => sum + p.visits.length, 0),
        hba1c: cohort.patients.reduce((sum, p) => sum + p.hba1c.length, 0),
        diagnoses: cohort.patients.reduce((sum, p) => sum + p.diagnoses.length, 0),
        treatments: cohort.patients.reduce((sum, p) => sum + p.treatments.length, 0),
        betweenVisits: cohort.patients.reduce((sum, p) => sum + p.treatments.filter((t) => t.visitIndex === null).length, 0),
      };
      assert.equal(cohort.patients.length, 6);
      assert.ok(generated.betweenVisits > 0);
      const [stored] = await database.db.sql.query(`
        SELECT (SELECT count(*)::int FROM visit) AS visits, (SELECT count(*)::int FROM hba1c_reading) AS hba1c,
               (SELECT count(*)::int FROM diagnosis) AS diagnoses, (SELECT count(*)::int FROM treatment) AS treatments,
               (SELECT count(*)::int FROM treatment WHERE visit_id IS NULL) AS "betweenVisits",
               (SELECT count(*)::int FROM treatment WHERE notes IS NULL) AS "withoutNotes",
               (SELECT count(*)::int FROM grading WHERE macular_edema_risk IS NULL) AS "gradingsWithoutRisk",
               (SELECT count(*)::int FROM grading) AS gradings`);
      const { withoutNotes, gradingsWithoutRisk, gradings, ...counts } = stored;
      assert.deepEqual(counts, generated);
      assert.deepEqual({ gradings, withoutNotes, gradingsWithoutRisk }, { gradings: generated.visits * 2, withoutNotes: 0, gradingsWithoutRisk: 0 });
      const sameDay = await database.db.sql.query(`
        SELECT count(*)::int AS n FROM treatment t JOIN visit v ON v.id = t.visit_id WHERE v.visit_date <> t.performed_on`);
      assert.equal(sameDay[0].n, 0, 'a treatment given at a visit is dated on it');
    });
  });
}
