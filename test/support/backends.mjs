// The databases every end-to-end suite runs against: embedded PGlite always, and PostgreSQL + pgvector when
// TEST_DATABASE_URL points at a server whose role may create databases (.ci/run sets it up). Each suite gets a
// database of its own, so suites can run in parallel and never see each other's rows.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { dropScratchDatabase } from './drop-database.mjs';

export const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const migrationsDir = path.join(repositoryRoot, 'prisma', 'migrations');
const api = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));

export const BACKENDS = ['pglite', 'postgres'];
export const POSTGRES_SKIP_REASON = process.env.TEST_DATABASE_URL
  ? false
  : 'TEST_DATABASE_URL is not set: run `bash .ci/run` (or scripts/ci-setup.sh) to install PostgreSQL + pgvector and run this suite against it';

/** A fresh, empty, migrated database of the given kind; `drop()` removes it. */
export async function createTestDatabase(kind, { templateUrl: templateUrlText = process.env.TEST_DATABASE_URL } = {}) {
  const { openDatabase } = await api('db/database.js');
  if (kind === 'pglite') {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-test-pglite-'));
    const db = await openDatabase({ database: { kind: 'pglite', dataDir }, migrationsDir });
    return { db, config: { kind, dataDir }, drop: async () => { await db.close(); await fs.rm(dataDir, { recursive: true, force: true }); } };
  }
  // TEST_DATABASE_URL names an empty database in which a superuser created the vector extension (as a DBA
  // would in production); each suite's database is a copy of it, so the test role needs only CREATEDB.
  const templateUrl = new URL(templateUrlText);
  const template = templateUrl.pathname.slice(1);
  const adminUrl = new URL(templateUrl);
  adminUrl.pathname = '/postgres';
  const name = `fundus_t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  await admin.end();
  const url = new URL(templateUrl);
  url.pathname = `/${name}`;
  const db = await openDatabase({ database: { kind: 'postgres', url: url.toString() }, migrationsDir });
  return {
    db,
    config: { kind, url: url.toString() },
    drop: async () => {
      await db.close();
      await dropScratchDatabase(adminUrl, name);
    },
  };
}

/** A running API on a free port over a fresh database seeded with the named fixture cohort. */
export const TINY_MODEL = path.join(repositoryRoot, 'test', 'fixtures', 'models', 'tiny-fundus-cbr.onnx');
/** The tiny model with a feature_map output and a region head: search by region and explanations work on it. */
export const TINY_REGION_MODEL = path.join(repositoryRoot, 'test', 'fixtures', 'models', 'tiny-fundus-cbr-regions.onnx');

/**
 * `modelPath`: load that ONNX model as the API's embedder; without it the API runs with no model.
 * Every request needs a credential: the API runs with the local demo issuer (a fresh key per suite), and
 * `graphql`/`fetch` sign as `as` (a demo user's subject: demo-clinician by default, demo-researcher, demo-ehr,
 * demo-admin), or send exactly the headers given with `as: null`.
 */
export async function startApi(kind, { cohort = 'test-clinic', env = {}, modelPath = null, logLines = null, photographs = false, templateUrl, prepare = null } = {}) {
  const [{ loadConfig }, { createServer }, { buildCohort }, { loadCohort, renderSyntheticPhotograph }, { createLogger }] = await Promise.all([
    api('config.js'), api('server.js'), api('fixtures/cohort.js'), api('fixtures/seed.js'), api('logger.js'),
  ]);
  const { Embedder } = await api('embedding/embedder.js');
  const embedder = modelPath ? await Embedder.load({ modelPath, device: 'cpu' }) : null;
  const database = await createTestDatabase(kind, templateUrl ? { templateUrl } : {});
  // photographs: true seeds as the demo does (synthetic fundus photographs, embedded with heat maps by the
  // loaded model), at 400x300 px to keep the suite quick; otherwise placeholder bytes and fixture vectors.
  const seedOptions = photographs ? { embedder, renderImage: (image) => renderSyntheticPhotograph({ ...image, width: image.width ?? 400, height: image.height ?? 300 }) } : {};
  if (cohort) await loadCohort(database.db, buildCohort(cohort), seedOptions);
  // `prepare(db, database)`: the suite's own set-up of the seeded database before the server opens it.
  if (prepare) await prepare(database.db, database.config);
  const keyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-test-keys-'));
  // `env` may be a function of the suite's database ({ kind, url } or { kind, dataDir }), for settings that name it.
  if (typeof env === 'function') env = env(database.config);
  const config = loadConfig({ SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'silent', PGLITE_DATA_DIR: '/nonexistent-unused', AUTH_LOCAL_ISSUER: 'true', AUTH_LOCAL_KEY_DIR: keyDir, ...env });
  const server = await createServer(config, { database: database.db, logger: logLines ? createLogger('info', (line) => logLines.push(line)) : createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), embedder });
  const running = await server.listen(0, '127.0.0.1');
  const { DEMO_USERS } = await api('auth/local-issuer.js');
  const tokens = new Map();
  for (const user of DEMO_USERS) {
    tokens.set(user.subject, await server.localIssuer.sign({ ...user, identifierSystem: user.role === 'ehr-service' ? (env.TEST_EHR_SYSTEM ?? 'urn:fundus-cbr:synthetic:test-clinic') : undefined }, { audience: config.auth.audience, roleClaim: config.auth.roleClaim, systemClaim: config.auth.systemClaim }));
  }
  const authHeaders = (as) => {
    if (as === null) return {};
    const token = tokens.get(as);
    if (!token) throw new Error(`no demo user ${as}`);
    return { authorization: `Bearer ${token}` };
  };
  const baseUrl = running.url.replace(/\/graphql$/, '');
  return {
    url: running.url,
    baseUrl,
    db: database.db,
    embedder,
    server,
    config,
    /** How to reach this suite's database: { kind: 'pglite', dataDir } or { kind: 'postgres', url }. */
    database: database.config,
    /** The bearer token of a demo user (demo-clinician, demo-researcher, demo-ehr, demo-admin). */
    tokenFor: (subject) => tokens.get(subject),
    authHeaders,
    async graphql(query, variables, { headers = {}, as = 'demo-clinician' } = {}) {
      const response = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(as), ...headers }, body: JSON.stringify({ query, variables }) });
      return { status: response.status, body: await response.json(), headers: response.headers };
    },
    /** fetch(baseUrl + path) as a demo user. */
    fetch(pathname, init = {}, { as = 'demo-clinician' } = {}) {
      return fetch(`${baseUrl}${pathname}`, { ...init, headers: { ...authHeaders(as), ...(init.headers ?? {}) } });
    },
    async close() {
      await new Promise((resolve) => server.httpServer.close(resolve));
      await running.close().catch(() => {});
      await database.drop().catch(() => {});
      await fs.rm(keyDir, { recursive: true, force: true });
    },
  };
}

/** Row counts of every application table: proof that a failed request wrote nothing. */
export async function countRows(db) {
  const tables = ['dataset', 'patient', 'hba1c_reading', 'visit', 'image_blob', 'fundus_image', 'image_embedding', 'grading', 'diagnosis', 'treatment', 'external_link', 'api_key', 'suggestion_log'];
  const counts = {};
  for (const table of tables) {
    const [row] = await db.sql.query(`SELECT count(*)::int AS n FROM ${table}`);
    counts[table] = row.n;
  }
  return counts;
}
