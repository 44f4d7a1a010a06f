// Search by a new photograph: POST /uploads -> token -> similarCases(uploadToken), with the tiny contract model,
// on PGlite and PostgreSQL. Every bad upload gets its code and stores nothing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, countRows, repositoryRoot, startApi } from '../support/backends.mjs';

const { makeSyntheticFundusPng } = await import(path.join(repositoryRoot, 'apps/api/dist/embedding/testing/fixtures.js'));
const { upsertImageEmbedding } = await import(path.join(repositoryRoot, 'apps/api/dist/search/similar-images.js'));

const SEARCH = `query S($input: SimilarCasesInput!) { similarCases(input: $input) {
  modelVersion query { id } queryAttention { width height values }
  hits { rank similarity attention { width height } case { id } } } }`;

async function upload(api, body, contentType = 'image/png') {
  const response = await api.fetch('/uploads', { method: 'POST', headers: contentType ? { 'content-type': contentType } : {}, body });
  return { status: response.status, body: await response.json() };
}

const blackPng = () => sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toBuffer();

for (const backend of BACKENDS) {
  describe(`search by upload on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    const photographs = [];
    const embeddedCaseIds = [];
    before(async () => {
      api = await startApi(backend, { modelPath: TINY_MODEL, env: { MAX_UPLOAD_BYTES: String(400 * 1024), MAX_UPLOAD_PIXELS: String(1_000_000) } });
      // Give twelve stored cases embeddings of the tiny model, each from a different synthetic photograph.
      const cases = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 12');
      for (const [index, row] of cases.entries()) {
        const png = await makeSyntheticFundusPng({ width: 480, height: 360, tint: index / 12 });
        const result = await api.embedder.embedImage(png);
        await upsertImageEmbedding(api.db.prisma, { imageId: row.id, modelVersion: api.embedder.metadata.modelVersion, embedding: result.embedding, attention: result.attention });
        photographs.push(png);
        embeddedCaseIds.push(row.id);
      }
    });
    after(async () => api?.close());

    test('an uploaded photograph finds the stored case with the same picture first, with heat maps', async () => {
      const before = await countRows(api.db);
      const accepted = await upload(api, photographs[5]);
      assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
      assert.match(accepted.body.uploadToken, /^upl_/);
      assert.equal(accepted.body.modelVersion, api.embedder.metadata.modelVersion);
      assert.deepEqual(accepted.body.image, { width: 480, height: 360 });
      assert.equal(accepted.body.attention.values.length, accepted.body.attention.width * accepted.body.attention.height);
      const { body } = await api.graphql(SEARCH, { input: { uploadToken: accepted.body.uploadToken, k: 5 } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const result = body.data.similarCases;
      assert.equal(result.query, null);
      assert.equal(result.modelVersion, api.embedder.metadata.modelVersion, 'the search uses the loaded model version, never the fixture one');
      assert.equal(result.hits.length, 5);
      assert.equal(result.hits[0].case.id, embeddedCaseIds[5]);
      assert.ok(result.hits[0].similarity > 0.9999, `same picture, similarity ${result.hits[0].similarity}`);
      assert.ok(result.hits.every((hit) => embeddedCaseIds.includes(hit.case.id)), 'only cases embedded by this model version');
      assert.deepEqual(result.queryAttention.values.length, accepted.body.attention.values.length);
      assert.ok(result.hits.every((hit) => hit.attention && hit.attention.width > 0));
      assert.deepEqual(await countRows(api.db), before, 'searching by upload stores nothing');
    });

    test('search by a stored case: its attention map and the hits\' are the stored ones, and the hits\' cost no statement when not asked for', async () => {
      const stored = new Map((await api.db.sql.query('SELECT image_id::text AS id, attention_width * attention_height AS cells FROM image_embedding WHERE model_version = $1 AND attention_map IS NOT NULL', [api.embedder.metadata.modelVersion])).map((row) => [row.id, Number(row.cells)]));
      const WITH_MAPS = 'query M($input: SimilarCasesInput!) { similarCases(input: $input) { queryAttention { width height values } hits { case { id } attention { width height values } } } }';
      const WITHOUT_MAPS = 'query N($input: SimilarCasesInput!) { similarCases(input: $input) { queryAttention { width height values } hits { case { id } } } }';
      const input = { imageId: embeddedCaseIds[3], k: 5, excludeSamePatient: false };
      const run = async (document) => {
        const before = api.db.statementCount();
        const { body } = await api.graphql(document, { input });
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        return { result: body.data.similarCases, statements: api.db.statementCount() - before };
      };
      await run(WITH_MAPS); // warm-up: first-use queries
      const withMaps = await run(WITH_MAPS);
      const withoutMaps = await run(WITHOUT_MAPS);
      // The query photograph's map comes with the check that it is embedded, asked for or not.
      for (const { result } of [withMaps, withoutMaps]) assert.equal(result.queryAttention.values.length, stored.get(embeddedCaseIds[3]));
      assert.equal(withMaps.result.hits.length, 5);
      for (const hit of withMaps.result.hits) {
        assert.ok(stored.get(hit.case.id) > 0, `hit ${hit.case.id} has a stored map`);
        assert.equal(hit.attention.values.length, stored.get(hit.case.id));
        assert.equal(hit.attention.values.length, hit.attention.width * hit.attention.height);
      }
      assert.deepEqual(withoutMaps.result.hits.map((hit) => hit.case.id), withMaps.result.hits.map((hit) => hit.case.id));
      assert.equal(withoutMaps.statements, withMaps.statements - 1, `with the hits' maps ${withMaps.statements} statements, without ${withoutMaps.statements}`);
    });

    test('the same token serves a second search with filters', async () => {
      const accepted = await upload(api, photographs[2]);
      const { body } = await api.graphql(SEARCH, { input: { uploadToken: accepted.body.uploadToken, k: 3, filters: { eye: 'LEFT' } } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      assert.ok(body.data.similarCases.hits.length <= 3);
    });

    const BAD_UPLOADS = [
      { name: 'empty body', body: async () => Buffer.alloc(0), status: 400, code: 'BAD_USER_INPUT', reason: 'EMPTY_FILE' },
      { name: 'corrupt bytes', body: async () => Buffer.from('this is not a photograph at all, just text'), status: 400, code: 'BAD_USER_INPUT', reason: 'NOT_AN_IMAGE' },
      { name: 'no fundus (all black)', body: blackPng, status: 400, code: 'BAD_USER_INPUT', reason: 'NO_FUNDUS' },
      { name: 'too many pixels', body: () => makeSyntheticFundusPng({ width: 1300, height: 1000, tint: 0.3 }), status: 400, code: 'BAD_USER_INPUT', reason: 'TOO_MANY_PIXELS' },
      { name: 'too many bytes', body: async () => Buffer.alloc(500 * 1024, 7), status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { name: 'wrong type (text/plain)', body: () => makeSyntheticFundusPng({ width: 200, height: 150, tint: 0.1 }), contentType: 'text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { name: 'multipart form', body: async () => Buffer.from('--x\r\n\r\n--x--'), contentType: 'multipart/form-data; boundary=x', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    ];
    for (const row of BAD_UPLOADS) {
      test(`upload: ${row.name} -> ${row.code}${row.reason ? ` (${row.reason})` : ''}, nothing stored`, async () => {
        const before = await countRows(api.db);
        const result = await upload(api, await row.body(), row.contentType ?? 'image/png');
        assert.equal(result.status, row.status, JSON.stringify(result.body));
        assert.equal(result.body.errors[0].extensions.code, row.code);
        if (row.reason) assert.equal(result.body.errors[0].extensions.reason, row.reason);
        assert.deepEqual(await countRows(api.db), before);
      });
    }

    const BAD_SEARCHES = [
      { name: 'unknown upload token', input: { uploadToken: 'upl_doesnotexist' }, code: 'NOT_FOUND' },
      { name: 'both imageId and uploadToken', input: { uploadToken: 'upl_x', imageId: '00000000-0000-4000-8000-000000000000' }, code: 'BAD_USER_INPUT' },
      { name: 'neither imageId nor uploadToken', input: {}, code: 'BAD_USER_INPUT' },
    ];
    for (const row of BAD_SEARCHES) {
      test(`similarCases: ${row.name} -> ${row.code}`, async () => {
        const { body } = await api.graphql(SEARCH, { input: row.input });
        assert.equal(body.errors?.[0]?.extensions?.code, row.code, JSON.stringify(body));
      });
    }
  });
}

describe('an API without a model', () => {
  let api;
  before(async () => {
    api = await startApi('pglite', { cohort: null });
  });
  after(async () => api?.close());

  test('refuses uploads with MODEL_UNAVAILABLE (503) and says why', async () => {
    const result = await upload(api, await makeSyntheticFundusPng({ width: 200, height: 150, tint: 0.5 }));
    assert.equal(result.status, 503);
    assert.equal(result.body.errors[0].extensions.code, 'MODEL_UNAVAILABLE');
    assert.match(result.body.errors[0].message, /MODEL_PATH/);
  });
});

const INGEST = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) {
  status case { id isSynthetic image { eye width } patient { mrn dataset { name } } referenceGrading { drGrade source }
  treatments { type agent eye date } diagnoses { code } } } }`;

for (const backend of BACKENDS) {
  describe(`saving an uploaded photograph as a case on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend, { cohort: null, modelPath: TINY_MODEL });
    });
    after(async () => api?.close());

    const caseInput = (uploadToken, overrides = {}) => ({
      uploadToken,
      patient: { mrn: 'MRN-1001', mrnSystem: 'urn:oid:1.2.3.4', birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_2' },
      visitDate: '2025-03-14',
      eye: 'LEFT',
      grading: { drGrade: 3, maculopathy: true, grader: 'Dr Test' },
      diagnoses: [{ icd10Code: 'E11.3412', text: 'Type 2 DM with severe NPDR with macular edema, left eye', eye: 'LEFT', date: '2025-03-14' }],
      treatments: [{ type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', eye: 'LEFT', date: '2025-03-14' }],
      ...overrides,
    });

    test('ingestCase stores the case once, embedded and searchable; a second save is a DUPLICATE that writes nothing', async () => {
      const png = await makeSyntheticFundusPng({ width: 500, height: 400, tint: 0.42 });
      const { body: uploaded } = await upload(api, png);
      const first = await api.graphql(INGEST, { input: caseInput(uploaded.uploadToken) });
      assert.equal(first.body.errors, undefined, JSON.stringify(first.body.errors));
      const saved = first.body.data.ingestCase;
      assert.equal(saved.status, 'ADDED');
      assert.equal(saved.case.isSynthetic, false);
      assert.equal(saved.case.image.eye, 'LEFT');
      assert.equal(saved.case.image.width, 500);
      assert.deepEqual(saved.case.referenceGrading, { drGrade: 3, source: 'CLINICIAN' });
      assert.deepEqual(saved.case.treatments.map((t) => [t.type, t.agent]), [['ANTI_VEGF', 'AFLIBERCEPT']]);
      const [embedding] = await api.db.sql.query('SELECT model_version, attention_width FROM image_embedding WHERE image_id = $1', [saved.case.id]);
      assert.equal(embedding.model_version, api.embedder.metadata.modelVersion);
      assert.ok(embedding.attention_width > 0, 'the heat map is stored at ingest');

      const before = await countRows(api.db);
      const again = await api.graphql(INGEST, { input: caseInput(uploaded.uploadToken) });
      assert.equal(again.body.data.ingestCase.status, 'DUPLICATE');
      assert.equal(again.body.data.ingestCase.case.id, saved.case.id);
      assert.deepEqual(await countRows(api.db), before);

      const search = await api.graphql(SEARCH, { input: { imageId: saved.case.id, k: 1, excludeSamePatient: false } });
      assert.equal(search.body.errors?.[0]?.extensions?.code, undefined, JSON.stringify(search.body.errors));
    });

    test('searching with a saved photograph uploaded again names its stored case as the query; a fresh upload has none', async () => {
      const png = await makeSyntheticFundusPng({ width: 420, height: 360, tint: 0.17 });
      const { body: uploaded } = await upload(api, png);
      const saved = await api.graphql(INGEST, { input: caseInput(uploaded.uploadToken, { patient: { mrn: 'MRN-2002', mrnSystem: 'urn:oid:1.2.3.4' } }) });
      assert.equal(saved.body.errors, undefined, JSON.stringify(saved.body.errors));
      const { body: again } = await upload(api, png);
      const found = await api.graphql(SEARCH, { input: { uploadToken: again.uploadToken, k: 3 } });
      assert.equal(found.body.errors, undefined, JSON.stringify(found.body.errors));
      assert.equal(found.body.data.similarCases.query.id, saved.body.data.ingestCase.case.id);
      assert.ok(found.body.data.similarCases.hits.every((hit) => hit.case.id !== saved.body.data.ingestCase.case.id), 'never its own hit');
      const { body: other } = await upload(api, await makeSyntheticFundusPng({ width: 420, height: 360, tint: 0.61 }));
      const fresh = await api.graphql(SEARCH, { input: { uploadToken: other.uploadToken, k: 3 } });
      assert.equal(fresh.body.data.similarCases.query, null);
    });

    test("GET /uploads/:token/crop: the upload's 512 px model crop as PNG, to its uploader only, audited", async () => {
      const { body: uploaded } = await upload(api, await makeSyntheticFundusPng({ width: 480, height: 320, tint: 0.33 }));
      const response = await api.fetch(`/uploads/${uploaded.uploadToken}/crop`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'image/png');
      assert.equal(response.headers.get('cache-control'), 'private, no-store');
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [512, 512]);
      const [audit] = await api.db.sql.query("SELECT outcome, details FROM audit_event WHERE operation = 'upload' AND details->>'view' = 'crop' ORDER BY seq DESC LIMIT 1");
      assert.equal(audit.outcome, 'OK');
      assert.equal(audit.details.contentHash, uploaded.contentHash);
      for (const [name, pathname, as, status] of [
        ['another user', `/uploads/${uploaded.uploadToken}/crop`, 'demo-admin', 404],
        ['an unknown token', '/uploads/upl_gone/crop', 'demo-clinician', 404],
        ['a researcher', `/uploads/${uploaded.uploadToken}/crop`, 'demo-researcher', 403],
      ]) {
        const refused = await api.fetch(pathname, {}, { as });
        assert.equal(refused.status, status, name);
      }
    });

    const BAD_SAVES = [
      { name: 'grade 5', overrides: { grading: { drGrade: 5 } }, code: 'BAD_USER_INPUT' },
      { name: 'birth year in the future', overrides: { patient: { mrn: 'X', mrnSystem: 'urn:x', birthYear: 2999 } }, code: 'BAD_USER_INPUT' },
      { name: 'agent on a laser treatment', overrides: { treatments: [{ type: 'PRP_LASER', agent: 'AFLIBERCEPT', eye: 'LEFT', date: '2025-03-14' }] }, code: 'BAD_USER_INPUT' },
      { name: 'malformed visit date', overrides: { visitDate: '14/03/2025' }, code: 'BAD_USER_INPUT' },
      { name: 'unknown upload token', overrides: { uploadToken: 'upl_gone' }, code: 'NOT_FOUND' },
    ];
    for (const row of BAD_SAVES) {
      test(`ingestCase: ${row.name} -> ${row.code}, nothing written`, async () => {
        const { body: uploaded } = await upload(api, await makeSyntheticFundusPng({ width: 300, height: 240, tint: 0.9 }));
        const before = await countRows(api.db);
        const { body } = await api.graphql(INGEST, { input: caseInput(uploaded.uploadToken, row.overrides) });
        assert.equal(body.errors?.[0]?.extensions?.code, row.code, JSON.stringify(body));
        assert.deepEqual(await countRows(api.db), before);
      });
    }
  });
}
