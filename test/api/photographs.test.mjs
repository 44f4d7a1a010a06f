// GET /photographs/:id: a stored photograph as stored, as a thumbnail, or as the square the model saw, under the
// case's policy and audit, on both databases. The photograph is saved through the API (upload + ingestCase).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, repositoryRoot, startApi } from '../support/backends.mjs';
import { postUpload } from '../support/uploads.mjs';

const { renderSyntheticFundus } = await import(path.join(repositoryRoot, 'apps/api/dist/fixtures/synthetic-fundus.js'));

for (const backend of BACKENDS) {
  describe(`photographs on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let caseId;
    let original;
    before(async () => {
      api = await startApi(backend, { modelPath: TINY_MODEL });
      original = await renderSyntheticFundus({ seed: 4242, eye: 'LEFT', grade: 2, maculopathy: false, width: 640, height: 480 });
      const upload = await postUpload(api, original, 'image/jpeg');
      assert.equal(upload.status, 201, JSON.stringify(upload.body));
      const saved = await api.graphql(
        'mutation($input: IngestCaseInput!) { ingestCase(input: $input) { case { id } } }',
        { input: { uploadToken: upload.body.uploadToken, patient: { mrn: 'PHOTO-1', mrnSystem: 'urn:fundus-cbr:synthetic:test-clinic', birthYear: 1960 }, visitDate: '2024-03-01', eye: 'LEFT' } },
      );
      assert.equal(saved.body.errors, undefined, JSON.stringify(saved.body.errors));
      caseId = saved.body.data.ingestCase.case.id;
    });
    after(async () => api?.close());

    const audit = (response) => api.db.sql.query('SELECT operation, outcome, image_ids::text[] AS image_ids FROM audit_event WHERE request_id = $1', [response.headers.get('x-request-id')]);

    test('as stored: the same bytes and type, private, audited as a read of the case', async () => {
      const response = await api.fetch(`/photographs/${caseId}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'image/jpeg');
      assert.equal(response.headers.get('cache-control'), 'private, no-store');
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(original));
      assert.deepEqual(await audit(response), [{ operation: 'read-case', outcome: 'OK', image_ids: [caseId] }]);
    });

    test('a thumbnail fits 256 px and the crop is the 512 px square the model saw', async () => {
      const thumbnail = await api.fetch(`/photographs/${caseId}?size=thumbnail`);
      const thumbnailMeta = await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata();
      assert.equal(thumbnailMeta.format, 'jpeg');
      assert.ok(Math.max(thumbnailMeta.width, thumbnailMeta.height) <= 256 && thumbnailMeta.width === 256, `${thumbnailMeta.width}x${thumbnailMeta.height}`);
      const crop = await api.fetch(`/photographs/${caseId}?size=crop`);
      const cropMeta = await sharp(Buffer.from(await crop.arrayBuffer())).metadata();
      assert.deepEqual([cropMeta.format, cropMeta.width, cropMeta.height], ['png', 512, 512]);
    });

    const REFUSED = [
      { name: 'a researcher', path: () => `/photographs/${caseId}`, as: 'demo-researcher', status: 403, code: 'FORBIDDEN' },
      { name: 'no credential', path: () => `/photographs/${caseId}`, as: null, status: 401, code: 'UNAUTHENTICATED' },
      { name: 'an unknown id', path: () => '/photographs/00000000-0000-4000-8000-000000000000', as: 'demo-clinician', status: 404, code: 'NOT_FOUND' },
      { name: 'a malformed id', path: () => '/photographs/1%27%20OR%201=1', as: 'demo-clinician', status: 400, code: 'BAD_USER_INPUT' },
      { name: 'an unknown size', path: () => `/photographs/${caseId}?size=huge`, as: 'demo-clinician', status: 400, code: 'BAD_USER_INPUT' },
    ];
    for (const row of REFUSED) {
      test(`${row.name} -> ${row.status} ${row.code}, audited, no image bytes`, async () => {
        const response = await api.fetch(row.path(), {}, { as: row.as });
        assert.equal(response.status, row.status);
        assert.match(response.headers.get('content-type'), /json/);
        const body = await response.json();
        assert.equal(body.errors[0].extensions.code, row.code);
        const rows = await audit(response);
        assert.equal(rows.length, 1);
        assert.equal(rows[0].outcome, row.code);
      });
    }

    test('an ehr-service credential is refused another system\'s patient and given its own', async () => {
      const { auth } = api.config;
      const token = await api.server.localIssuer.sign({ subject: 'ehr-elsewhere', role: 'ehr-service', identifierSystem: 'urn:oid:1.2.3.999' }, { audience: auth.audience, roleClaim: auth.roleClaim, systemClaim: auth.systemClaim });
      const foreign = await api.fetch(`/photographs/${caseId}`, { headers: { authorization: `Bearer ${token}` } }, { as: null });
      assert.equal(foreign.status, 403);
      assert.equal((await foreign.json()).errors[0].extensions.reason, 'FOREIGN_IDENTIFIER_SYSTEM');
      // demo-ehr is bound to the test cohort's system, which PHOTO-1 was saved under.
      const own = await api.fetch(`/photographs/${caseId}?size=thumbnail`, {}, { as: 'demo-ehr' });
      assert.equal(own.status, 200);
    });
  });
}
