// The suites' and benchmarks' scratch databases are dropped by the non-superuser test role. FORCE cannot end a
// session the role may not signal (on PostgreSQL 15 an autovacuum worker is one: CI once failed on it after a
// suite's last test); dropScratchDatabase then ends its own role's sessions and drops without FORCE, which waits
// for the others. A superuser's session stands in for the autovacuum worker here: FORCE is refused for it in
// the same way (42501), and a plain drop waits for it just as it waits for a worker it has signalled.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import pg from 'pg';
import { dropScratchDatabase } from '../support/drop-database.mjs';

const skip = !process.env.TEST_DATABASE_URL || !process.env.TEST_SUPERUSER_DATABASE_URL
  ? 'TEST_DATABASE_URL and TEST_SUPERUSER_DATABASE_URL are not set: run `bash .ci/run` (or scripts/ci-setup.sh), which sets both'
  : false;

describe('dropScratchDatabase on PostgreSQL', { skip }, () => {
  const templateUrl = skip ? null : new URL(process.env.TEST_DATABASE_URL);
  const adminUrl = () => Object.assign(new URL(templateUrl), { pathname: '/postgres' });
  const urlOf = (base, name) => Object.assign(new URL(base), { pathname: `/${name}` });

  async function scratch() {
    const name = `fundus_t_drop_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: adminUrl().toString() });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${templateUrl.pathname.slice(1)}`);
    await admin.end();
    return name;
  }
  async function connect(base, name) {
    const client = new pg.Client({ connectionString: urlOf(base, name).toString() });
    client.on('error', () => {}); // a terminated session reports here; the test looks at the database instead
    await client.connect();
    return client;
  }
  async function exists(name) {
    const admin = new pg.Client({ connectionString: adminUrl().toString() });
    await admin.connect();
    try {
      return (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
    } finally {
      await admin.end();
    }
  }

  test('with only the role\'s own sessions open, FORCE ends them and drops the database', async () => {
    const name = await scratch();
    const own = await connect(templateUrl, name);
    const outcome = await dropScratchDatabase(adminUrl(), name);
    assert.deepEqual(outcome, { force: true, attempts: 0 });
    assert.equal(await exists(name), false);
    await own.end().catch(() => {});
  });

  test('a session the role may not end: FORCE is refused, the role\'s own sessions are ended and the plain drop waits for the other', async () => {
    const name = await scratch();
    const own = await connect(templateUrl, name);
    const other = await connect(process.env.TEST_SUPERUSER_DATABASE_URL, name);
    // The other session goes away after a second, as an autovacuum worker does once signalled.
    const leaving = new Promise((resolve) => setTimeout(() => other.end().then(resolve, resolve), 1000));
    const outcome = await dropScratchDatabase(adminUrl(), name);
    await leaving;
    assert.equal(outcome.force, false, 'FORCE cannot end a superuser\'s session');
    assert.ok(outcome.attempts >= 1);
    assert.equal(await exists(name), false);
    await own.end().catch(() => {});
  });

  test('a session that never goes: the error of the last plain drop is thrown and the database stays', async () => {
    const name = await scratch();
    const other = await connect(process.env.TEST_SUPERUSER_DATABASE_URL, name);
    try {
      await assert.rejects(dropScratchDatabase(adminUrl(), name, { attempts: 1 }), (error) => error.code === '55006');
      assert.equal(await exists(name), true);
    } finally {
      await other.end();
      await dropScratchDatabase(adminUrl(), name);
    }
    assert.equal(await exists(name), false);
  });

  test('a name that is not a plain identifier is refused before anything is sent', async () => {
    await assert.rejects(dropScratchDatabase(adminUrl(), 'x; DROP DATABASE postgres'), /not a scratch database name/);
  });
});
