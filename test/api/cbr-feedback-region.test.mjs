// Issue 13, parts 4-6 through the real server with the shipped model (its feature_map output and region head), on
// PGlite and PostgreSQL: every search is recorded with an id; relevance marks are stored as training pairs, the
// query is refined (Rocchio) and re-run, admins export the pairs; search by a rectangle of the query photograph;
// paired correspondence heat maps for a hit. Every bad input: its stable code, and nothing written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, repositoryRoot, startApi } from '../support/backends.mjs';
import { postUpload } from '../support/uploads.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const MODEL = path.join(repositoryRoot, 'models', 'fundus-cbr.onnx');
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';
const [{ Embedder }, { loadCohort, renderSyntheticPhotograph }, { buildCohort }, { ROCCHIO, refineQuery }, { renderSyntheticFundus }, { regionCellMask }] = await Promise.all([
  dist('embedding/embedder.js'), dist('fixtures/seed.js'), dist('fixtures/cohort.js'), dist('modules/similar-case/feedback.service.js'), dist('fixtures/synthetic-fundus.js'), dist('embedding/regions.js'),
]);

const SEARCH = `query($input: SimilarCasesInput!) { similarCases(input: $input) { searchId modelVersion hits { rank similarity case { id } } } }`;
const FEEDBACK = `mutation($input: RelevanceFeedbackInput!) { submitRelevanceFeedback(input: $input) { recorded markedSearchId refined { searchId hits { rank similarity case { id } } } } }`;
const EXPORT = `query($input: RelevanceFeedbackExportInput) { relevanceFeedbackExport(input: $input) { format rows content } }`;
const EXPLAIN = `query($input: ExplainSimilarityInput!) { explainSimilarity(input: $input) { modelVersion queryMap { width height values } hitMap { width height values } matches { queryCell { row column } hitCell { row column } similarity } } }`;

const parseVector = (text) => Float32Array.from(JSON.parse(text));
const dot = (a, b) => a.reduce((sum, value, index) => sum + value * b[index], 0);

/** The rows this suite's operations write, beside the case tables. */
async function countAll(db) {
  const counts = await countRows(db);
  for (const table of ['similar_case_search', 'relevance_feedback']) counts[table] = (await db.sql.query(`SELECT count(*)::int AS n FROM ${table}`))[0].n;
  return counts;
}
const auditOf = async (api, requestId) => api.db.sql.query('SELECT operation, outcome FROM audit_event WHERE request_id = $1 ORDER BY seq', [requestId]);

