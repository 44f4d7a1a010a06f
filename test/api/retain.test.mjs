// The CBR retain step through the real server with the tiny contract model, on PGlite and PostgreSQL: an uploaded
// query photograph saved with ingestCase becomes a case (patient, visit, photograph, grading, embedding) that the
// next search finds, idempotently by content hash, CONFLICT for another patient, and the suggestion shown for the
// upload is linked to the retained case (its grading is the clinician's revision). The committed calibration is
// for the shipped model, so suggestions for the tiny model's embeddings come UNCALIBRATED with the reason. An
// expired upload token is NOT_FOUND and writes nothing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, countRows, repositoryRoot, startApi } from '../support/backends.mjs';
import { postUpload } from '../support/uploads.mjs';

const { makeSyntheticFundusPng } = await import(path.join(repositoryRoot, 'apps/api/dist/embedding/testing/fixtures.js'));
const { upsertImageEmbedding } = await import(path.join(repositoryRoot, 'apps/api/dist/search/similar-images.js'));

const SEARCH = `query S($input: SimilarCasesInput!) { similarCases(input: $input) {
  modelVersion hits { rank case { id } } suggestion { id status reason suggestedGrade voters } } }`;
const INGEST = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id patient { mrn } referenceGrading { drGrade source } } } }`;
const SYSTEM = 'urn:fundus-cbr:synthetic:test-clinic';

const ingestInput = (uploadToken, mrn, drGrade = 2) => ({ uploadToken, patient: { mrn, mrnSystem: SYSTEM, birthYear: 1961, sex: 'FEMALE' }, visitDate: '2024-03-04', eye: 'RIGHT', grading: { drGrade, maculopathy: false } });

for (const backend of BACKENDS) {
  describe(`retain on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend, { modelPath: TINY_MODEL });
      // Twelve stored cases embedded by the tiny model, from synthetic photographs of different tints.
      const cases = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 12');
      for (const [index, row] of cases.entries()) {
        const result = await api.embedder.embedImage(await makeSyntheticFundusPng({ width: 480, height: 360, tint: index / 12 }));
        await upsertImageEmbedding(api.db.prisma, { imageId: row.id, modelVersion: api.embedder.metadata.modelVersion, embedding: result.embedding, attention: result.attention });
      }
    });
    after(async () => api?.close());

    test('saving a searched upload creates the case, links its suggestion, and the next search finds it; a resave is a DUPLICATE', async () => {
      const photograph = await makeSyntheticFundusPng({ width: 500, height: 380, tint: 0.37 });
      const uploaded = await postUpload(api, photograph);
      assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
      const token = uploaded.body.uploadToken;
      const searched = await api.graphql(SEARCH, { input: { uploadToken: token, k: 5 } });
      assert.equal(searched.body.errors, undefined, JSON.stringify(searched.body.errors));
      const { suggestion } = searched.body.data.similarCases;
      assert.equal(suggestion.status, 'UNCALIBRATED');
      assert.match(suggestion.reason, new RegExp(`fitted for model .* but this search compares embeddings of model ${api.embedder.metadata.modelVersion.replace(/[.+]/g, '\\$&')}`));
      const [shown] = await api.db.sql.query('SELECT image_id, upload_content_hash, subject FROM suggestion_log WHERE id = $1', [suggestion.id]);
      assert.equal(shown.image_id, null, 'an upload has no case yet');
      assert.match(shown.upload_content_hash, /^[0-9a-f]{64}$/);

      const before = await countRows(api.db);
      const saved = await api.graphql(INGEST, { input: ingestInput(token, 'RETAIN-1') });
      assert.equal(saved.body.errors, undefined, JSON.stringify(saved.body.errors));
      assert.equal(saved.body.data.ingestCase.status, 'ADDED');
      const retained = saved.body.data.ingestCase.case;
      assert.deepEqual(retained.referenceGrading, { drGrade: 2, source: 'CLINICIAN' });
      const afterSave = await countRows(api.db);
      for (const table of ['patient', 'visit', 'image_blob', 'fundus_image', 'grading', 'image_embedding']) assert.equal(afterSave[table], before[table] + 1, table);
      assert.equal(afterSave.suggestion_log, before.suggestion_log, 'the shown suggestion is linked, not copied');
      const [linked] = await api.db.sql.query('SELECT image_id::text AS image_id, clinician_grade, agrees, revised_grading_id IS NOT NULL AS revised FROM suggestion_log WHERE id = $1', [suggestion.id]);
      assert.deepEqual(linked, { image_id: retained.id, clinician_grade: 2, agrees: suggestion.suggestedGrade === 2, revised: true });

      // The very next searches find it: from the retained case itself, and a near-identical new photograph first.
      const fromCase = await api.graphql(SEARCH, { input: { imageId: retained.id, k: 3 } });
      assert.equal(fromCase.body.errors, undefined, JSON.stringify(fromCase.body.errors));
      const similar = await postUpload(api, await makeSyntheticFundusPng({ width: 502, height: 380, tint: 0.37 }));
      const next = await api.graphql(SEARCH, { input: { uploadToken: similar.body.uploadToken, k: 5 } });
      assert.equal(next.body.data.similarCases.hits[0].case.id, retained.id);

      const again = await api.graphql(INGEST, { input: ingestInput(token, 'RETAIN-1') });
      assert.equal(again.body.data.ingestCase.status, 'DUPLICATE');
      assert.equal(again.body.data.ingestCase.case.id, retained.id);
      const afterResave = await countRows(api.db);
      assert.deepEqual({ ...afterResave, suggestion_log: 0 }, { ...afterSave, suggestion_log: 0 }, 'a resave writes no case rows');
      assert.equal(afterResave.suggestion_log, afterSave.suggestion_log + 2, 'only the two searches since were logged');
      const [stillLinked] = await api.db.sql.query('SELECT count(*)::int AS n FROM suggestion_log WHERE image_id = $1 AND id = $2', [retained.id, suggestion.id]);
      assert.equal(stillLinked.n, 1);
    });

    test('the same photograph saved for another patient is CONFLICT naming the stored case, and writes nothing', async () => {
      const photograph = await makeSyntheticFundusPng({ width: 520, height: 390, tint: 0.71 });
      const first = await postUpload(api, photograph);
      const saved = await api.graphql(INGEST, { input: ingestInput(first.body.uploadToken, 'RETAIN-2') });
      assert.equal(saved.body.data.ingestCase.status, 'ADDED');
      const second = await postUpload(api, photograph);
      const before = await countRows(api.db);
      const conflict = await api.graphql(INGEST, { input: ingestInput(second.body.uploadToken, 'RETAIN-3') });
      assert.equal(conflict.body.errors?.[0]?.extensions?.code, 'CONFLICT');
      assert.equal(conflict.body.errors[0].extensions.caseId, saved.body.data.ingestCase.case.id);
      assert.deepEqual(await countRows(api.db), before);
    });
  });
}

describe('an expired upload token', () => {
  let api;
  before(async () => {
    api = await startApi('pglite', { cohort: null, modelPath: TINY_MODEL, env: { UPLOAD_TOKEN_TTL_SECONDS: '1' } });
  });
  after(async () => api?.close());

  test('cannot be retained nor searched: NOT_FOUND on uploadToken, nothing written', async () => {
    const uploaded = await postUpload(api, await makeSyntheticFundusPng({ width: 480, height: 360, tint: 0.2 }));
    assert.equal(uploaded.status, 201);
    await sleep(1300);
    const before = await countRows(api.db);
    const saved = await api.graphql(INGEST, { input: ingestInput(uploaded.body.uploadToken, 'EXPIRED-1') });
    assert.equal(saved.body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
    assert.equal(saved.body.errors[0].extensions.field, 'uploadToken');
    assert.match(saved.body.errors[0].message, /expired/);
    const searched = await api.graphql(SEARCH, { input: { uploadToken: uploaded.body.uploadToken, k: 3 } });
    assert.equal(searched.body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
    assert.deepEqual(await countRows(api.db), before);
  });
});
