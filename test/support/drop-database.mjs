// Dropping a scratch database that a suite or a benchmark made, as the non-superuser role that made it.
//
// `DROP DATABASE ... WITH (FORCE)` ends the other sessions in the database first, but only those the role may
// signal: on PostgreSQL 15 an autovacuum worker that happens to be vacuuming or analysing the database (as it
// does after a suite writes many rows) runs as no role at all, so FORCE fails with 42501 ("must be a member of
// the role whose process is being terminated"). A plain DROP DATABASE treats autovacuum workers itself (it
// signals them and waits up to 5 s for the database to be free), so on 42501 we end our own role's sessions
// and drop without FORCE, retrying while the database is still in use (55006).
import pg from 'pg';

const INSUFFICIENT_PRIVILEGE = '42501';
const OBJECT_IN_USE = '55006';

/**
 * Drops `name` through the maintenance database at `adminUrl`. `attempts` bounds the plain drops after FORCE
 * was refused (each one waits up to 5 s on the server); the last error is thrown when none succeeds.
 */
export async function dropScratchDatabase(adminUrl, name, { attempts = 4, pauseMs = 250 } = {}) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a scratch database name: ${JSON.stringify(name)}`);
  const client = new pg.Client({ connectionString: String(adminUrl) });
  await client.connect();
  try {
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      return { force: true, attempts: 0 };
    } catch (error) {
      if (error.code !== INSUFFICIENT_PRIVILEGE) throw error;
    }
    for (let attempt = 1; ; attempt += 1) {
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()', [name]);
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
        return { force: false, attempts: attempt };
      } catch (error) {
        if (error.code !== OBJECT_IN_USE || attempt >= attempts) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  } finally {
    await client.end();
  }
}
