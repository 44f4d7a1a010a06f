// Who may see what, through the real server on both databases: the policy table cell by cell, every bad
// credential with its stable code (and nothing written but the audit row), a researcher walking the whole schema,
// the audit log's chain and its refusals, request logs without secrets, rate and cost limits.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import pg from 'pg';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, repositoryRoot, startApi } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { POLICY, ROLES } = await dist('auth/policy.js');
const { auditWriterFor, verifyAuditChain } = await dist('audit/audit.service.js');
const { LOCAL_ISSUER } = await dist('auth/local-issuer.js');

const SUBJECT_BY_ROLE = { clinician: 'demo-clinician', researcher: 'demo-researcher', 'ehr-service': 'demo-ehr', admin: 'demo-admin' };
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';
const SYSTEM = 'urn:fundus-cbr:synthetic:test-clinic';

/** One representative request per operation of the policy table. `gql` is sent as GraphQL; `rest` is a fetch. */
function requestsByOperation(fixture) {
  return {
    'read-case': { gql: ['query($id: ID!) { case(id: $id) { id } }', { id: fixture.imageId }] },
    'read-patient': { gql: ['query($mrn: String!, $system: String) { patient(mrn: $mrn, system: $system) { id } }', { mrn: fixture.mrn, system: SYSTEM }] },
    'list-patients': { gql: ['{ patients(first: 1) { nodes { id } } }', {}] },
    search: { gql: ['query($id: ID!) { similarCases(input: { imageId: $id, k: 1 }) { hits { rank } } }', { id: fixture.imageId }] },
    upload: { rest: ['/uploads', { method: 'POST', headers: { 'content-type': 'image/png' }, body: Buffer.from('not a photograph') }] },
    ingest: { gql: [`mutation { ingestCase(input: { uploadToken: "upl_unknown", patient: { mrn: "M-1", mrnSystem: "${SYSTEM}" }, visitDate: "2024-01-02", eye: LEFT }) { status } }`, {}] },
    'write-patient': { gql: [`mutation { upsertPatient(identifier: { system: "${SYSTEM}", value: "MATRIX-PATIENT" }) { status } }`, {}] },
    link: { gql: [`mutation { linkCase(caseId: "${UNKNOWN_UUID}", identifier: { system: "urn:dicom:uid", value: "1.2.3.4" }) { status } }`, {}] },
    unlink: { gql: [`mutation { unlinkCase(identifier: { system: "urn:dicom:uid", value: "1.2.3.999" }) { id } }`, {}] },
    'write-grading': { gql: [`mutation { recordGrading(input: { caseId: "${UNKNOWN_UUID}", drGrade: 1 }) { id } }`, {}] },
    'read-audit': { gql: ['{ auditEvents(first: 1) { nodes { seq } } }', {}] },
    'manage-keys': { gql: ['{ apiKeys { id } }', {}] },
    'read-system': { gql: ['{ health { status } }', {}] },
    'cohort-statistics': { gql: ['{ cohortStatistics { patients } }', {}] },
    'revise-case': { gql: [`mutation { reviseCase(input: { caseId: "${UNKNOWN_UUID}", drGrade: 1 }) { gradingId } }`, {}] },
    'read-suggestion-monitoring': { gql: ['{ suggestionMonitoring { overall { revised } } }', {}] },
    'relevance-feedback': { gql: [`mutation { submitRelevanceFeedback(input: { searchId: "${UNKNOWN_UUID}", marks: [{ caseId: "${UNKNOWN_UUID}", relevant: true }] }) { recorded } }`, {}] },
    'export-feedback': { gql: ['{ relevanceFeedbackExport { rows } }', {}] },
    'explain-similarity': { gql: ['query($id: ID!) { explainSimilarity(input: { imageId: $id, caseId: "' + UNKNOWN_UUID + '" }) { modelVersion } }', { id: fixture.imageId }] },
  };
}

async function send(api, request, as) {
  if (request.gql) {
    const { status, body, headers } = await api.graphql(request.gql[0], request.gql[1], { as });
    return { status, code: body.errors?.[0]?.extensions?.code ?? 'OK', body, requestId: headers.get('x-request-id') };
  }
  const response = await api.fetch(request.rest[0], request.rest[1], { as });
  const body = await response.json();
  return { status: response.status, code: body.errors?.[0]?.extensions?.code ?? 'OK', body, requestId: response.headers.get('x-request-id') };
}

