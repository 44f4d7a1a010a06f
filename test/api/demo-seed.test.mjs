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
