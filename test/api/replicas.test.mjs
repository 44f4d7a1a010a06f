// Stateless API (issue 15): two API processes on one PostgreSQL serve one client interchangeably (an upload on
// one, search and ingest with its token on the other; one rate limit counted across both); upload tokens expire
// and are deleted from the database; /readyz says whether a process can serve. The upload store on both databases.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, createTestDatabase, repositoryRoot, startApi } from '../support/backends.mjs';
import { startApiProcess } from '../support/processes.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { makeSyntheticFundusPng } = await dist('embedding/testing/fixtures.js');
const { upsertImageEmbedding } = await dist('search/similar-images.js');
const { createUploadStore, viewUploadsAs } = await dist('modules/upload/upload.store.js');
const { buildCohort } = await dist('fixtures/cohort.js');
const { loadCohort } = await dist('fixtures/seed.js');
const { Embedder } = await dist('embedding/embedder.js');

const SEARCH = `query S($input: SimilarCasesInput!) { similarCases(input: $input) { modelVersion hits { rank similarity case { id } } } }`;
const INGEST = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id } } }`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function graphql(process, token, query, variables) {
  const response = await fetch(process.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  return { status: response.status, body: await response.json() };
}

async function postUpload(process, token, bytes) {
  const response = await fetch(`${process.baseUrl}/uploads`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${token}` }, body: bytes });
  return { status: response.status, body: await response.json() };
}

