// Rolling out a model: reembed is resumable (a limited run, then the rest), a finished run does nothing, and
// searches compare one model version at a time.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, createTestDatabase, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps/api/dist', file));

for (const backend of BACKENDS) {
  describe(`reembed on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    let embedder;
    before(async () => {
      const [{ Embedder }, { loadCohort, renderSyntheticPhotograph }, { buildCohort }] = await Promise.all([dist('embedding/embedder.js'), dist('fixtures/seed.js'), dist('fixtures/cohort.js')]);
      database = await createTestDatabase(backend);
      embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
      await loadCohort(database.db, buildCohort('mini-clinic'), { renderImage: renderSyntheticPhotograph });
    });
    after(async () => {
      await database?.drop();
      await embedder?.release();
    });

    test('starting the API with a model the stored photographs lack says so at start, with the count', async () => {
      const [{ createServer }, { loadConfig }, { createLogger }, { countImagesMissingEmbedding }] = await Promise.all([
        dist('server.js'), dist('config.js'), dist('logger.js'), dist('modules/embedding-version/reembed.service.js'),
      ]);
      const missing = await countImagesMissingEmbedding(database.db.prisma, embedder.metadata.modelVersion);
      assert.ok(missing > 0, 'the fixture cohort carries only fixture embeddings');
      const lines = [];
      const config = loadConfig({ SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', PGLITE_DATA_DIR: '/nonexistent-unused' });
      // Never listened on, so nothing to close; the database and embedder belong to this suite.
      await createServer(config, { database: database.db, logger: createLogger('warn', (line) => lines.push(JSON.parse(line))), embedder });
      const warning = lines.find((line) => line.message.includes('npm run reembed'));
      assert.ok(warning, `expected a reembed warning, got ${JSON.stringify(lines)}`);
      assert.equal(warning.level, 'warn');
      assert.equal(warning.missing, missing);
      assert.equal(warning.modelVersion, embedder.metadata.modelVersion);
    });

    test('an interrupted roll-out resumes where it stopped and a finished one does nothing', async () => {
      const { reembedImages, countImagesMissingEmbedding } = await dist('modules/embedding-version/reembed.service.js');
      const version = embedder.metadata.modelVersion;
      const total = await countImagesMissingEmbedding(database.db.prisma, version);
      assert.ok(total >= 8);
      const progress = [];
      const first = await reembedImages({ prisma: database.db.prisma, embedder, batchSize: 2, limit: 3, onProgress: (p) => progress.push(p) });
      assert.equal(first.embedded, 3);
      assert.equal(await countImagesMissingEmbedding(database.db.prisma, version), total - 3);
      assert.deepEqual(progress.at(-1), { done: 3, embedded: 3, failed: 0, remaining: 0 });
      const rest = await reembedImages({ prisma: database.db.prisma, embedder, batchSize: 4 });
      assert.equal(rest.embedded, total - 3);
      assert.equal((await reembedImages({ prisma: database.db.prisma, embedder })).embedded, 0);
      const versions = await database.db.sql.query('SELECT model_version, count(*)::int AS n FROM image_embedding GROUP BY model_version ORDER BY model_version');
      assert.deepEqual(versions.map((row) => row.n), [total, total], 'the fixture version stays until it is retired');
    });

    test('a search compares only embeddings of the version it was asked for', async () => {
      const { findSimilarCases } = await dist('modules/similar-case/similar-case.service.js');
      const { createUploadStore, viewUploadsAs } = await dist('modules/upload/upload.store.js');
      const [{ id }] = await database.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
      for (const version of [embedder.metadata.modelVersion, 'fixture-clustered-v1']) {
        const result = await findSimilarCases({ prisma: database.db.prisma, uploads: viewUploadsAs(createUploadStore({ sql: database.db.sql, ttlMs: 1000 }), 'test'), imageId: id, k: 5, excludeSamePatient: false, modelVersion: version });
        assert.equal(result.modelVersion, version);
        const [{ expected }] = await database.db.sql.query(
          `SELECT (1 - (e.embedding <=> q.embedding))::float8 AS expected FROM image_embedding e, image_embedding q
           WHERE q.image_id = $1 AND q.model_version = $2 AND e.model_version = $2 AND e.image_id = $3`,
          [id, version, result.hits[0].case.id],
        );
        assert.ok(Math.abs(result.hits[0].similarity - expected) < 1e-9, `hit similarity comes from version ${version}`);
      }
    });
  });
}
