// Bad input, table-driven: each request gets its stable extensions.code, and no table changes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, startApi } from '../support/backends.mjs';

const SIMILAR = 'query S($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank } } }';
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';

/** Each row: a name, a request built from a valid image id, and the code (and HTTP status) it must get. */
const BAD_REQUESTS = [
  { name: 'k = 0', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, k: 0 } } }), code: 'BAD_USER_INPUT', message: /k must be an integer from 1 to 100/ },
  { name: 'k = 1000', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, k: 1000 } } }), code: 'BAD_USER_INPUT', message: /k must be an integer from 1 to 100/ },
  { name: 'unknown DR grade', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, filters: { drGrades: [1, 7] } } } }), code: 'BAD_USER_INPUT', message: /ICDR grade 0-4/ },
  { name: 'negative DR grade', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, filters: { drGrades: [-1] } } } }), code: 'BAD_USER_INPUT', message: /ICDR grade 0-4/ },
  { name: 'age range upside down', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, filters: { ageMin: 70, ageMax: 40 } } } }), code: 'BAD_USER_INPUT', message: /ageMin/ },
  { name: 'unknown eye value', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, filters: { eye: 'MIDDLE' } } } }), code: 'BAD_USER_INPUT', message: /MIDDLE/ },
  { name: 'k of the wrong type', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id, k: 'ten' } } }), code: 'BAD_USER_INPUT' },
  { name: 'malformed image id', request: () => ({ query: SIMILAR, variables: { input: { imageId: 'not-a-uuid' } } }), code: 'BAD_USER_INPUT', message: /imageId must be a UUID/ },
  { name: 'unknown image id', request: () => ({ query: SIMILAR, variables: { input: { imageId: UNKNOWN_UUID } } }), code: 'NOT_FOUND' },
  { name: 'malformed case id', request: () => ({ query: '{ case(id: "42") { id } }' }), code: 'BAD_USER_INPUT' },
  { name: 'unknown case id', request: () => ({ query: `{ case(id: "${UNKNOWN_UUID}") { id } }` }), code: 'NOT_FOUND' },
  { name: 'unknown MRN', request: () => ({ query: '{ patient(mrn: "NO-SUCH-MRN") { id } }' }), code: 'NOT_FOUND', message: /NO-SUCH-MRN/ },
  { name: 'empty MRN', request: () => ({ query: '{ patient(mrn: "  ") { id } }' }), code: 'BAD_USER_INPUT' },
  { name: 'page size 0', request: () => ({ query: '{ patients(first: 0) { nodes { id } } }' }), code: 'BAD_USER_INPUT' },
  { name: 'forged cursor', request: () => ({ query: '{ patients(first: 2, after: "bm90LWEtY3Vyc29y") { nodes { id } } }' }), code: 'BAD_USER_INPUT' },
  { name: 'syntax error', request: () => ({ query: '{ similarCases(' }), code: 'GRAPHQL_PARSE_FAILED' },
  { name: 'unknown field', request: () => ({ query: '{ nope }' }), code: 'GRAPHQL_VALIDATION_FAILED' },
  {
    name: 'query too deep',
    // 13 levels of fields; the limit is 12.
    request: () => ({ query: '{ patients(first: 1) { nodes { cases(first: 1) { nodes { patient { cases(first: 1) { nodes { patient { cases(first: 1) { nodes { patient { dataset { name } } } } } } } } } } } } }' }),
    code: 'QUERY_TOO_COMPLEX',
    message: /depth/,
  },
  {
    name: 'query too costly',
    request: () => ({ query: '{ patients(first: 100) { nodes { cases(first: 100) { nodes { id gradings { id } diagnoses { id } treatments { id } } } } } }' }),
    code: 'QUERY_TOO_COMPLEX',
    message: /complexity/,
  },
  { name: 'oversized body', request: (id) => ({ query: SIMILAR, variables: { input: { imageId: id }, padding: 'x'.repeat(300 * 1024) } }), code: 'PAYLOAD_TOO_LARGE', status: 413 },
];

for (const backend of BACKENDS) {
  describe(`bad input on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let imageId;
    before(async () => {
      api = await startApi(backend);
      [{ id: imageId }] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
    });
    after(async () => api?.close());

    for (const row of BAD_REQUESTS) {
      test(`${row.name} -> ${row.code}, nothing written`, async () => {
        const before = await countRows(api.db);
        const response = await api.fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(row.request(imageId)) });
        const body = await response.json();
        assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `expected errors, got ${JSON.stringify(body).slice(0, 300)}`);
        assert.equal(body.errors[0].extensions?.code, row.code, JSON.stringify(body.errors[0]));
        if (row.message) assert.match(body.errors[0].message, row.message);
        if (row.status) assert.equal(response.status, row.status);
        assert.equal(JSON.stringify(body).includes('prisma'), false, 'no internals leak into errors');
        assert.deepEqual(await countRows(api.db), before);
      });
    }

    test('a POST that is not JSON is refused by CSRF prevention', async () => {
      const response = await api.fetch('/graphql', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"query":"{ health { status } }"}' });
      assert.equal(response.status, 400);
      assert.match(await response.text(), /CSRF|preflight/i);
    });

    test('a valid request still works after the bad ones', async () => {
      const { body } = await api.graphql(SIMILAR, { input: { imageId, k: 3 } });
      assert.equal(body.errors, undefined);
      assert.equal(body.data.similarCases.hits.length, 3);
    });
  });
}
