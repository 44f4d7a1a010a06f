// Writes the SQL that takes the database from the state of the committed migrations to prisma/schema.prisma.
//
// Why this script: Prisma 7's `migrate` cannot run offline here (it downloads a native engine), while Prisma
// 6.19's WASM differ works offline for schema-to-schema diffs (../shared/TOOLCHAIN.md). We diff the schema as of
// the last migration (prisma/migrations/schema.snapshot.prisma) against the current schema, so no shadow
// database is needed, then snapshot the new schema. Migrations are applied by apps/api/src/db/migrate.ts, the
// same code for PGlite and PostgreSQL.
//
//   node scripts/create-migration.mjs <name>           write prisma/migrations/<NNNN>_<name>/migration.sql
//   node scripts/create-migration.mjs --print-full     print the SQL that builds the schema from empty (tests)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const schemaPath = path.join(root, 'prisma', 'schema.prisma');
const migrationsDir = path.join(root, 'prisma', 'migrations');
const snapshotPath = path.join(migrationsDir, 'schema.snapshot.prisma');
const cli = path.join(root, 'node_modules', 'prisma-migrate-cli', 'build', 'index.js');

// Prisma 6 requires a datasource url in the schema file (Prisma 7 forbids it) and needs engineType "client" to
// use its WASM engines; the differ never connects (prisma/offline-differ.config.ts).
function toPrisma6Schema(source) {
  return source
    .replace(/datasource db \{/, 'datasource db {\n  url = "postgresql://offline/never-connected"')
    .replace(/generator client \{/, 'generator client {\n  engineType = "client"');
}

function writeTemp(name, contents) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-migrate-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, contents);
  return file;
}

function diff(fromSchema, toSchema) {
  const to = writeTemp('to.prisma', toPrisma6Schema(toSchema));
  const args = ['migrate', 'diff', '--config', path.join(root, 'prisma', 'offline-differ.config.ts'), '--to-schema-datamodel', to, '--script'];
  if (fromSchema === null) args.push('--from-empty');
  else args.push('--from-schema-datamodel', writeTemp('from.prisma', toPrisma6Schema(fromSchema)));
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    encoding: 'utf8',
    // The query-engine path stops the CLI from downloading a native library it never uses for a diff.
    env: { ...process.env, CHECKPOINT_DISABLE: '1', PRISMA_HIDE_UPDATE_MESSAGE: '1', PRISMA_QUERY_ENGINE_LIBRARY: '/bin/true' },
  });
  if (result.status !== 0) {
    process.stderr.write(result.stderr);
    throw new Error(`prisma migrate diff failed with status ${result.status}`);
  }
  return result.stdout;
}

const [arg] = process.argv.slice(2);
const schema = fs.readFileSync(schemaPath, 'utf8');
if (arg === '--print-full') {
  process.stdout.write(diff(null, schema));
} else if (arg && /^[a-z0-9_]+$/.test(arg)) {
  fs.mkdirSync(migrationsDir, { recursive: true });
  const previous = fs.existsSync(snapshotPath) ? fs.readFileSync(snapshotPath, 'utf8') : null;
  const sql = diff(previous, schema);
  if (!/\S/.test(sql.replace(/^--.*$/gm, ''))) {
    console.log('schema.prisma matches the last migration; nothing to write');
    process.exit(0);
  }
  const count = fs.readdirSync(migrationsDir).filter((entry) => /^\d{4}_/.test(entry)).length;
  const dir = path.join(migrationsDir, `${String(count + 1).padStart(4, '0')}_${arg}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'migration.sql'), sql);
  fs.writeFileSync(snapshotPath, schema);
  console.log(`wrote ${path.relative(root, dir)}/migration.sql; add hand-written constraints below the generated SQL`);
} else {
  console.error('usage: node scripts/create-migration.mjs <snake_case_name> | --print-full');
  process.exit(2);
}
