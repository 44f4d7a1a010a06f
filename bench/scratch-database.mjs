// Benchmarks never write into a database someone uses: with DATABASE_URL they copy it (CREATE DATABASE ...
// TEMPLATE, so an extension a superuser created comes along) into a scratch database and drop that afterwards;
// without it they use a fresh embedded PGlite directory.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { dropScratchDatabase } from '../test/support/drop-database.mjs';

export async function createScratchEnvironment() {
  const sourceUrl = process.env.DATABASE_URL;
  if (!sourceUrl) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-bench-db-'));
    return { env: { PGLITE_DATA_DIR: dataDir, DATABASE_URL: undefined }, drop: async () => fs.rmSync(dataDir, { recursive: true, force: true }) };
  }
  const source = new URL(sourceUrl);
  const admin = new URL(source);
  admin.pathname = '/postgres';
  const name = `fundus_bench_${randomBytes(4).toString('hex')}`;
  const run = async (sql) => {
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name} TEMPLATE ${source.pathname.slice(1)}`);
  const scratch = new URL(source);
  scratch.pathname = `/${name}`;
  return { env: { DATABASE_URL: scratch.toString() }, drop: () => dropScratchDatabase(admin, name) };
}
