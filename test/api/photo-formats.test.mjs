// One photograph, one verdict: the upload route (POST /uploads) and ingestion (ingestCase, which the ingest CLI and
// the ingestCase mutation go through) both leave the decision to preprocessing, so each file below gets the same
// outcome on both paths, whatever Content-Type it was sent with, and a refused file writes nothing. On PGlite and
// PostgreSQL, with the tiny contract model; synthetic images only.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { makeUndatedImportRecord } from '../support/records.mjs';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, countRows, repositoryRoot, startApi } from '../support/backends.mjs';
import { postUpload } from '../support/uploads.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { makeSyntheticFundusPng } = await dist('embedding/testing/fixtures.js');
const { ingestCase } = await dist('modules/ingest/ingest.service.js');

const DISC_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="black"/>' +
  '<circle cx="200" cy="150" r="120" fill="#dc6e28"/></svg>';

const fundus = (tint) => makeSyntheticFundusPng({ width: 300, height: 240, tint });
const frames = async (format) => sharp([await fundus(0.2), await fundus(0.7)], { join: { animated: true } }).toFormat(format).toBuffer();

/** `reason` null: accepted on both paths; otherwise BAD_USER_INPUT with that reason (upload) and rejected with that code (ingest). */
const FILES = [
  { name: 'an SVG drawing sent as image/png', bytes: async () => Buffer.from(DISC_SVG), contentType: 'image/png', reason: 'VECTOR_IMAGE' },
  { name: 'an SVG drawing sent as application/octet-stream', bytes: async () => Buffer.from(DISC_SVG), contentType: 'application/octet-stream', reason: 'VECTOR_IMAGE' },
  { name: 'an animated GIF sent as image/gif', bytes: () => frames('gif'), contentType: 'image/gif', reason: 'MULTI_FRAME_IMAGE' },
  { name: 'an animated GIF sent as image/png', bytes: () => frames('gif'), contentType: 'image/png', reason: 'MULTI_FRAME_IMAGE' },
  { name: 'an animated WebP', bytes: () => frames('webp'), contentType: 'image/webp', reason: 'MULTI_FRAME_IMAGE' },
  { name: 'a two-page TIFF', bytes: () => frames('tiff'), contentType: 'image/tiff', reason: 'MULTI_FRAME_IMAGE' },
  { name: 'a single-frame GIF', bytes: async () => sharp(await fundus(0.4)).gif().toBuffer(), contentType: 'image/gif', reason: null, storedAs: 'image/gif' },
  { name: 'a PNG photograph with a semi-transparent alpha', bytes: async () => sharp(await fundus(0.55)).ensureAlpha(0.5).png().toBuffer(), contentType: 'image/png', reason: null, storedAs: 'image/png' },
];

/** A record of a new patient for `bytes`, built the way an importer builds one. */
function makeRecord(bytes, mrn) {
  return makeUndatedImportRecord(bytes, { mrn, dataset: 'photo-formats-e2e', mrnSystem: 'urn:fundus-cbr:dataset:photo-formats-e2e', isPerImagePatient: true });
}

for (const backend of BACKENDS) {
  describe(`photograph formats on the upload route and the ingest path, ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend, { cohort: null, modelPath: TINY_MODEL });
    });
    after(async () => api?.close());

    for (const [index, file] of FILES.entries()) {
      const verdict = file.reason ? `refused with ${file.reason}` : 'accepted';
      test(`${file.name}: ${verdict} by both paths${file.reason ? ', nothing written' : ''}`, async () => {
        const bytes = await file.bytes();
        const before = await countRows(api.db);
        const uploaded = await postUpload(api, bytes, file.contentType);
        const ingested = await ingestCase({ prisma: api.db.prisma, embedder: api.embedder, record: makeRecord(bytes, `photo-${index}`) });
        if (file.reason) {
          assert.equal(uploaded.status, 400, JSON.stringify(uploaded.body));
          assert.equal(uploaded.body.errors[0].extensions.code, 'BAD_USER_INPUT');
          assert.equal(uploaded.body.errors[0].extensions.reason, file.reason);
          assert.deepEqual({ status: ingested.status, code: ingested.code }, { status: 'rejected', code: file.reason }, ingested.message);
          assert.deepEqual(await countRows(api.db), before, 'neither path wrote anything');
        } else {
          assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
          assert.match(uploaded.body.uploadToken, /^upl_/);
          assert.equal(ingested.status, 'added', ingested.message);
          const [blob] = await api.db.sql.query('SELECT mime_type FROM image_blob WHERE sha256 = $1', [ingested.contentHash]);
          assert.equal(blob.mime_type, file.storedAs);
        }
      });
    }
  });
}
