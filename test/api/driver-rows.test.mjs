// The search path's statements through node-postgres (db/driver-rows.ts) read the same values as through Prisma:
// every case of a cohort loaded both ways, exact searches and the stored-photograph check compared, on PostgreSQL
// (PGlite keeps Prisma, so there is nothing to compare there).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createTestDatabase, POSTGRES_SKIP_REASON, repositoryRoot } from '../support/backends.mjs';

const api = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));

describe('hand-written statements through the driver on postgres', { skip: POSTGRES_SKIP_REASON }, () => {
  let database;
  let plainPool;
  let plain;
  let modules;
  before(async () => {
    const [cases, search, cohort, seed, prismaClient, adapter] = await Promise.all([
      api('modules/case/case.service.js'), api('search/similar-images.js'), api('fixtures/cohort.js'), api('fixtures/seed.js'),
      api('generated/prisma/client.js'), import('@prisma/adapter-pg'),
    ]);
    modules = { ...cases, ...search };
    database = await createTestDatabase('postgres');
    await seed.loadCohort(database.db, cohort.buildCohort('test-clinic'));
    // Parts that would otherwise be empty: an external link, and an attention map (bytea) on one embedding.
    const [first] = await database.db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient_id, e.model_version FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.id LIMIT 1');
    await database.db.sql.query('INSERT INTO external_link (system, identifier, patient_id) VALUES ($1, $2, $3::uuid)', ['urn:test:ehr', 'driver-rows-1', first.patient_id]);
    const [embedding] = await database.db.sql.query('SELECT embedding::text AS embedding FROM image_embedding WHERE image_id = $1::uuid', [first.id]);
    await search.upsertImageEmbedding(database.db.prisma, { imageId: first.id, modelVersion: first.model_version, embedding: JSON.parse(embedding.embedding), attention: { width: 2, height: 2, values: new Float32Array([0.1, 0.2, 0.3, 0.4]) } });
    // A Prisma client over its own pool that nobody registered: the raw-query path.
    plainPool = new pg.Pool({ connectionString: database.config.url, max: 2 });
    plain = new prismaClient.PrismaClient({ adapter: new adapter.PrismaPg(plainPool) });
  });
  after(async () => {
    await plain?.$disconnect();
    await plainPool?.end();
    await database?.drop();
  });

  test('every case loads the same through the driver as through Prisma, every part included', async () => {
    const ids = (await database.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id')).map((row) => row.id);
    assert.ok(ids.length > 50, `${ids.length} photographs`);
    const viaDriver = await modules.loadCases(database.db.prisma, ids);
    const viaPrisma = await modules.loadCases(plain, ids);
    assert.equal(viaDriver.size, ids.length);
    assert.deepEqual([...viaDriver.entries()], [...viaPrisma.entries()]);
    const linked = [...viaDriver.values()].find((loaded) => loaded.patient.externalLinks.length > 0);
    assert.ok(linked, 'the link is loaded');
    assert.ok([...viaDriver.values()].some((loaded) => loaded.patient.hba1cReadings.length > 0), 'HbA1c readings are loaded');
  });

  test('exact searches and the stored-photograph check answer the same, the attention map included', async () => {
    const rows = await database.db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient_id, e.model_version FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id ORDER BY fi.id LIMIT 12');
    for (const [index, row] of rows.entries()) {
      const filters = { drGrades: index % 2 === 0 ? [] : [index % 5], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };
      const search = { modelVersion: row.model_version, query: { imageId: row.id }, k: 5, filters, excludePatientId: row.patient_id, mode: 'EXACT' };
      assert.deepEqual(await modules.searchSimilarImages(database.db.prisma, search), await modules.searchSimilarImages(plain, search));
      const stored = await modules.findStoredPhotograph(database.db.prisma, row.id, row.model_version);
      assert.deepEqual(stored, await modules.findStoredPhotograph(plain, row.id, row.model_version));
      if (index === 0) assert.deepEqual(Array.from(stored.attention.values), Array.from(new Float32Array([0.1, 0.2, 0.3, 0.4])));
    }
  });
});
