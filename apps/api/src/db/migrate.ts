// Applies prisma/migrations/<NNNN>_<name>/migration.sql in order, each in its own transaction, recording name and
// SHA-256 in fundus_migrations. One runner for PGlite and PostgreSQL (Prisma 7's migrate cannot run offline;
// ARCHITECTURE.md, "Migrations"). An applied migration whose file changed afterwards is an error, never re-run.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SqlRunner } from './sql-runner.js';

export type Migration = { name: string; sql: string; checksum: string };

export async function readMigrations(migrationsDir: string): Promise<Migration[]> {
  const entries = await fs.readdir(migrationsDir, { withFileTypes: true });
  const names = entries.filter((entry) => entry.isDirectory() && /^\d{4}_[a-z0-9_]+$/.test(entry.name)).map((entry) => entry.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await fs.readFile(path.join(migrationsDir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/** Applies pending migrations; returns the names applied. Safe to call at every start-up. */
export async function applyMigrations(runner: SqlRunner, migrationsDir: string): Promise<string[]> {
  const migrations = await readMigrations(migrationsDir);
  await runner.exec(`CREATE TABLE IF NOT EXISTS fundus_migrations (
    name text PRIMARY KEY,
    checksum char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const applied: string[] = [];
  for (const migration of migrations) {
    const didApply = await runner.transaction(async (tx) => {
      // Serialises concurrent starters on PostgreSQL; a no-op cost on PGlite's single connection.
      await tx.query('SELECT pg_advisory_xact_lock(7318001)');
      const [existing] = await tx.query<{ checksum: string }>('SELECT checksum FROM fundus_migrations WHERE name = $1', [migration.name]);
      if (existing) {
        if (existing.checksum.trim() !== migration.checksum) {
          throw new Error(`Migration ${migration.name} was changed after it was applied (checksum mismatch); add a new migration instead`);
        }
        return false;
      }
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO fundus_migrations (name, checksum) VALUES ($1, $2)', [migration.name, migration.checksum]);
      return true;
    });
    if (didApply) applied.push(migration.name);
  }
  return applied;
}
