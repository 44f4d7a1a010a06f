// Drift guards: the committed schema.graphql is what the code emits, and the committed migrations build exactly
// the database prisma/schema.prisma describes (compared through the catalogs of two fresh databases), on PGlite
// and on PostgreSQL.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, createTestDatabase, repositoryRoot } from '../support/backends.mjs';

test('schema.graphql is what the code emits (run `npm run schema:emit` after changing resolvers)', async () => {
  const { emitSchema } = await import(path.join(repositoryRoot, 'apps/api/dist/cli/emit-schema.js'));
  assert.equal(fs.readFileSync(path.join(repositoryRoot, 'schema.graphql'), 'utf8'), await emitSchema());
});

/** Columns, indexes, constraints and enum values, as text lines, sorted: two equal catalogs are the same schema. */
async function describeCatalog(sql) {
  const lines = [];
  const columns = await sql.query(`
    SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
           character_maximum_length, numeric_precision, numeric_scale, datetime_precision
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'fundus_migrations'`);
  for (const c of columns) lines.push(`column ${c.table_name}.${c.column_name} ${c.data_type}/${c.udt_name} null=${c.is_nullable} default=${c.column_default} len=${c.character_maximum_length} num=${c.numeric_precision},${c.numeric_scale} dt=${c.datetime_precision}`);
  const vectorTypes = await sql.query(`
    SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r' AND format_type(a.atttypid, a.atttypmod) LIKE 'vector%'`);
  for (const v of vectorTypes) lines.push(`vector ${v.table_name}.${v.column_name} ${v.type}`);
  const indexes = await sql.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'fundus_migrations'`);
  for (const i of indexes) lines.push(`index ${i.indexname} ${i.indexdef}`);
  const constraints = await sql.query(`
    SELECT con.conname, con.contype, cl.relname, pg_get_constraintdef(con.oid) AS definition
    FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
    WHERE n.nspname = 'public' AND cl.relname <> 'fundus_migrations'`);
  for (const c of constraints) lines.push(`constraint ${c.relname}.${c.conname} ${c.contype} ${c.definition}`);
  const enums = await sql.query(`
    SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) AS labels
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`);
  for (const e of enums) lines.push(`enum ${e.typname} ${e.labels}`);
  return lines.sort();
}

/** The constraints and approximate vector indexes added by hand below the generated SQL (Prisma cannot express them). */
const HAND_WRITTEN_NAMES = [
  'grading_dr_grade_icdr',
  'grading_macular_edema_risk_range',
  'fundus_image_dr_grade_icdr',
  'fundus_image_size_positive',
  'fundus_image_content_hash_hex',
  'image_blob_byte_size_matches',
  'patient_birth_year_plausible',
  'treatment_agent_only_for_anti_vegf',
  'external_link_has_target',
  'image_embedding_attention_shape',
  'api_key_role_known',
  'api_key_ehr_bound_to_system',
  'api_key_secret_hash_hex',
  'audit_event_hashes_hex',
  'audit_chain_head_single_row',
  'suggestion_log_status_known',
  'suggestion_log_grades_icdr',
  'suggestion_log_has_query',
  'similar_case_search_k_hash_valid',
  'relevance_feedback_hashes_hex',
  'relevance_feedback_rank_positive',
  'vector_index_build_grade_icdr',
  'vector_index_build_kind_known',
];
const HAND_WRITTEN_INDEXES = ['image_embedding_hnsw_grade_0', 'image_embedding_hnsw_grade_1', 'image_embedding_hnsw_grade_2', 'image_embedding_hnsw_grade_3', 'image_embedding_hnsw_grade_4', 'image_embedding_hnsw_ungraded'];
// `npm run vector-index -- rebuild` (search/vector-indexes.ts) replaces a grade's HNSW graph by an index of another
// kind outside the migrations, named for its kind: accepted here as the grade's one hand-written index.
const REBUILT_INDEXES = [0, 1, 2, 3, 4].map((grade) => `image_embedding_ivfflat_grade_${grade}`);
const HAND_WRITTEN = new RegExp(`^index (${[...HAND_WRITTEN_INDEXES, ...REBUILT_INDEXES].join('|')}) |^constraint \\S+\\.(${HAND_WRITTEN_NAMES.join('|')}) `);

for (const backend of BACKENDS) {
  describe(`migrations on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let migrated;
    let fromSchema;
    before(async () => {
      [migrated, fromSchema] = await Promise.all([createTestDatabase(backend), createTestDatabase(backend)]);
      // Rebuild the second database from prisma/schema.prisma alone: drop what the migrations made, then run the
      // SQL Prisma's differ writes for the schema file. The vector extension stays (the test role may not create it).
      await fromSchema.db.sql.exec(`DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP EXECUTE format('DROP TABLE %I CASCADE', r.tablename); END LOOP;
        FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e' LOOP EXECUTE format('DROP TYPE %I', r.typname); END LOOP;
      END $$;`);
      const full = execFileSync(process.execPath, [path.join(repositoryRoot, 'scripts/create-migration.mjs'), '--print-full'], { encoding: 'utf8' });
      await fromSchema.db.sql.exec(full);
    });
    after(async () => {
      await migrated?.drop();
      await fromSchema?.drop();
    });

    test('the migrations build exactly what prisma/schema.prisma describes, plus the hand-written constraints', async () => {
      const fromMigrations = await describeCatalog(migrated.db.sql);
      const expected = await describeCatalog(fromSchema.db.sql);
      const generatedPart = fromMigrations.filter((line) => !HAND_WRITTEN.test(line));
      assert.deepEqual(generatedPart, expected, 'schema.prisma and prisma/migrations disagree: run `npm run migration:create -- <name>`');
      assert.equal(fromMigrations.length - generatedPart.length, HAND_WRITTEN_NAMES.length + HAND_WRITTEN_INDEXES.length, 'every hand-written constraint and HNSW index exists');
    });

    test('a vector-index rebuild keeps one vector index per grade and nothing Prisma describes changes', async () => {
      const { rebuildVectorIndex } = await import(path.join(repositoryRoot, 'apps/api/dist/search/vector-indexes.js'));
      const before = await describeCatalog(migrated.db.sql);
      await rebuildVectorIndex({ db: migrated.db, grade: 4, kind: 'ivfflat' });
      const rebuilt = await describeCatalog(migrated.db.sql);
      assert.deepEqual(rebuilt.filter((line) => !HAND_WRITTEN.test(line)), before.filter((line) => !HAND_WRITTEN.test(line)));
      assert.equal(rebuilt.filter((line) => HAND_WRITTEN.test(line)).length, HAND_WRITTEN_NAMES.length + HAND_WRITTEN_INDEXES.length);
      assert.ok(rebuilt.some((line) => line.startsWith('index image_embedding_ivfflat_grade_4 ')), rebuilt.filter((line) => line.includes('grade_4')).join('\n'));
      assert.ok(!rebuilt.some((line) => line.startsWith('index image_embedding_hnsw_grade_4 ')));
      // Back to the migrations' kind: the next tests see the catalogue the migrations built.
      await rebuildVectorIndex({ db: migrated.db, grade: 4, kind: 'hnsw' });
      assert.deepEqual(await describeCatalog(migrated.db.sql), before);
    });

    test('re-applying migrations is a no-op, and an edited migration is refused', async () => {
      const { applyMigrations } = await import(path.join(repositoryRoot, 'apps/api/dist/db/migrate.js'));
      const migrationsDir = path.join(repositoryRoot, 'prisma', 'migrations');
      assert.deepEqual(await applyMigrations(migrated.db.sql, migrationsDir), []);
      await migrated.db.sql.query("UPDATE fundus_migrations SET checksum = repeat('0', 64) WHERE name = '0001_init'");
      await assert.rejects(applyMigrations(migrated.db.sql, migrationsDir), /changed after it was applied/);
    });

    test('the database refuses an out-of-range grade', async () => {
      await assert.rejects(migrated.db.sql.query("INSERT INTO grading (image_id, dr_grade, source, graded_on) VALUES (gen_random_uuid(), 5, 'CLINICIAN', '2024-01-01')"), /grading_dr_grade_icdr/);
    });
  });
}