describe('two API processes on one PostgreSQL', { skip: POSTGRES_SKIP_REASON }, () => {
  let database;
  let keyDir;
  let first;
  let second;
  let clinician;
  const photographs = [];
  const embeddedCaseIds = [];
  before(async () => {
    database = await createTestDatabase('postgres');
    await loadCohort(database.db, buildCohort('test-clinic'));
    const embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
    const cases = await database.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 8');
    for (const [index, row] of cases.entries()) {
      const png = await makeSyntheticFundusPng({ width: 480, height: 360, tint: index / 8 });
      const result = await embedder.embedImage(png);
      await upsertImageEmbedding(database.db.prisma, { imageId: row.id, modelVersion: embedder.metadata.modelVersion, embedding: result.embedding, attention: result.attention });
      photographs.push(png);
      embeddedCaseIds.push(row.id);
    }
    await embedder.release();
    keyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-test-keys-'));
    const env = { DATABASE_URL: database.config.url, AUTH_LOCAL_KEY_DIR: keyDir, MODEL_PATH: TINY_MODEL, RATE_LIMIT_PER_MINUTE: '40' };
    // One after the other: the first creates the local issuer's key, the second reads it.
    first = await startApiProcess({ env });
    second = await startApiProcess({ env });
    clinician = await first.tokenFor('demo-clinician');
  });
  after(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
    await database?.drop();
    if (keyDir) await fs.rm(keyDir, { recursive: true, force: true });
  });

  test('both are ready: database reachable, migrations applied, model loaded', async () => {
    for (const api of [first, second]) {
      const response = await fetch(`${api.baseUrl}/readyz`);
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.status, 'ready');
      assert.deepEqual(Object.fromEntries(Object.entries(body.checks).map(([name, check]) => [name, check.ok])), { database: true, migrations: true, model: true });
    }
  });

  test('a photograph uploaded to one process is searched and saved as a case through the other', async () => {
    const accepted = await postUpload(first, clinician, photographs[3]);
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    const [stored] = await database.db.sql.query('SELECT count(*)::int AS n FROM upload');
    assert.equal(stored.n, 1, 'the upload is in the database, not in the first process');

    const search = await graphql(second, clinician, SEARCH, { input: { uploadToken: accepted.body.uploadToken, k: 3 } });
    assert.equal(search.body.errors, undefined, JSON.stringify(search.body.errors));
    assert.equal(search.body.data.similarCases.hits[0].case.id, embeddedCaseIds[3]);

    const fresh = await postUpload(first, clinician, await makeSyntheticFundusPng({ width: 480, height: 360, tint: 0.93 }));
    assert.equal(fresh.status, 201);
    const saved = await graphql(second, clinician, INGEST, {
      input: { uploadToken: fresh.body.uploadToken, dataset: 'replicas', patient: { mrn: 'REPLICA-1', mrnSystem: 'urn:oid:1.2.3.4.99', birthYear: 1960 }, visitDate: '2024-03-01', eye: 'LEFT' },
    });
    assert.equal(saved.body.errors, undefined, JSON.stringify(saved.body.errors));
    assert.equal(saved.body.data.ingestCase.status, 'ADDED');
    const [row] = await database.db.sql.query('SELECT content_hash FROM fundus_image WHERE id = $1', [saved.body.data.ingestCase.case.id]);
    assert.equal(row.content_hash.trim(), fresh.body.contentHash, 'the case holds the photograph uploaded to the other process');
  });

  test("another subject's token is unknown on either process", async () => {
    const accepted = await postUpload(second, clinician, photographs[1]);
    const admin = await second.tokenFor('demo-admin');
    for (const api of [first, second]) {
      const search = await graphql(api, admin, SEARCH, { input: { uploadToken: accepted.body.uploadToken, k: 3 } });
      assert.equal(search.body.errors?.[0]?.extensions?.code, 'NOT_FOUND', JSON.stringify(search.body));
    }
  });

  test('the rate limit is one count across both processes', async () => {
    const researcher = await first.tokenFor('demo-researcher');
    const leasesBefore = (await (await fetch(`${first.baseUrl}/readyz`)).json()).counters.rateLimit;
    const statuses = [];
    for (let index = 0; index < 44; index += 1) {
      const api = index % 2 === 0 ? first : second;
      const response = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${researcher}` }, body: JSON.stringify({ query: '{ __typename }' }) });
      statuses.push(response.status);
      await response.arrayBuffer();
    }
    assert.deepEqual(statuses.slice(0, 40), Array(40).fill(200), 'the first 40 in the minute pass, 20 on each process');
    assert.deepEqual(statuses.slice(40), [429, 429, 429, 429], 'past 40 both processes refuse: each alone has seen only 20');
    const [counter] = await database.db.sql.query("SELECT points FROM rate_limit WHERE key LIKE '%sub:demo-researcher'");
    // Every admitted request is counted (at this limit a lease is one point), and each process asked once more and
    // was refused; after its refusal a process answers the rest of the window itself (http/rate-limit.ts).
    assert.equal(counter.points, 42, `the shared counter has the 40 admitted requests and one refused ask a process (${counter.points})`);
    // Each process's /readyz counts its own audit INSERTs (the first one audited at least its two refusals) and its
    // leases: 20 more admitted on 21 more asks of one point, the last refused; its second refusal was answered
    // without asking.
    const { counters } = await (await fetch(`${first.baseUrl}/readyz`)).json();
    assert.ok(counters.audit.requests >= 2 && counters.audit.inserts >= 1 && counters.audit.inserts <= counters.audit.requests, JSON.stringify(counters));
    assert.deepEqual(
      { admitted: counters.rateLimit.admitted - leasesBefore.admitted, storeCalls: counters.rateLimit.storeCalls - leasesBefore.storeCalls, leaseSize: counters.rateLimit.leaseSize },
      { admitted: 20, storeCalls: 21, leaseSize: 1 },
    );
  });

  test('a process without its model is live but not ready, and says which check fails', async () => {
    const broken = await startApiProcess({ env: { DATABASE_URL: database.config.url, AUTH_LOCAL_KEY_DIR: keyDir, MODEL_PATH: path.join(keyDir, 'no-model.onnx') }, waitUntil: 'healthz' });
    try {
      const response = await fetch(`${broken.baseUrl}/readyz`);
      const body = await response.json();
      assert.equal(response.status, 503);
      assert.equal(body.status, 'not-ready');
      assert.deepEqual([body.checks.database.ok, body.checks.migrations.ok, body.checks.model.ok], [true, true, false]);
      // On PostgreSQL the database check says how the prepared-statement names are used (db/statement-names.ts).
      // And how many requests its audit INSERTs carried (group commit, audit/audit.service.ts): none served yet.
      assert.match(body.checks.database.detail, /^prepared statements: \d+ of 300 texts named, 0 executions unnamed past the cap; audit log: 0 INSERTs carried 0 requests, at most 0 in one; rate limit: 0 leases of up to 6 admitted 0 requests$/);
      // The same counts as numbers, for a benchmark or a monitor: no identifiers, only counts.
      assert.deepEqual(body.counters.audit, { inserts: 0, requests: 0, largestInsert: 0 });
      assert.deepEqual(body.counters.rateLimit, { admitted: 0, storeCalls: 0, leaseSize: 6 });
      assert.equal(body.counters.preparedStatements.cap, 300);
    } finally {
      await broken.stop();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`upload tokens in the database on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    before(async () => {
      database = await createTestDatabase(backend);
    });
    after(async () => database?.drop());
    const upload = (index) => ({
      bytes: Buffer.from(`photograph ${index}`),
      contentHash: String(index).padStart(64, '0'),
      mimeType: 'image/png',
      width: 4,
      height: 3,
      modelVersion: 'm1',
      embedding: Float32Array.from([index, 0.5, -0.25]),
      attention: { width: 2, height: 1, values: Float32Array.from([0.1, 0.9]) },
    });
    const rows = async () => (await database.db.sql.query('SELECT count(*)::int AS n FROM upload'))[0].n;

    test('a token reads back what was put, bytes only when asked, for its owner only', async () => {
      const store = createUploadStore({ sql: database.db.sql, ttlMs: 60_000 });
      const mine = viewUploadsAs(store, 'alice');
      const put = await mine.put(upload(7));
      const summary = await mine.get(put.token);
      assert.deepEqual(Array.from(summary.embedding), [7, 0.5, -0.25]);
      assert.deepEqual({ ...summary.attention, values: Array.from(summary.attention.values).map((value) => Math.round(value * 10) / 10) }, { width: 2, height: 1, values: [0.1, 0.9] });
      assert.equal(summary.bytes, undefined, 'a search does not read the photograph');
      assert.equal((await mine.getWithBytes(put.token)).bytes.toString(), 'photograph 7');
      assert.equal(await viewUploadsAs(store, 'bob').get(put.token), undefined);
      assert.equal(await mine.get(`${put.token}x`), undefined);
      const [stored] = await database.db.sql.query('SELECT token_hash FROM upload');
      assert.notEqual(stored.token_hash, put.token, 'the token itself is not stored');
    });

    test('expired tokens are refused, and deleted by the next upload', async () => {
      await database.db.sql.query('DELETE FROM upload');
      const store = viewUploadsAs(createUploadStore({ sql: database.db.sql, ttlMs: 300 }), 'alice');
      const first = await store.put(upload(1));
      await sleep(450);
      assert.equal(await store.get(first.token), undefined, 'expired');
      assert.equal(await rows(), 1, 'still there until an upload arrives');
      await viewUploadsAs(createUploadStore({ sql: database.db.sql, ttlMs: 300 }), 'bob').put(upload(2));
      assert.equal(await rows(), 1, "the expired row is gone, whoever's upload came next");
    });

    test('an owner keeps at most maxPerOwner uploads, the newest', async () => {
      await database.db.sql.query('DELETE FROM upload');
      const store = viewUploadsAs(createUploadStore({ sql: database.db.sql, ttlMs: 60_000, maxPerOwner: 3 }), 'alice');
      const tokens = [];
      for (let index = 0; index < 5; index += 1) {
        tokens.push((await store.put(upload(index))).token);
        await sleep(5);
      }
      assert.equal(await rows(), 3);
      assert.deepEqual(await Promise.all(tokens.map(async (token) => (await store.get(token)) !== undefined)), [false, false, true, true, true]);
    });
  });

  describe(`readiness on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    test('ready with a model; not ready without one; not ready once the database is closed', async () => {
      const withModel = await startApi(backend, { cohort: null, modelPath: TINY_MODEL });
      const withoutModel = await startApi(backend, { cohort: null });
      try {
        const ready = await fetch(`${withModel.baseUrl}/readyz`);
        assert.equal(ready.status, 200, JSON.stringify(await ready.clone().json()));
        const noModel = await (await fetch(`${withoutModel.baseUrl}/readyz`)).json();
        assert.deepEqual([noModel.status, noModel.checks.database.ok, noModel.checks.model.ok], ['not-ready', true, false]);
        assert.equal((await fetch(`${withModel.baseUrl}/healthz`)).status, 200);
        await withModel.db.close();
        const closed = await fetch(`${withModel.baseUrl}/readyz`);
        const body = await closed.json();
        assert.equal(closed.status, 503);
        assert.deepEqual([body.checks.database.ok, body.checks.migrations.ok], [false, false]);
        assert.equal((await fetch(`${withModel.baseUrl}/healthz`)).status, 200, 'still live');
      } finally {
        await withModel.close();
        await withoutModel.close();
      }
    });
  });
}
