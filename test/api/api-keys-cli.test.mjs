// `npm run keys` and `npm run audit:verify` as an operator runs them: child processes on the configured database
// (an embedded PGlite data directory of its own, and PostgreSQL), with the API started on the same database in
// between to present the keys. PGlite belongs to one process at a time, so the server is only up while no CLI
// runs. A key's secret is printed once and works as Bearer and X-API-Key; list never shows it; a revoked,
// expired or unknown key gets 401 with its reason; bad arguments exit 1 with BAD_USER_INPUT and create nothing;
// every CLI run is in the audit log, whose chain audit:verify checks (and reports broken once a row is altered).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BACKENDS, POSTGRES_SKIP_REASON, createTestDatabase, migrationsDir, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const [{ loadConfig }, { createServer }, { createLogger }, { openDatabase }] = await Promise.all([dist('config.js'), dist('server.js'), dist('logger.js'), dist('db/database.js')]);

const KEYS_CLI = path.join(repositoryRoot, 'apps', 'api', 'dist', 'cli', 'keys.js');
const AUDIT_VERIFY_CLI = path.join(repositoryRoot, 'apps', 'api', 'dist', 'cli', 'audit-verify.js');
const HOSPITAL_SYSTEM = 'urn:oid:1.2.3';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** Long enough for two CLI runs on a loaded 2-core machine; the suite waits out the rest before using it. */
const EXPIRING_KEY_LIFETIME_MS = 15_000;
const OPERATOR = `cli:${os.userInfo().username}`;

const PATIENT_BY_IDENTIFIER = 'query P($identifier: IdentifierInput!) { patientByIdentifier(identifier: $identifier) { id mrn mrnSystem } }';
const UPSERT_PATIENT = 'mutation U($identifier: IdentifierInput!) { upsertPatient(identifier: $identifier, demographics: { birthYear: 1966 }) { status patient { id } } }';

