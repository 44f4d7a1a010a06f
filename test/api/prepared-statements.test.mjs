// Named prepared statements on PostgreSQL (db/statement-names.ts): the pool's connections parse a statement once
// and run it again by name with other values, and the answers are those of the values given.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { POSTGRES_SKIP_REASON, createTestDatabase, migrationsDir } from '../support/backends.mjs';

describe('named prepared statements on PostgreSQL', { skip: POSTGRES_SKIP_REASON }, () => {
  let database;
  before(async () => {
    database = await createTestDatabase('postgres');
  });
  after(async () => database?.drop());

  /** A database handle of one connection, so the prepared statements read back are the ones it made. */
  async function openOneConnection(namedStatements) {
    const { openDatabase } = await import('../../apps/api/dist/db/database.js');
    return openDatabase({ database: { kind: 'postgres', url: database.config.url }, migrationsDir, databasePoolSize: 1, databaseNamedStatements: namedStatements });
  }

  test('a parameterised statement is prepared once under its name and answers for each execution\'s values', async () => {
    const db = await openOneConnection(true);
    try {
      const run = (value) => db.prisma.$queryRaw`SELECT ${value}::int * 2 AS doubled`;
      assert.deepEqual(await run(3), [{ doubled: 6 }]);
      assert.deepEqual(await run(20), [{ doubled: 40 }], 'the second execution binds its own value');
      const prepared = await db.prisma.$queryRaw`SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE ${'%doubled%'} AND name <> ${''}`;
      const doubled = prepared.filter((row) => /AS doubled$/.test(row.statement));
      assert.equal(doubled.length, 1, `one prepared statement for both executions: ${JSON.stringify(prepared)}`);
      assert.match(doubled[0].name, /^fcbr_[0-9a-f]{24}$/);
      assert.ok(db.namedStatements.stats().named >= 2, 'the doubling and the catalogue read are named');
    } finally {
      await db.close();
    }
  });

  test('turned off (DATABASE_NAMED_STATEMENTS=false), nothing is prepared by name', async () => {
    const db = await openOneConnection(false);
    try {
      assert.deepEqual(await db.prisma.$queryRaw`SELECT ${5}::int * 2 AS doubled`, [{ doubled: 10 }]);
      const [{ n }] = await db.prisma.$queryRaw`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name <> ${''}`;
      assert.equal(n, 0);
      assert.equal(db.namedStatements, null);
    } finally {
      await db.close();
    }
  });
});