const auditRows = (api, requestId) => api.db.sql.query('SELECT operation, outcome, subject, role FROM audit_event WHERE request_id = $1 ORDER BY seq', [requestId]);
const auditCount = async (api) => (await api.db.sql.query('SELECT count(*)::int AS n FROM audit_event'))[0].n;

/** Runs SQL as a superuser on the suite's database: PGlite's one connection is one; PostgreSQL needs the CI role. */
async function asSuperuser(api, statements) {
  if (api.database.kind === 'pglite') {
    for (const statement of statements) await api.db.sql.exec(statement);
    return true;
  }
  if (!process.env.TEST_SUPERUSER_DATABASE_URL) return false;
  const url = new URL(process.env.TEST_SUPERUSER_DATABASE_URL);
  url.pathname = new URL(api.database.url).pathname;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
  return true;
}

for (const backend of BACKENDS) {
  describe(`access control and audit on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let fixture;
    let privateJwk;
    const logLines = [];
    before(async () => {
      api = await startApi(backend, { logLines });
      const [image] = await api.db.sql.query('SELECT i.id::text AS id, p.mrn FROM fundus_image i JOIN patient p ON p.id = i.patient_id ORDER BY i.id LIMIT 1');
      fixture = { imageId: image.id, mrn: image.mrn };
      privateJwk = JSON.parse(await fs.readFile(path.join(api.config.auth.localIssuerKeyDir, 'local-issuer.private.jwk.json'), 'utf8'));
    });
    after(async () => api?.close());

    test('the policy table refuses researchers every patient-level operation, gives them cohort statistics, and keeps audit and keys to admins', () => {
      assert.deepEqual([...POLICY['cohort-statistics']], ['researcher', 'admin']);
      for (const operation of ['read-case', 'read-patient', 'list-patients', 'search', 'upload', 'ingest', 'link', 'write-grading', 'write-patient', 'revise-case', 'read-suggestion-monitoring', 'relevance-feedback', 'export-feedback', 'explain-similarity']) {
        assert.equal(POLICY[operation].includes('researcher'), false, operation);
      }
      assert.deepEqual([...POLICY['read-audit']], ['admin']);
      assert.deepEqual([...POLICY['manage-keys']], ['admin']);
      assert.deepEqual([...POLICY.unlink], ['admin']);
      assert.deepEqual([...POLICY['read-suggestion-monitoring']], ['admin']);
      assert.deepEqual([...POLICY['revise-case']], ['clinician', 'admin']);
      assert.deepEqual([...POLICY['export-feedback']], ['admin'], 'the export names who marked what');
      assert.deepEqual([...POLICY['relevance-feedback']], ['clinician', 'admin']);
      assert.deepEqual([...POLICY['explain-similarity']], ['clinician', 'admin']);
    });


    const operations = Object.keys(requestsByOperation({}));
    for (const operation of operations) {
      for (const role of [...ROLES, null]) {
        const allowed = role !== null && POLICY[operation].includes(role);
        test(`${operation} as ${role ?? 'no credential'} -> ${role === null ? 'UNAUTHENTICATED' : allowed ? 'allowed' : 'FORBIDDEN'}, audited`, async () => {
          const request = requestsByOperation(fixture)[operation];
          const before = await countRows(api.db);
          const result = await send(api, request, role === null ? null : SUBJECT_BY_ROLE[role]);
          if (role === null) {
            assert.equal(result.status, 401);
            assert.equal(result.code, 'UNAUTHENTICATED');
          } else if (allowed) {
            assert.notEqual(result.code, 'FORBIDDEN', JSON.stringify(result.body));
            assert.notEqual(result.code, 'UNAUTHENTICATED');
          } else {
            assert.equal(result.code, 'FORBIDDEN', JSON.stringify(result.body));
            assert.match(result.body.errors[0].message, new RegExp(`${role} role may not`));
            assert.deepEqual(await countRows(api.db), before, 'a refused request writes nothing');
          }
          const rows = await auditRows(api, result.requestId);
          if (operation === 'read-system' && allowed) {
            assert.equal(rows.length, 0, 'health carries no patient data and is not audited');
          } else {
            assert.equal(rows.length, 1, `one audit row for ${operation}: ${JSON.stringify(rows)}`);
            assert.equal(rows[0].outcome, result.code);
            assert.equal(rows[0].operation, role === null ? 'authenticate' : operation);
            assert.equal(rows[0].role, role);
          }
        });
      }
    }

    test('an ehr-service credential cannot touch another identifier system or its patients', async () => {
      const before = await countRows(api.db);
      const cases = [
        ['query { patient(mrn: "X1", system: "urn:oid:1.2.999") { id } }', 'FOREIGN_IDENTIFIER_SYSTEM'],
        ['mutation { upsertPatient(identifier: { system: "urn:oid:1.2.999", value: "X1" }) { status } }', 'FOREIGN_IDENTIFIER_SYSTEM'],
        ['query { patientByIdentifier(identifier: { system: "urn:oid:1.2.999", value: "X1" }) { id } }', 'FOREIGN_IDENTIFIER_SYSTEM'],
      ];
      for (const [query, reason] of cases) {
        const { body } = await api.graphql(query, {}, { as: 'demo-ehr' });
        assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN', query);
        assert.equal(body.errors[0].extensions.reason, reason);
      }
      // A patient of another system read by our id.
      const foreign = await api.graphql(`mutation { upsertPatient(identifier: { system: "urn:oid:1.2.999", value: "X2" }) { patient { id } } }`, {}, { as: 'demo-admin' });
      assert.equal(foreign.body.errors, undefined);
      const { body } = await api.graphql(`query { patientByIdentifier(identifier: { system: "urn:oid:1.2.999", value: "X2" }) { id } }`, {}, { as: 'demo-ehr' });
      assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
      assert.equal((await countRows(api.db)).patient, before.patient + 1, 'only the admin wrote');
    });

    describe('bad credentials', () => {
      const sign = async (claims, { key, alg = 'ES256', kid, issuer = LOCAL_ISSUER, audience = 'fundus-cbr-api', expiresIn = '1h', notBefore } = {}) => {
        let jwt = new SignJWT({ fundus_role: 'clinician', ...claims }).setProtectedHeader({ alg, kid: kid ?? privateJwk.kid }).setSubject('mallory').setIssuedAt().setExpirationTime(expiresIn);
        if (issuer) jwt = jwt.setIssuer(issuer);
        if (audience) jwt = jwt.setAudience(audience);
        if (notBefore) jwt = jwt.setNotBefore(notBefore);
        return jwt.sign(key ?? (await importJWK(privateJwk, 'ES256')));
      };
      const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const table = [
        { name: 'expired token', header: async () => `Bearer ${await sign({}, { expiresIn: now - 120 })}`, code: 'UNAUTHENTICATED', reason: 'TOKEN_EXPIRED' },
        { name: 'not-yet-valid token', header: async () => `Bearer ${await sign({}, { notBefore: now + 3600 })}`, code: 'UNAUTHENTICATED', reason: 'TOKEN_NOT_YET_VALID' },
        { name: 'wrong issuer', header: async () => `Bearer ${await sign({}, { issuer: 'https://login.evil.example' })}`, code: 'UNAUTHENTICATED', reason: 'WRONG_ISSUER' },
        { name: 'wrong audience', header: async () => `Bearer ${await sign({}, { audience: 'another-api' })}`, code: 'UNAUTHENTICATED', reason: 'WRONG_AUDIENCE' },
        {
          name: 'unsigned token (alg none)',
          header: async () => `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: LOCAL_ISSUER, aud: 'fundus-cbr-api', sub: 'mallory', fundus_role: 'admin', exp: now + 3600 })}.`,
          code: 'UNAUTHENTICATED',
          reason: 'UNSIGNED_OR_WEAK_TOKEN',
        },
        {
          name: 'HS256 signed with the public key (algorithm confusion)',
          header: async () => {
            const { d: _d, ...publicJwk } = privateJwk;
            return `Bearer ${await new SignJWT({ fundus_role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(LOCAL_ISSUER).setAudience('fundus-cbr-api').setSubject('mallory').setExpirationTime('1h').sign(new TextEncoder().encode(JSON.stringify(publicJwk)))}`;
          },
          code: 'UNAUTHENTICATED',
          reason: 'UNSIGNED_OR_WEAK_TOKEN',
        },
        {
          name: 'wrongly signed token (another key, same kid)',
          header: async () => {
            const { privateKey } = await generateKeyPair('ES256');
            return `Bearer ${await sign({ fundus_role: 'admin' }, { key: privateKey })}`;
          },
          code: 'UNAUTHENTICATED',
          reason: 'BAD_SIGNATURE',
        },
        { name: 'unknown role claim', header: async () => `Bearer ${await sign({ fundus_role: 'superuser' })}`, code: 'FORBIDDEN', reason: 'UNKNOWN_ROLE' },
        { name: 'no role claim', header: async () => `Bearer ${await sign({ fundus_role: undefined })}`, code: 'FORBIDDEN', reason: 'UNKNOWN_ROLE' },
        { name: 'ehr-service token without its system', header: async () => `Bearer ${await sign({ fundus_role: 'ehr-service' })}`, code: 'FORBIDDEN', reason: 'UNBOUND_SERVICE' },
        { name: 'not a JWT', header: async () => 'Bearer garbage', code: 'UNAUTHENTICATED', reason: 'MALFORMED_TOKEN' },
        { name: 'Basic credentials', header: async () => 'Basic bWFsbG9yeTpwYXNz', code: 'UNAUTHENTICATED', reason: 'MALFORMED_CREDENTIAL' },
        { name: 'unknown API key', header: async () => `Bearer fcbr_${'A'.repeat(43)}`, code: 'UNAUTHENTICATED', reason: 'UNKNOWN_KEY' },
        { name: 'SQL in an API key', header: async () => "Bearer fcbr_' OR 1=1 --", code: 'UNAUTHENTICATED', reason: 'MALFORMED_CREDENTIAL' },
      ];
      for (const row of table) {
        test(`${row.name} -> ${row.code} ${row.reason}, nothing written but the audit row`, async () => {
          const before = await countRows(api.db);
          const audits = await auditCount(api);
          const response = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: await row.header() }, body: JSON.stringify({ query: '{ patients(first: 1) { nodes { mrn } } }' }) });
          const body = await response.json();
          assert.equal(response.status, row.code === 'FORBIDDEN' ? 403 : 401);
          assert.equal(body.errors?.[0]?.extensions?.code, row.code, JSON.stringify(body));
          assert.equal(body.errors[0].extensions.reason, row.reason);
          assert.equal(body.data, undefined);
          assert.deepEqual(await countRows(api.db), before);
          assert.equal(await auditCount(api), audits + 1);
          const [audit] = await auditRows(api, response.headers.get('x-request-id'));
          assert.equal(audit.outcome, row.code);
          assert.equal(audit.operation, 'authenticate');
        });
      }

      test('a revoked API key and an expired one are refused; a live one works as Bearer and as X-API-Key', async () => {
        const created = await api.graphql('mutation { createApiKey(name: "matrix-script", role: "clinician") { key { id } secret } }', {}, { as: 'demo-admin' });
        const { key, secret } = created.body.data.createApiKey;
        assert.match(secret, /^fcbr_/);
        const listed = await api.graphql('{ apiKeys { id name } }', {}, { as: 'demo-admin' });
        assert.equal(JSON.stringify(listed.body).includes(secret), false, 'the secret is shown once');
        const [{ secret_hash: stored }] = await api.db.sql.query('SELECT secret_hash FROM api_key WHERE id = $1', [key.id]);
        assert.notEqual(stored, secret);
        for (const headers of [{ authorization: `Bearer ${secret}` }, { 'x-api-key': secret }]) {
          const { body } = await api.graphql('{ patients(first: 1) { nodes { id } } }', {}, { as: null, headers });
          assert.equal(body.errors, undefined, JSON.stringify(body));
        }
        await api.graphql(`mutation { revokeApiKey(id: "${key.id}") { revokedAt } }`, {}, { as: 'demo-admin' });
        const revoked = await api.graphql('{ health { status } }', {}, { as: null, headers: { authorization: `Bearer ${secret}` } });
        assert.equal(revoked.status, 401);
        assert.equal(revoked.body.errors[0].extensions.reason, 'KEY_REVOKED');
        const expiring = await api.graphql('mutation { createApiKey(name: "short-lived", role: "clinician") { key { id } secret } }', {}, { as: 'demo-admin' });
        await asSuperuser(api, [`ALTER TABLE api_key DISABLE TRIGGER ALL`, `UPDATE api_key SET expires_at = now() - interval '1 minute' WHERE id = '${expiring.body.data.createApiKey.key.id}'`, 'ALTER TABLE api_key ENABLE TRIGGER ALL']);
        const expired = await api.graphql('{ health { status } }', {}, { as: null, headers: { 'x-api-key': expiring.body.data.createApiKey.secret } });
        assert.equal(expired.body.errors[0].extensions.reason, 'KEY_EXPIRED');
      });
    });

    test('a researcher walking the whole schema gets FORBIDDEN for every field but health, and no identifier anywhere', async () => {
      const introspection = await api.graphql(
        '{ __schema { queryType { fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } args { name type { kind name ofType { kind name ofType { kind name } } } } } } mutationType { fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } args { name type { kind name ofType { kind name ofType { kind name } } } } } } } }',
        {},
        { as: 'demo-admin' },
      );
      const patients = await api.db.sql.query('SELECT id::text AS id, mrn FROM patient');
      const secrets = patients.flatMap((patient) => [patient.id, patient.mrn]);
      const before = await countRows(api.db);
      const { queryType, mutationType } = introspection.body.data.__schema;
      const fields = [...queryType.fields.map((field) => ['query', field]), ...mutationType.fields.map((field) => ['mutation', field])];
      assert.ok(fields.length >= 15, `walks ${fields.length} root fields`);
      for (const [kind, field] of fields) {
        // Required arguments as variables of their own type; values are wrong on purpose: the refusal must come first.
        const required = field.args.filter((arg) => arg.type.kind === 'NON_NULL');
        const typeName = (type) => (type.kind === 'NON_NULL' ? `${typeName(type.ofType)}!` : type.kind === 'LIST' ? `[${typeName(type.ofType)}]` : type.name);
        const variables = Object.fromEntries(required.map((arg) => [arg.name, arg.type.ofType.kind === 'INPUT_OBJECT' ? {} : arg.type.ofType.name === 'Int' ? 1 : fixture.imageId]));
        const signature = required.length ? `(${required.map((arg) => `$${arg.name}: ${typeName(arg.type)}`).join(', ')})` : '';
        const args = required.length ? `(${required.map((arg) => `${arg.name}: $${arg.name}`).join(', ')})` : '';
        const leaf = (type) => (type.ofType ? leaf(type.ofType) : type);
        const selection = ['SCALAR', 'ENUM'].includes(leaf(field.type).kind) ? '' : ' { __typename }';
        const { body } = await api.graphql(`${kind}${signature} { ${field.name}${args}${selection} }`, variables, { as: 'demo-researcher' });
        const text = JSON.stringify(body);
        for (const secret of secrets) assert.equal(text.includes(secret), false, `${field.name} leaked ${secret}`);
        if (field.name === 'health' || field.name === 'cohortStatistics') {
          // Aggregates only (checked above: no patient id or MRN in the answer; cohort-statistics.test.mjs checks more).
          assert.equal(body.errors, undefined);
          continue;
        }
        const code = body.errors?.[0]?.extensions?.code;
        // An input object left empty fails validation before any resolver runs: refused just as surely.
        assert.ok(code === 'FORBIDDEN' || code === 'BAD_USER_INPUT', `${kind} ${field.name} as a researcher: ${text.slice(0, 300)}`);
        assert.equal(body.data?.[field.name] ?? null, null);
      }
      assert.deepEqual(await countRows(api.db), before, 'a researcher wrote nothing');
    });

    test('the audit log refuses UPDATE, DELETE and TRUNCATE, chains every row, and audit:verify names a row altered by a superuser', async () => {
      await api.graphql('query($id: ID!) { case(id: $id) { id } }', { id: fixture.imageId });
      for (const statement of ['UPDATE audit_event SET subject = $$mallory$$ WHERE seq = 1', 'DELETE FROM audit_event WHERE seq = 1', 'TRUNCATE audit_event', 'UPDATE audit_chain_head SET seq = 0']) {
        await assert.rejects(api.db.sql.query(statement), /append-only/, statement);
      }
      const intact = await verifyAuditChain(api.db.sql);
      assert.equal(intact.firstBroken, null, JSON.stringify(intact.firstBroken));
      assert.ok(intact.rows > 10);
      const [{ seq }] = await api.db.sql.query("SELECT seq::text AS seq FROM audit_event WHERE operation = 'read-case' AND outcome = 'OK' ORDER BY seq LIMIT 1");
      const altered = await asSuperuser(api, ['SET session_replication_role = replica', `UPDATE audit_event SET subject = 'someone-else' WHERE seq = ${seq}`, 'SET session_replication_role = origin']);
      assert.ok(altered, 'TEST_SUPERUSER_DATABASE_URL is set by scripts/ci-setup.sh');
      const broken = await verifyAuditChain(api.db.sql);
      assert.equal(broken.firstBroken?.seq, seq);
      assert.match(broken.firstBroken.reason, /altered/);
      // Put it back so the suites after this one see an intact chain.
      const [{ subject }] = await api.db.sql.query(`SELECT subject FROM audit_event WHERE seq = ${Number(seq) + 0}`);
      assert.equal(subject, 'someone-else');
      await asSuperuser(api, ['SET session_replication_role = replica', `UPDATE audit_event SET subject = 'demo-clinician' WHERE seq = ${seq}`, 'SET session_replication_role = origin']);
      assert.equal((await verifyAuditChain(api.db.sql)).firstBroken, null);
    });

    test('a read whose audit row cannot be written is answered with AUDIT_UNAVAILABLE, never with the data', async () => {
      await api.db.sql.exec("ALTER TABLE audit_event ADD CONSTRAINT test_block_read_case CHECK (operation <> 'read-case') NOT VALID");
      try {
        const { status, body } = await api.graphql('query($id: ID!) { case(id: $id) { id patient { mrn } } }', { id: fixture.imageId });
        assert.equal(status, 503);
        assert.equal(body.errors?.[0]?.extensions?.code, 'AUDIT_UNAVAILABLE');
        assert.equal(body.data, undefined);
        assert.equal(JSON.stringify(body).includes(fixture.mrn), false);
      } finally {
        await api.db.sql.exec('ALTER TABLE audit_event DROP CONSTRAINT test_block_read_case');
      }
    });

    // Group commit (AuditWriter): requests that finish while an audit INSERT waits go together in the next one.
    // On PostgreSQL the chain head's row is held by another session, so the first request's INSERT waits on it
    // and the rest queue behind it deterministically; then the lock is let go. PGlite has one connection, so
    // there the requests simply run at once and only what they recorded is checked.
    test('audit rows of concurrent requests go in one INSERT; each request is answered only once its rows are committed, and one refused row fails only its own request', async () => {
      const writer = auditWriterFor(api.db.sql);
      const search = () => api.graphql('query($id: ID!) { similarCases(input: { imageId: $id, k: 3 }) { hits { rank case { id } } } }', { id: fixture.imageId });
      const readCase = () => api.graphql('query($id: ID!) { case(id: $id) { id patient { mrn } } }', { id: fixture.imageId });
      async function withChainHeadHeld(requests, queued) {
        const before = writer.stats();
        if (backend === 'pglite') return { responses: await Promise.all(requests.map((request) => request())), before, after: writer.stats() };
        const holder = new pg.Client({ connectionString: api.database.url });
        await holder.connect();
        try {
          await holder.query('BEGIN');
          await holder.query('SELECT seq FROM audit_chain_head WHERE id = 1 FOR UPDATE');
          const first = requests[0]();
          // Once the first request's INSERT waits on the lock, the writer has one in flight.
          const insertWaiting = async () => (await holder.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_event%'")).rows[0].n === 1;
          for (let waited = 0; !(await insertWaiting()) && waited < 400; waited += 1) await new Promise((resolve) => setTimeout(resolve, 25));
          const rest = requests.slice(1).map((request) => request());
          for (let waited = 0; writer.stats().waiting < queued && waited < 400; waited += 1) await new Promise((resolve) => setTimeout(resolve, 25));
          assert.equal(writer.stats().waiting, queued, 'the other requests wait for the audit log, none answered yet');
          await holder.query('COMMIT');
          return { responses: await Promise.all([first, ...rest]), before, after: writer.stats() };
        } finally {
          await holder.end();
        }
      }

      const { responses, before, after } = await withChainHeadHeld(Array.from({ length: 9 }, () => search), 8);
      for (const { status, body } of responses) {
        assert.equal(status, 200, JSON.stringify(body.errors));
        assert.ok(body.data.similarCases.hits.length > 0);
      }
      assert.equal(after.requests - before.requests, 9);
      if (backend === 'postgres') {
        assert.equal(after.inserts - before.inserts, 2, 'the first request alone, the eight that waited in one INSERT');
        assert.ok(after.largestInsert >= 8);
      }
      const requestIds = responses.map((response) => response.headers.get('x-request-id'));
      const rows = await api.db.sql.query('SELECT seq::int AS seq, request_id, operation, outcome FROM audit_event WHERE request_id = ANY($1::text[]) ORDER BY seq', [requestIds]);
      assert.deepEqual(new Set(rows.map((row) => row.request_id)), new Set(requestIds), 'every request recorded');
      assert.ok(rows.every((row) => row.operation === 'search' && row.outcome === 'OK'), JSON.stringify(rows));
      for (const id of requestIds) {
        const seqs = rows.filter((row) => row.request_id === id).map((row) => row.seq);
        assert.equal(Math.max(...seqs) - Math.min(...seqs) + 1, seqs.length, 'each request\'s rows together');
      }
      assert.equal((await verifyAuditChain(api.db.sql)).firstBroken, null, 'the chain holds across the batch');

      // A batch with a row the table refuses: that request gets AUDIT_UNAVAILABLE, the others their answers.
      await api.db.sql.exec("ALTER TABLE audit_event ADD CONSTRAINT test_block_read_case CHECK (operation <> 'read-case') NOT VALID");
      try {
        const mixed = await withChainHeadHeld([search, search, readCase, search], 3);
        if (backend === 'postgres') assert.equal(mixed.after.inserts - mixed.before.inserts, 3, 'the first alone, then the refused batch written request by request: two of three');
        assert.deepEqual(mixed.responses.map((response) => response.status), [200, 200, 503, 200]);
        assert.equal(mixed.responses[2].body.errors?.[0]?.extensions?.code, 'AUDIT_UNAVAILABLE');
        assert.equal(JSON.stringify(mixed.responses[2].body).includes(fixture.mrn), false);
        const ids = mixed.responses.map((response) => response.headers.get('x-request-id'));
        const recorded = await api.db.sql.query('SELECT DISTINCT request_id FROM audit_event WHERE request_id = ANY($1::text[])', [ids]);
        assert.deepEqual(new Set(recorded.map((row) => row.request_id)), new Set([ids[0], ids[1], ids[3]]));
      } finally {
        await api.db.sql.exec('ALTER TABLE audit_event DROP CONSTRAINT test_block_read_case');
      }
      assert.equal((await verifyAuditChain(api.db.sql)).firstBroken, null);
    });

    test('admins read the audit log filtered by subject, patient, operation and time, page by page', async () => {
      const [{ patient_id: patientId }] = await api.db.sql.query('SELECT patient_id::text AS patient_id FROM fundus_image WHERE id = $1', [fixture.imageId]);
      await api.graphql('query($id: ID!) { case(id: $id) { id } }', { id: fixture.imageId }, { as: 'demo-clinician' });
      const query = 'query($filter: AuditFilterInput, $first: Int!, $before: String) { auditEvents(filter: $filter, first: $first, before: $before) { nodes { seq subject operation outcome patientIds occurredAt } nextBefore } }';
      const byPatient = await api.graphql(query, { filter: { patientId, operation: 'read-case', subject: 'demo-clinician' }, first: 1 }, { as: 'demo-admin' });
      assert.equal(byPatient.body.errors, undefined, JSON.stringify(byPatient.body));
      const [newest] = byPatient.body.data.auditEvents.nodes;
      assert.ok(newest.patientIds.includes(patientId));
      assert.equal(newest.subject, 'demo-clinician');
      const seen = new Set();
      let beforeSeq = null;
      for (let page = 0; page < 3; page += 1) {
        const { body } = await api.graphql(query, { filter: { operation: 'read-case' }, first: 2, before: beforeSeq }, { as: 'demo-admin' });
        for (const node of body.data.auditEvents.nodes) {
          assert.equal(node.operation, 'read-case');
          assert.equal(seen.has(node.seq), false, 'pages do not overlap');
          seen.add(node.seq);
        }
        beforeSeq = body.data.auditEvents.nextBefore;
        if (!beforeSeq) break;
      }
      assert.ok(seen.size >= 2);
      const future = await api.graphql(query, { filter: { from: new Date(Date.now() + 3600_000).toISOString() }, first: 5 }, { as: 'demo-admin' });
      assert.deepEqual(future.body.data.auditEvents.nodes, []);
      const reversed = await api.graphql(query, { filter: { from: '2030-01-01T00:00:00Z', to: '2020-01-01T00:00:00Z' }, first: 5 }, { as: 'demo-admin' });
      assert.equal(reversed.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });

    test('request logs carry request id, duration and outcome, and never the token or an identifier', async () => {
      logLines.length = 0;
      const token = api.tokenFor('demo-clinician');
      const { headers } = await api.graphql('query($mrn: String!) { patient(mrn: $mrn) { id } }', { mrn: fixture.mrn });
      await api.graphql('query { patient(mrn: "NO-SUCH-MRN-77") { id } }');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const requestLines = logLines.map((line) => JSON.parse(line)).filter((line) => line.message === 'request');
      assert.ok(requestLines.length >= 2, logLines.join('\n'));
      const line = requestLines.find((entry) => entry.req?.id === headers.get('x-request-id'));
      assert.ok(line, 'the response header names the logged request');
      assert.equal(typeof line.responseTime, 'number');
      assert.equal(line.outcome, 'OK');
      assert.equal(line.role, 'clinician');
      assert.ok(requestLines.some((entry) => entry.outcome === 'NOT_FOUND'));
      const all = logLines.join('\n');
      for (const secret of [token, token.split('.')[2], fixture.mrn, 'NO-SUCH-MRN-77']) assert.equal(all.includes(secret), false, `log leaked ${secret.slice(0, 20)}`);
    });

    test('one request may ask for at most 200 similar-case hits, counted across aliases', async () => {
      const aliases = (count) => Array.from({ length: count }, (_, index) => `a${index}: similarCases(input: { imageId: "${fixture.imageId}", k: 100 }) { hits { rank } }`).join(' ');
      const refused = await api.graphql(`{ ${aliases(3)} }`);
      assert.equal(refused.body.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX');
      assert.match(refused.body.errors[0].message, /300 similar-case hits.*limit is 200/);
      const allowed = await api.graphql(`{ ${aliases(2)} }`);
      assert.equal(allowed.body.errors, undefined, JSON.stringify(allowed.body.errors));
    });
  });

  describe(`rate limit per credential on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend, { cohort: null, env: { RATE_LIMIT_PER_MINUTE: '3' } });
    });
    after(async () => api?.close());

    test('past the limit a credential gets 429 RATE_LIMITED with Retry-After, and another credential is unaffected', async () => {
      for (let index = 0; index < 3; index += 1) assert.equal((await api.graphql('{ health { status } }')).status, 200);
      const limited = await api.graphql('{ health { status } }');
      assert.equal(limited.status, 429);
      assert.equal(limited.body.errors[0].extensions.code, 'RATE_LIMITED');
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
      assert.equal((await api.graphql('{ health { status } }', {}, { as: 'demo-admin' })).status, 200);
    });
  });

  // PGlite counts in the process's memory: there is no shared counter to lease from.
  if (backend === 'postgres') describe('rate-limit leases on postgres', { skip: POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      // 3,200 a minute: leases of 32 points (http/rate-limit.ts, leaseSizeFor).
      api = await startApi(backend, { cohort: null, env: { RATE_LIMIT_PER_MINUTE: '3200' } });
    });
    after(async () => api?.close());

    test('40 requests at once take two leases of 32 from the shared counter, not 40 updates', async () => {
      const responses = await Promise.all(Array.from({ length: 40 }, () => api.graphql('{ health { status } }', {}, { as: 'demo-researcher' })));
      assert.deepEqual(responses.map((response) => response.status), Array(40).fill(200));
      const [counter] = await api.db.sql.query("SELECT points FROM rate_limit WHERE key LIKE '%sub:demo-researcher'");
      assert.equal(counter.points, 64, 'two leases of 32 counted in the database');
    });
  });
}