for (const backend of BACKENDS) {
  describe(`npm run keys and audit:verify on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    /** The database settings the CLIs and the server share (only these: no DATABASE_URL leaks into PGlite runs). */
    let databaseEnvironment;
    let cleanup;
    /** [action, outcome] of every CLI run that reached the database, in order: what the audit log must hold. */
    const expectedCliAudit = [];
    const keys = {};

    before(async () => {
      if (backend === 'pglite') {
        const dataDir = await mkdtemp(path.join(os.tmpdir(), 'fundus-keys-cli-'));
        databaseEnvironment = { PGLITE_DATA_DIR: dataDir };
        cleanup = async () => {
          await rm(dataDir, { recursive: true, force: true });
          await rm(`${dataDir}.lock`, { force: true });
        };
      } else {
        const database = await createTestDatabase('postgres');
        databaseEnvironment = { DATABASE_URL: database.config.url };
        cleanup = () => database.drop();
      }
    });
    after(async () => cleanup?.());

    function run(cli, args) {
      const { DATABASE_URL: _url, PGLITE_DATA_DIR: _dir, ...inherited } = process.env;
      const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...inherited, ...databaseEnvironment, LOG_LEVEL: 'silent' }, timeout: 120_000 });
      assert.equal(result.error, undefined, String(result.error));
      return result;
    }
    /** Runs `npm run keys -- ...args`; `audit` is the [action, outcome] row it must leave, or null (usage errors). */
    function runKeys(args, audit) {
      const result = run(KEYS_CLI, args);
      if (audit) expectedCliAudit.push(audit);
      return result;
    }

    /** The API on the same database, with API keys as the only credential (no local issuer, no OIDC). */
    async function withServer(work) {
      const config = loadConfig({ ...databaseEnvironment, MIGRATIONS_DIR: migrationsDir, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'silent', AUTH_LOCAL_ISSUER: 'false', MODEL_PATH: '/nonexistent/model.onnx' });
      const server = await createServer(config, { logger: createLogger('silent'), embedder: null });
      const running = await server.listen(0, '127.0.0.1');
      const graphql = async (query, variables, headers) => {
        const response = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables }) });
        const requestId = response.headers.get('x-request-id');
        const audit = await running.db.sql.query('SELECT operation, outcome, subject, role, key_id::text AS key_id FROM audit_event WHERE request_id = $1', [requestId]);
        return { status: response.status, body: await response.json(), audit };
      };
      try {
        await work({ graphql, db: running.db });
      } finally {
        await new Promise((resolve) => server.httpServer.close(resolve));
        await running.close();
      }
    }

    const listLines = () => {
      const listed = runKeys(['list'], ['list', 'OK']);
      assert.equal(listed.status, 0, listed.stderr);
      return listed.stdout.trim().split('\n');
    };

    test('keys create prints an ehr-service key bound to its system and its secret once; keys list shows it without the secret', () => {
      const created = runKeys(['create', '--role', 'ehr-service', '--system', HOSPITAL_SYSTEM, '--name', 'hospital'], ['create', 'OK']);
      assert.equal(created.status, 0, created.stderr);
      const id = new RegExp(`^created ehr-service key (${UUID}) \\(hospital\\) bound to ${HOSPITAL_SYSTEM}$`, 'm').exec(created.stdout)?.[1];
      assert.ok(id, created.stdout);
      const secrets = created.stdout.match(/fcbr_[A-Za-z0-9_-]+/g) ?? [];
      assert.equal(secrets.length, 1, 'the secret is printed exactly once');
      assert.match(secrets[0], /^fcbr_[A-Za-z0-9_-]{43}$/);
      keys.hospital = { id, secret: secrets[0] };

      const expiresAt = new Date(Date.now() + EXPIRING_KEY_LIFETIME_MS);
      const expiring = runKeys(['create', '--role', 'clinician', '--name', 'short-lived', '--expires', expiresAt.toISOString()], ['create', 'OK']);
      assert.equal(expiring.status, 0, expiring.stderr);
      assert.match(expiring.stdout, new RegExp(`, expires ${expiresAt.toISOString().replace(/\./g, '\\.')}$`, 'm'));
      keys.expiring = { id: new RegExp(`key (${UUID})`).exec(expiring.stdout)[1], secret: /^fcbr_\S+$/m.exec(expiring.stdout)[0], expiresAt };

      const lines = listLines();
      assert.equal(lines.length, 2, lines.join('\n'));
      const line = lines.find((candidate) => candidate.startsWith(id));
      assert.match(line, new RegExp(`^${id}\\s+ehr-service\\s+active\\s+hospital\\s+\\(${HOSPITAL_SYSTEM}\\)$`));
      assert.ok(lines.every((candidate) => !/fcbr_/.test(candidate)), 'no secret in the list');
    });

    test('the secret works as Bearer and as X-API-Key, within its bound system only; an unknown or malformed key is UNKNOWN_KEY', async () => {
      const { id, secret } = keys.hospital;
      await withServer(async ({ graphql, db }) => {
        const stored = await db.sql.query('SELECT secret_hash, row_to_json(k)::text AS whole FROM api_key k WHERE id = $1', [id]);
        assert.equal(stored[0].secret_hash, createHash('sha256').update(secret).digest('hex'), 'only the SHA-256 is stored');
        assert.ok(!stored[0].whole.includes(secret.slice(5)), 'the secret itself is nowhere in the row');

        const identifier = { system: HOSPITAL_SYSTEM, value: 'H-0001' };
        const created = await graphql(UPSERT_PATIENT, { identifier }, { authorization: `Bearer ${secret}` });
        assert.equal(created.body.errors, undefined, JSON.stringify(created.body));
        assert.equal(created.body.data.upsertPatient.status, 'CREATED');
        assert.deepEqual(created.audit, [{ operation: 'write-patient', outcome: 'OK', subject: 'key:hospital', role: 'ehr-service', key_id: id }]);

        const found = await graphql(PATIENT_BY_IDENTIFIER, { identifier }, { 'x-api-key': secret });
        assert.equal(found.body.errors, undefined, JSON.stringify(found.body));
        assert.equal(found.body.data.patientByIdentifier.id, created.body.data.upsertPatient.patient.id);
        assert.deepEqual(found.audit.map((row) => [row.operation, row.outcome, row.key_id]), [['read-patient', 'OK', id]]);

        const foreign = await graphql(PATIENT_BY_IDENTIFIER, { identifier: { system: 'urn:oid:9.9.9', value: 'H-0001' } }, { 'x-api-key': secret });
        assert.equal(foreign.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
        assert.equal(foreign.body.errors[0].extensions.reason, 'FOREIGN_IDENTIFIER_SYSTEM', 'the binding set by --system holds');

        const unknownSecret = `fcbr_${randomBytes(32).toString('base64url')}`;
        for (const headers of [{ authorization: `Bearer ${unknownSecret}` }, { 'x-api-key': unknownSecret }, { 'x-api-key': 'fcbr_not-a-key' }, { authorization: `Bearer ${secret.slice(0, -1)}x` }]) {
          const refused = await graphql(PATIENT_BY_IDENTIFIER, { identifier }, headers);
          assert.equal(refused.status, 401, JSON.stringify(headers));
          assert.deepEqual([refused.body.errors[0].extensions.code, refused.body.errors[0].extensions.reason], ['UNAUTHENTICATED', 'UNKNOWN_KEY']);
          assert.equal(refused.body.data, undefined);
          assert.deepEqual(refused.audit.map((row) => [row.operation, row.outcome, row.key_id]), [['authenticate', 'UNAUTHENTICATED', null]]);
        }
      });
    });

    test('keys revoke ID: the key then gets 401 KEY_REVOKED; a key past its --expires gets KEY_EXPIRED; list says which', async () => {
      const { id } = keys.hospital;
      const revoked = runKeys(['revoke', id], ['revoke', 'OK']);
      assert.equal(revoked.status, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`^revoked ${id} \\(hospital\\) at \\d{4}-\\d{2}-\\d{2}T`, 'm'));
      const again = runKeys(['revoke', id], ['revoke', 'OK']);
      assert.equal(again.status, 0, 'revoking twice is harmless');
      assert.equal(again.stdout, revoked.stdout, 'and keeps the first revocation time');

      await sleep(Math.max(0, keys.expiring.expiresAt.getTime() - Date.now() + 200));
      const lines = listLines();
      assert.match(lines.find((line) => line.startsWith(id)), /\srevoked \d{4}-/);
      assert.match(lines.find((line) => line.startsWith(keys.expiring.id)), /\sexpired \d{4}-/);

      await withServer(async ({ graphql }) => {
        const identifier = { system: HOSPITAL_SYSTEM, value: 'H-0001' };
        for (const [key, reason] of [[keys.hospital, 'KEY_REVOKED'], [keys.expiring, 'KEY_EXPIRED']]) {
          for (const headers of [{ authorization: `Bearer ${key.secret}` }, { 'x-api-key': key.secret }]) {
            const refused = await graphql(PATIENT_BY_IDENTIFIER, { identifier }, headers);
            assert.equal(refused.status, 401);
            assert.deepEqual([refused.body.errors[0].extensions.code, refused.body.errors[0].extensions.reason], ['UNAUTHENTICATED', reason]);
            assert.deepEqual(refused.audit.map((row) => [row.operation, row.outcome, row.key_id]), [['authenticate', 'UNAUTHENTICATED', key.id]], 'the refusal names the key');
          }
        }
      });
    });

    const REFUSED_CREATES = [
      { name: 'an unknown role', args: ['--role', 'superuser', '--name', 'x'], message: /role must be one of/ },
      { name: 'ehr-service without --system', args: ['--role', 'ehr-service', '--name', 'x'], message: /--system/ },
      { name: 'ehr-service with a system that is not a URI', args: ['--role', 'ehr-service', '--system', 'hospital', '--name', 'x'], message: /identifierSystem must be an absolute URI/ },
      { name: 'ehr-service bound to urn:dicom:uid, which every credential shares', args: ['--role', 'ehr-service', '--system', 'urn:dicom:uid', '--name', 'x'], message: /urn:dicom:uid/ },
      { name: 'a clinician key with --system', args: ['--role', 'clinician', '--system', HOSPITAL_SYSTEM, '--name', 'x'], message: /only ehr-service keys/ },
      { name: '--expires in the past', args: ['--role', 'clinician', '--name', 'x', '--expires', new Date(Date.now() - 60_000).toISOString()], message: /expiresAt must be a time in the future/ },
      { name: '--expires that is not a time', args: ['--role', 'clinician', '--name', 'x', '--expires', 'next-tuesday'], message: /--expires must be an ISO 8601 time/ },
      { name: 'a name with markup', args: ['--role', 'clinician', '--name', '<script>alert(1)</script>'], message: /name must be/ },
      { name: 'no name', args: ['--role', 'clinician'], message: /name must be/ },
    ];
    test(`keys create refuses bad arguments (${REFUSED_CREATES.length} cases) with exit code 1 and BAD_USER_INPUT, printing no secret and creating no key`, () => {
      for (const row of REFUSED_CREATES) {
        const result = runKeys(['create', ...row.args], ['create', 'BAD_USER_INPUT']);
        assert.equal(result.status, 1, `${row.name}: ${result.stdout}${result.stderr}`);
        assert.match(result.stderr, /^BAD_USER_INPUT: /, row.name);
        assert.match(result.stderr, row.message, row.name);
        assert.ok(!/fcbr_/.test(result.stdout + result.stderr), `${row.name}: no secret printed`);
      }
      const revokeUnknown = runKeys(['revoke', '00000000-0000-4000-8000-000000000000'], ['revoke', 'NOT_FOUND']);
      assert.deepEqual([revokeUnknown.status, /^NOT_FOUND: /.test(revokeUnknown.stderr)], [1, true], revokeUnknown.stderr);
      const revokeMalformed = runKeys(['revoke', "1'; DROP TABLE api_key;--"], ['revoke', 'BAD_USER_INPUT']);
      assert.deepEqual([revokeMalformed.status, /^BAD_USER_INPUT: id must be a UUID/.test(revokeMalformed.stderr)], [1, true], revokeMalformed.stderr);
      for (const args of [[], ['rotate'], ['create', '--colour', 'red'], ['revoke'], ['list', 'extra']]) {
        const usage = runKeys(args, null);
        assert.equal(usage.status, 2, `${args.join(' ')}: usage errors exit 2`);
        assert.match(usage.stderr, /usage: npm run keys/);
      }
      assert.equal(listLines().length, 2, 'still only the two keys created above');
    });

    test('audit:verify exits 0 naming the row count; every CLI run left its row; an altered row makes it exit 1 naming that row', async () => {
      const verified = run(AUDIT_VERIFY_CLI, []);
      assert.equal(verified.status, 0, verified.stdout + verified.stderr);
      const [, rows, headSeq] = /^audit chain OK: (\d+) rows, head (\d+) [0-9a-f]{64}$/m.exec(verified.stdout) ?? [];
      assert.ok(rows, verified.stdout);

      const db = await openDatabase({ database: databaseEnvironment.DATABASE_URL ? { kind: 'postgres', url: databaseEnvironment.DATABASE_URL } : { kind: 'pglite', dataDir: databaseEnvironment.PGLITE_DATA_DIR }, migrationsDir });
      let tampered;
      try {
        const [{ n }] = await db.sql.query('SELECT count(*)::int AS n FROM audit_event');
        assert.deepEqual([Number(rows), Number(headSeq)], [n, n], 'the count printed is the number of rows');
        const cliRows = await db.sql.query("SELECT details->>'action' AS action, outcome, subject, role FROM audit_event WHERE operation = 'manage-keys' ORDER BY seq");
        assert.deepEqual(cliRows.map((row) => [row.action, row.outcome]), expectedCliAudit);
        assert.ok(cliRows.every((row) => row.subject === OPERATOR && row.role === 'admin'), 'recorded as the operating-system user');

        // An operator with the table owner's rights switches the append-only trigger off and edits a row.
        [{ seq: tampered }] = await db.sql.query("SELECT seq::text AS seq FROM audit_event WHERE outcome = 'UNAUTHENTICATED' ORDER BY seq LIMIT 1");
        await db.sql.query('ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update_or_delete');
        await db.sql.query("UPDATE audit_event SET outcome = 'OK' WHERE seq = $1::bigint", [tampered]);
        await db.sql.query('ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update_or_delete');
      } finally {
        await db.close();
      }
      const broken = run(AUDIT_VERIFY_CLI, []);
      assert.equal(broken.status, 1, broken.stdout + broken.stderr);
      assert.match(broken.stdout, new RegExp(`^BROKEN at row ${tampered}: its content does not match its hash`, 'm'));
    });
  });
}
