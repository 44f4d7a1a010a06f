import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repositoryRoot } from '../config.js';
import { openDatabase } from './database.js';

test('an embedded database directory can be opened by one owner at a time, and again after close', { timeout: 120_000 }, async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-lock-'));
  const config = { database: { kind: 'pglite' as const, dataDir }, migrationsDir: path.join(repositoryRoot, 'prisma', 'migrations') };
  const first = await openDatabase(config);
  await assert.rejects(openDatabase(config), /in use by process/);
  await first.close();
  const second = await openDatabase(config);
  assert.deepEqual(await second.sql.query('SELECT 1 AS one'), [{ one: 1 }]);
  await second.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

test('a lock left by a process that is gone is taken over', { timeout: 120_000 }, async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-lock-'));
  await fs.writeFile(`${dataDir}.lock`, '999999999');
  const db = await openDatabase({ database: { kind: 'pglite', dataDir }, migrationsDir: path.join(repositoryRoot, 'prisma', 'migrations') });
  await db.close();
  await assert.rejects(fs.access(`${dataDir}.lock`), 'the lock is removed on close');
  await fs.rm(dataDir, { recursive: true, force: true });
});