for (const backend of BACKENDS) {
  describe(`relevance feedback, search by region and explanation on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let embedder;
    let images;
    before(async () => {
      api = await startApi(backend, { cohort: null, modelPath: MODEL });
      embedder = await Embedder.load({ modelPath: MODEL, device: 'cpu' });
      await loadCohort(api.db, buildCohort('mini-clinic'), { renderImage: renderSyntheticPhotograph, embedder });
      images = await api.db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient_id, fi.content_hash FROM fundus_image fi ORDER BY fi.id');
    });
    after(async () => {
      await embedder?.release();
      await api?.close();
    });

    const search = async (input, as = 'demo-clinician') => {
      const { body, headers } = await api.graphql(SEARCH, { input }, { as });
      return { body, result: body.data?.similarCases, requestId: headers.get('x-request-id') };
    };

    test('a search that does not select searchId is audited but not recorded: nobody could name it in feedback', async () => {
      const before = await countAll(api.db);
      const { body, headers } = await api.graphql('query($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank case { id } } } }', { input: { imageId: images[0].id, k: 5 } });
      assert.equal(body.data.similarCases.hits.length, 5, JSON.stringify(body.errors));
      assert.deepEqual(await countAll(api.db), before, 'no search record, nothing else written');
      const [row] = await api.db.sql.query('SELECT operation, outcome, details FROM audit_event WHERE request_id = $1', [headers.get('x-request-id')]);
      const details = typeof row.details === 'string' ? JSON.parse(row.details) : row.details;
      assert.deepEqual([row.operation, row.outcome, details.searchId, details.returned], ['search', 'OK', null, body.data.similarCases.hits.map((hit) => hit.case.id)]);
      const recorded = await search({ imageId: images[0].id, k: 5 });
      assert.equal((await countAll(api.db)).similar_case_search, before.similar_case_search + 1, 'selecting searchId records the search');
      assert.match(recorded.result.searchId, /^[0-9a-f-]{36}$/);
    });

    test('a search is recorded with its id, subject, query and hits in rank order', async () => {
      const query = images[0];
      const { result, requestId } = await search({ imageId: query.id, k: 5 });
      assert.equal(result.hits.length, 5);
      const [row] = await api.db.sql.query('SELECT subject, role, query_image_id::text AS q, query_content_hash, hit_image_ids::text[] AS hits, region, k, query_embedding::text AS v FROM similar_case_search WHERE id = $1', [result.searchId]);
      assert.equal(row.subject, 'demo-clinician');
      assert.equal(row.q, query.id);
      assert.equal(row.query_content_hash, query.content_hash);
      assert.deepEqual(row.hits, result.hits.map((hit) => hit.case.id));
      assert.equal(row.region, null);
      const [{ embedding }] = await api.db.sql.query('SELECT embedding::text AS embedding FROM image_embedding WHERE image_id = $1', [query.id]);
      assert.deepEqual(parseVector(row.v), parseVector(embedding), 'the whole-photograph search vector is the stored embedding');
      const audit = await auditOf(api, requestId);
      assert.deepEqual(audit, [{ operation: 'search', outcome: 'OK' }]);
    });

    test('marks are stored as training pairs and the refined query (Rocchio) is re-run and recorded as a refinement', async () => {
      const query = images[1];
      const { result } = await search({ imageId: query.id, k: 6 });
      const marks = [{ caseId: result.hits[2].case.id, relevant: true }, { caseId: result.hits[0].case.id, relevant: false }];
      const before = await countAll(api.db);
      const { body, headers } = await api.graphql(FEEDBACK, { input: { searchId: result.searchId, marks } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const done = body.data.submitRelevanceFeedback;
      assert.equal(done.recorded, 2);
      assert.equal(done.markedSearchId, result.searchId);
      const afterCounts = await countAll(api.db);
      assert.equal(afterCounts.relevance_feedback, before.relevance_feedback + 2);
      assert.equal(afterCounts.similar_case_search, before.similar_case_search + 1, 'the re-run is recorded');
      const pairs = await api.db.sql.query('SELECT query_image_id::text AS q, query_content_hash, hit_image_id::text AS hit, hit_content_hash, hit_rank, relevant, subject, role, model_version FROM relevance_feedback WHERE search_id = $1 ORDER BY hit_rank', [result.searchId]);
      const hashOf = (id) => images.find((image) => image.id === id).content_hash;
      assert.deepEqual(pairs, [
        { q: query.id, query_content_hash: query.content_hash, hit: marks[1].caseId, hit_content_hash: hashOf(marks[1].caseId), hit_rank: 1, relevant: false, subject: 'demo-clinician', role: 'clinician', model_version: result.modelVersion },
        { q: query.id, query_content_hash: query.content_hash, hit: marks[0].caseId, hit_content_hash: hashOf(marks[0].caseId), hit_rank: 3, relevant: true, subject: 'demo-clinician', role: 'clinician', model_version: result.modelVersion },
      ]);
      // The refined ranking is the cosine ranking for Rocchio's vector, computed here from the stored embeddings.
      const vectors = new Map((await api.db.sql.query('SELECT image_id::text AS id, embedding::text AS e FROM image_embedding')).map((row) => [row.id, parseVector(row.e)]));
      const refinedVector = refineQuery(vectors.get(query.id), [vectors.get(marks[0].caseId)], [vectors.get(marks[1].caseId)], ROCCHIO);
      const expected = images
        .filter((image) => image.patient_id !== query.patient_id)
        .map((image) => ({ id: image.id, similarity: dot(refinedVector, vectors.get(image.id)) }))
        .sort((a, b) => b.similarity - a.similarity)
        .slice(0, 6);
      assert.deepEqual(done.refined.hits.map((hit) => hit.case.id), expected.map((hit) => hit.id));
      done.refined.hits.forEach((hit, index) => assert.ok(Math.abs(hit.similarity - expected[index].similarity) < 1e-4));
      assert.ok(dot(refinedVector, vectors.get(query.id)) < 0.9999, 'the query moved');
      const [{ parent }] = await api.db.sql.query('SELECT parent_search_id::text AS parent FROM similar_case_search WHERE id = $1', [done.refined.searchId]);
      assert.equal(parent, result.searchId);
      assert.deepEqual(await auditOf(api, headers.get('x-request-id')), [{ operation: 'relevance-feedback', outcome: 'OK' }]);

      // A second mark on the same hit replaces the first; the refinement takes marks of its own.
      const again = await api.graphql(FEEDBACK, { input: { searchId: result.searchId, marks: [{ caseId: marks[1].caseId, relevant: true }] } });
      assert.equal(again.body.errors, undefined);
      assert.equal((await countAll(api.db)).relevance_feedback, before.relevance_feedback + 2);
      const [{ relevant }] = await api.db.sql.query('SELECT relevant FROM relevance_feedback WHERE search_id = $1 AND hit_image_id = $2', [result.searchId, marks[1].caseId]);
      assert.equal(relevant, true);
      const second = await api.graphql(FEEDBACK, { input: { searchId: done.refined.searchId, marks: [{ caseId: done.refined.hits[0].case.id, relevant: true }] } });
      assert.equal(second.body.errors, undefined);
    });

    test('feedback bad input: each a stable code, nothing written, audited', async () => {
      const query = images[2];
      const { result } = await search({ imageId: query.id, k: 3 });
      const notAHit = images.find((image) => !result.hits.some((hit) => hit.case.id === image.id) && image.id !== query.id);
      const cases = [
        ['a case that was not a hit of that search', { searchId: result.searchId, marks: [{ caseId: notAHit.id, relevant: true }] }, 'BAD_USER_INPUT', 'HIT_NOT_IN_RESULT'],
        ['one good mark and one not in the result: none stored', { searchId: result.searchId, marks: [{ caseId: result.hits[0].case.id, relevant: true }, { caseId: query.id, relevant: false }] }, 'BAD_USER_INPUT', 'HIT_NOT_IN_RESULT'],
        ['an unknown search', { searchId: UNKNOWN_UUID, marks: [{ caseId: result.hits[0].case.id, relevant: true }] }, 'NOT_FOUND', undefined],
        ['a malformed search id', { searchId: 'search-1', marks: [{ caseId: result.hits[0].case.id, relevant: true }] }, 'BAD_USER_INPUT', undefined],
        ['no marks', { searchId: result.searchId, marks: [] }, 'BAD_USER_INPUT', undefined],
        ['the same hit twice', { searchId: result.searchId, marks: [{ caseId: result.hits[0].case.id, relevant: true }, { caseId: result.hits[0].case.id, relevant: false }] }, 'BAD_USER_INPUT', 'DUPLICATE_MARK'],
        ['a malformed case id', { searchId: result.searchId, marks: [{ caseId: 'not-a-uuid', relevant: true }] }, 'BAD_USER_INPUT', undefined],
      ];
      for (const [name, input, code, reason] of cases) {
        const before = await countAll(api.db);
        const { body, headers } = await api.graphql(FEEDBACK, { input });
        assert.equal(body.errors?.[0]?.extensions?.code, code, `${name}: ${JSON.stringify(body)}`);
        if (reason) assert.equal(body.errors[0].extensions.reason, reason, name);
        assert.deepEqual(await countAll(api.db), before, `${name}: nothing written`);
        assert.deepEqual(await auditOf(api, headers.get('x-request-id')), [{ operation: 'relevance-feedback', outcome: code }], name);
      }
      // Another person's search reads as unknown.
      const before = await countAll(api.db);
      const { body } = await api.graphql(FEEDBACK, { input: { searchId: result.searchId, marks: [{ caseId: result.hits[0].case.id, relevant: true }] } }, { as: 'demo-admin' });
      assert.equal(body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
      assert.deepEqual(await countAll(api.db), before);
    });

    test('admins export the marks as CSV and JSON; the CLI writes the same pairs', async () => {
      const [{ n }] = await api.db.sql.query('SELECT count(*)::int AS n FROM relevance_feedback');
      assert.ok(n >= 3);
      const csv = await api.graphql(EXPORT, { input: { format: 'CSV' } }, { as: 'demo-admin' });
      assert.equal(csv.body.errors, undefined, JSON.stringify(csv.body.errors));
      const lines = csv.body.data.relevanceFeedbackExport.content.trim().split('\n');
      assert.equal(lines[0], 'search_id,query_image_id,query_content_hash,hit_image_id,hit_content_hash,hit_rank,relevant,subject,role,model_version,marked_at,search_region');
      assert.equal(lines.length, n + 1);
      assert.equal(csv.body.data.relevanceFeedbackExport.rows, n);
      const json = await api.graphql(EXPORT, { input: { format: 'JSON' } }, { as: 'demo-admin' });
      const rows = JSON.parse(json.body.data.relevanceFeedbackExport.content);
      const stored = await api.db.sql.query('SELECT search_id::text AS s, hit_image_id::text AS h, relevant FROM relevance_feedback ORDER BY marked_at, id');
      assert.deepEqual(rows.map((row) => ({ s: row.search_id, h: row.hit_image_id, relevant: row.relevant })), stored);
      const future = await api.graphql(EXPORT, { input: { format: 'JSON', from: '2999-01-01T00:00:00Z' } }, { as: 'demo-admin' });
      assert.equal(future.body.data.relevanceFeedbackExport.rows, 0);
      const reversed = await api.graphql(EXPORT, { input: { from: '2030-01-01T00:00:00Z', to: '2020-01-01T00:00:00Z' } }, { as: 'demo-admin' });
      assert.equal(reversed.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      const refused = await api.graphql(EXPORT, {}, { as: 'demo-clinician' });
      assert.equal(refused.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');

      const cli = (...args) => spawnSync(process.execPath, [path.join(repositoryRoot, 'apps/api/dist/cli/feedback-export.js'), ...args], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: api.database.url ?? '', LOG_LEVEL: 'silent' } });
      const usage = cli('--format', 'xml');
      assert.equal(usage.status, 2);
      assert.match(usage.stderr, /--format must be csv or json/);
      if (backend === 'postgres') {
        // PGlite's data directory belongs to the running API process; the CLI is shown on PostgreSQL.
        const run = cli('--format', 'json');
        assert.equal(run.status, 0, run.stderr);
        assert.deepEqual(JSON.parse(run.stdout).map((row) => row.hit_image_id), stored.map((row) => row.h));
        const [{ outcome }] = await api.db.sql.query("SELECT outcome FROM audit_event WHERE operation = 'export-feedback' AND subject LIKE 'cli:%' ORDER BY seq DESC LIMIT 1");
        assert.equal(outcome, 'OK');
      }
    });

    test('search by region: the region descriptor is the model GeM under the rectangle; the whole crop gives the whole-image search', async () => {
      const query = images[3];
      const region = { x: 0.25, y: 0.3, width: 0.4, height: 0.35 };
      const { result, body } = await search({ imageId: query.id, k: 5, region });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const [row] = await api.db.sql.query('SELECT region, query_embedding::text AS v FROM similar_case_search WHERE id = $1', [result.searchId]);
      assert.deepEqual(row.region, region);
      const regionVector = parseVector(row.v);
      // The same descriptor computed here from the stored photograph's bytes.
      const [{ bytes }] = await api.db.sql.query('SELECT b.bytes FROM image_blob b JOIN fundus_image fi ON fi.content_hash = b.sha256 WHERE fi.id = $1', [query.id]);
      const embedded = await embedder.embedImage(Buffer.from(bytes));
      const [expected] = await embedder.embedRegions(embedded.featureMap, [regionCellMask(region, embedded.featureMap.height, embedded.featureMap.width)]);
      assert.ok(dot(regionVector, expected) > 0.99999, 'the searched vector is the region descriptor');
      assert.ok(dot(regionVector, embedded.embedding) < 0.999, 'a region is not the whole photograph');
      const vectors = new Map((await api.db.sql.query('SELECT image_id::text AS id, embedding::text AS e FROM image_embedding')).map((r) => [r.id, parseVector(r.e)]));
      for (const hit of result.hits) assert.ok(Math.abs(hit.similarity - dot(regionVector, vectors.get(hit.case.id))) < 1e-4, 'hits ranked against the whole-image embeddings');
      const whole = await search({ imageId: query.id, k: 5, region: { x: 0, y: 0, width: 1, height: 1 } });
      const plain = await search({ imageId: query.id, k: 5 });
      assert.deepEqual(whole.result.hits.map((hit) => hit.case.id), plain.result.hits.map((hit) => hit.case.id));

      // By an upload, and relevance feedback on a region search keeps refining the region's vector.
      const photograph = await renderSyntheticFundus({ seed: 91, eye: 'LEFT', grade: 3, maculopathy: false, width: 800, height: 600 });
      const upload = await postUpload(api, photograph, 'image/jpeg');
      assert.equal(upload.status, 201, JSON.stringify(upload.body));
      const plainUpload = await search({ uploadToken: upload.body.uploadToken, k: 4 });
      assert.equal(plainUpload.body.errors, undefined, JSON.stringify(plainUpload.body.errors));
      const [uploadRow] = await api.db.sql.query('SELECT query_image_id, query_content_hash, query_embedding::text AS v FROM similar_case_search WHERE id = $1', [plainUpload.result.searchId]);
      assert.equal(uploadRow.query_image_id, null);
      assert.equal(uploadRow.query_content_hash, createHash('sha256').update(photograph).digest('hex'));
      assert.ok(Math.abs(dot(parseVector(uploadRow.v), (await embedder.embedImage(photograph)).embedding) - 1) < 1e-5, 'an upload search records the upload embedding');
      const byUpload = await search({ uploadToken: upload.body.uploadToken, k: 4, region: { x: 0.5, y: 0.5, width: 0.5, height: 0.5 } });
      assert.equal(byUpload.body.errors, undefined, JSON.stringify(byUpload.body.errors));
      assert.equal(byUpload.result.hits.length, 4);
      const refined = await api.graphql(FEEDBACK, { input: { searchId: byUpload.result.searchId, marks: [{ caseId: byUpload.result.hits[1].case.id, relevant: true }] } });
      assert.equal(refined.body.errors, undefined, JSON.stringify(refined.body.errors));
    });

    test('search by region bad input: outside the crop or of zero area is BAD_USER_INPUT with its reason, nothing written', async () => {
      const query = images[0];
      const cases = [
        [{ x: -0.1, y: 0.2, width: 0.3, height: 0.3 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
        [{ x: 0.8, y: 0.2, width: 0.3, height: 0.3 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
        [{ x: 0.1, y: 0.2, width: 120, height: 80 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
        [{ x: 0.1, y: 0.2, width: 0, height: 0.3 }, 'REGION_EMPTY'],
        [{ x: 0.1, y: 0.2, width: 0.3, height: -0.2 }, 'REGION_EMPTY'],
        [{ x: 0, y: 0, width: 0.03, height: 0.03 }, 'REGION_OUTSIDE_PHOTOGRAPH'], // inside the crop, on its black corner
      ];
      for (const [region, reason] of cases) {
        const before = await countAll(api.db);
        const { body, requestId } = await search({ imageId: query.id, k: 3, region });
        assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(region));
        assert.equal(body.errors[0].extensions.reason, reason);
        assert.deepEqual(await countAll(api.db), before, 'nothing written');
        assert.deepEqual(await auditOf(api, requestId), [{ operation: 'search', outcome: 'BAD_USER_INPUT' }]);
      }
    });

    test('explanation: paired correspondence maps over the feature grid, symmetric in query and hit', async () => {
      const [query, hit] = [images[0], images.at(-1)];
      const { body, headers } = await api.graphql(EXPLAIN, { input: { imageId: query.id, caseId: hit.id } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const explanation = body.data.explainSimilarity;
      for (const map of [explanation.queryMap, explanation.hitMap]) {
        assert.equal(map.width * map.height, map.values.length);
        // The model's feature grid: one cell per 32 px of its input (8 x 8 at 256 px, 12 x 12 at 384).
        assert.deepEqual([map.width, map.height], [embedder.metadata.inputSize / 32, embedder.metadata.inputSize / 32]);
        assert.ok(map.values.every((value) => value >= 0 && value <= 1));
        assert.ok(map.values.some((value) => value === 1) && map.values.some((value) => value === 0), 'rescaled over the fundus');
      }
      // The synthetic photographs' corners are black padding: never part of a correspondence.
      for (const map of [explanation.queryMap, explanation.hitMap]) assert.equal(map.values[0], 0);
      assert.ok(explanation.matches.length >= 1 && explanation.matches.length <= 8);
      for (let index = 1; index < explanation.matches.length; index += 1) assert.ok(explanation.matches[index - 1].similarity >= explanation.matches[index].similarity);
      const swapped = (await api.graphql(EXPLAIN, { input: { imageId: hit.id, caseId: query.id } })).body.data.explainSimilarity;
      swapped.hitMap.values.forEach((value, index) => assert.ok(Math.abs(value - explanation.queryMap.values[index]) < 1e-5));
      assert.deepEqual(swapped.matches.map((m) => [m.hitCell, m.queryCell]), explanation.matches.map((m) => [m.queryCell, m.hitCell]));
      assert.deepEqual(await auditOf(api, headers.get('x-request-id')), [{ operation: 'explain-similarity', outcome: 'OK' }]);
    });

    test('explanation bad input: each a stable code, nothing written', async () => {
      const cases = [
        ['an unknown hit', { imageId: images[0].id, caseId: UNKNOWN_UUID }, 'NOT_FOUND'],
        ['an unknown query', { imageId: UNKNOWN_UUID, caseId: images[0].id }, 'NOT_FOUND'],
        ['the query itself', { imageId: images[0].id, caseId: images[0].id }, 'BAD_USER_INPUT'],
        ['both a case and an upload', { imageId: images[0].id, uploadToken: 'upl_x', caseId: images[1].id }, 'BAD_USER_INPUT'],
        ['an expired upload token', { uploadToken: 'upl_unknown', caseId: images[1].id }, 'NOT_FOUND'],
      ];
      for (const [name, input, code] of cases) {
        const before = await countAll(api.db);
        const { body, headers } = await api.graphql(EXPLAIN, { input });
        assert.equal(body.errors?.[0]?.extensions?.code, code, `${name}: ${JSON.stringify(body)}`);
        assert.deepEqual(await countAll(api.db), before, name);
        assert.deepEqual(await auditOf(api, headers.get('x-request-id')), [{ operation: 'explain-similarity', outcome: code }], name);
      }
    });
  });
}

// The suggestion answers for the photograph, not for a rectangle of it: a region search votes from the whole
// photograph's neighbourhood, as the calibration was fitted. A cohort larger than the vote (36 patients), so a
// region's own neighbourhood would show as another vote.
describe('the grade suggestion of a region search (PGlite)', () => {
  let api;
  let images;
  before(async () => {
    api = await startApi('pglite', { cohort: null, modelPath: MODEL });
    const embedder = await Embedder.load({ modelPath: MODEL, device: 'cpu' });
    try {
      await loadCohort(api.db, buildCohort('test-clinic'), { renderImage: renderSyntheticPhotograph, embedder });
    } finally {
      await embedder.release();
    }
    images = await api.db.sql.query('SELECT fi.id::text AS id FROM fundus_image fi ORDER BY fi.id');
  });
  after(async () => {
    await api?.close();
  });

  test("a region search's grade suggestion is the whole photograph's: the same voters, the same calibrated vote", async () => {
    const SUGGESTED = `query($input: SimilarCasesInput!) { similarCases(input: $input) { hits { case { id } }
      suggestion { status suggestedGrade voters gradeProbabilities { grade probability } vote { grade share neighbours } calibrationModelVersion } } }`;
    const suggest = async (input) => {
      const { body } = await api.graphql(SUGGESTED, { input }, { as: 'demo-clinician' });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data.similarCases;
    };
    const region = { x: 0.55, y: 0.5, width: 0.25, height: 0.25 };
    const regionFoundOthers = [];
    // Queries whose whole-photograph vote is split between grades: there another set of voters would show in the
    // shares.
    const split = [];
    for (const candidate of images.slice(0, 30)) {
      const { suggestion } = await suggest({ imageId: candidate.id, k: 15 });
      if (suggestion.vote.filter((entry) => entry.share > 0).length >= 2) split.push(candidate);
      if (split.length === 3) break;
    }
    assert.ok(split.length >= 2, `queries with a split vote among the first 30 photographs: ${split.length}`);
    for (const query of split) {
      const [whole, byRegion, filtered] = await Promise.all([
        suggest({ imageId: query.id, k: 15 }),
        suggest({ imageId: query.id, k: 15, region }),
        suggest({ imageId: query.id, k: 15, region, filters: { drGrades: [0, 1] } }),
      ]);
      regionFoundOthers.push(byRegion.hits.map((hit) => hit.case.id).join() !== whole.hits.map((hit) => hit.case.id).join());
      assert.ok(whole.suggestion.voters > 0);
      for (const other of [byRegion, filtered]) {
        const { status, suggestedGrade, voters, gradeProbabilities, vote, calibrationModelVersion } = other.suggestion;
        assert.deepEqual({ status, suggestedGrade, voters, gradeProbabilities, vote, calibrationModelVersion }, {
          status: whole.suggestion.status, suggestedGrade: whole.suggestion.suggestedGrade, voters: whole.suggestion.voters,
          gradeProbabilities: whole.suggestion.gradeProbabilities, vote: whole.suggestion.vote, calibrationModelVersion: whole.suggestion.calibrationModelVersion,
        });
      }
    }
    // Otherwise the test could not tell a region's own neighbourhood from the whole photograph's.
    assert.ok(regionFoundOthers.some(Boolean), 'the region search finds other neighbours than the whole photograph for some query');
  });
});

describe('without a region-capable model', () => {
  let api;
  before(async () => {
    api = await startApi('pglite');
  });
  after(async () => api?.close());

  test('search by region and explanation answer MODEL_UNAVAILABLE and write nothing', async () => {
    const [first, second] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 2');
    const before = await countAll(api.db);
    const region = await api.graphql(SEARCH, { input: { imageId: first.id, k: 3, region: { x: 0.1, y: 0.1, width: 0.2, height: 0.2 } } });
    assert.equal(region.body.errors?.[0]?.extensions?.code, 'MODEL_UNAVAILABLE');
    const explain = await api.graphql(EXPLAIN, { input: { imageId: first.id, caseId: second.id } });
    assert.equal(explain.body.errors?.[0]?.extensions?.code, 'MODEL_UNAVAILABLE');
    assert.deepEqual(await countAll(api.db), before);
  });
});
