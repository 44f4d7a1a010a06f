import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repositoryRoot } from '../config.js';
import { openDatabase } from './database.js';
import { liveLockHolder, processIdentity } from './lock-file.js';

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

test('a lock naming a live pid that now belongs to another process is taken over (a restarted container reuses pids)', { timeout: 120_000, skip: processIdentity(process.pid) === null && 'no /proc here: only the pid is checked' }, async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-lock-'));
  const config = { database: { kind: 'pglite' as const, dataDir }, migrationsDir: path.join(repositoryRoot, 'prisma', 'migrations') };
  // Our own pid, written by an earlier process that had it: alive, but not the same process.
  await fs.writeFile(`${dataDir}.lock`, JSON.stringify({ pid: process.pid, identity: 'another-boot/12345' }));
  const db = await openDatabase(config);
  await db.close();
  // A live process with its true identity holds it: refused.
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    await fs.writeFile(`${dataDir}.lock`, JSON.stringify({ pid: holder.pid, identity: processIdentity(holder.pid!) }));
    assert.equal(liveLockHolder(await fs.readFile(`${dataDir}.lock`, 'utf8')), holder.pid);
    await assert.rejects(openDatabase(config), new RegExp(`in use by process ${holder.pid}`));
    // The same pid with another start time: a reused pid, stale.
    await fs.writeFile(`${dataDir}.lock`, JSON.stringify({ pid: holder.pid, identity: `${processIdentity(holder.pid!)}0` }));
    const reopened = await openDatabase(config);
    await reopened.close();
  } finally {
    holder.kill('SIGKILL');
    await fs.rm(dataDir, { recursive: true, force: true });
    await fs.rm(`${dataDir}.lock`, { force: true });
  }
});
