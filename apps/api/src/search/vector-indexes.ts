// Upkeep of the per-grade partial vector indexes (`npm run vector-index`): which index each ICDR grade has, and
// rebuilding a grade's index as IVFFlat (the default, where it measured better at 1M cases: bench/README.md) or as
// HNSW (migration 0007's kind, which needs no upkeep).
//
// Why a rebuild step: IVFFlat learns its lists (k-means centres) from the rows present when it is built, so an
// index made by a migration on an empty table would put every later row in one useless list. The command builds it
// after a bulk load, with lists = sqrt(rows) of the grade (measured against pgvector's guidance, rows / 1000 up to
// 1M rows, side by side at 1M cases in bench/README.md: as accurate, and a third of its database time without a grade
// filter, because each probed list is smaller), CONCURRENTLY (searches and ingests go on), then drops the grade's other vector index so the
// planner has one per grade, and records what it built in vector_index_build. `status` compares the rows now with
// the rows at build: a grade that more than doubled (and whose lists by the guidance would be more) is worth a
// rebuild, because each list then holds twice the rows it was sized for (probes 10 scan twice as many) and the
// centres were learnt without the new rows. Rows added later still land in the nearest list, so search stays
// correct in between, only slower and less accurate as the grade outgrows its lists.
//
// Indexes built here are not in the migrations, and their names say their kind: image_embedding_<kind>_grade_<N>
// (test/api/drift.test.mjs accepts either kind for a grade). Ungraded photographs keep migration 0007's HNSW graph:
// they are the few uploaded before grading, and their count changes too fast for learnt lists.
import pg from 'pg';
import type { Database } from '../db/database.js';
import type { SqlRunner } from '../db/sql-runner.js';
import { AppError } from '../errors.js';
import { WHOLE_INDEX_NAME } from './similar-images.js';

export { WHOLE_INDEX_NAME };

export const VECTOR_INDEX_KINDS = ['ivfflat', 'hnsw'] as const;
export type VectorIndexKind = (typeof VECTOR_INDEX_KINDS)[number];
export const VECTOR_INDEX_GRADES = [0, 1, 2, 3, 4] as const;

/**
 * A grade's rows from which `status` advises replacing an HNSW graph with IVFFlat, by the side-by-side run of
 * bench/README.md at 1M cases: grades of 19k-25k rows held recall@10 0.99-1.0 under their filter with either kind at
 * the same database time, while at 70k rows (grade 1) the HNSW walk at ef_search 800 fell to 0.977 and IVFFlat held
 * 1.0; at 150k-735k rows HNSW fell to 0.96-0.97 and cost 2-3x IVFFlat's p95. At 100k cases on PGlite (grade 0 of
 * 73k rows) HNSW held 1.0, so the advice starts between the two: either kind serves a smaller grade.
 */
export const IVFFLAT_ADVISED_FROM_ROWS = 50_000;

/** Build memory of one index: IVFFlat's k-means holds its sample (50 x lists vectors) in maintenance_work_mem. */
const MAINTENANCE_WORK_MEM = '512MB';

/**
 * lists = sqrt(rows), at least 1: at 1M cases, side by side with pgvector's rows / 1000 (bench/README.md), recall@10
 * 0.988-1.0 against 0.984-1.0 per filter, and the unfiltered search's database time 6.6 against 20.7 ms p50 (probes
 * 10 of each grade's lists read about 18,000 rows in all instead of 50,000). Under 100 rows that is at most 10 lists,
 * which probes 10 read whole: an exact scan of the grade.
 */
export function ivfflatListsFor(rows: number): number {
  return Math.max(1, Math.round(Math.sqrt(rows)));
}

export type GradeIndex = { name: string; kind: VectorIndexKind; lists: number | null; valid: boolean; megabytes: number };
export type GradeIndexStatus = {
  grade: number;
  indexes: GradeIndex[];
  rowsNow: number;
  build: { kind: VectorIndexKind; lists: number | null; rowsAtBuild: number; builtAt: Date } | null;
  /** Why a rebuild is advised, or null. */
  recommendation: string | null;
};

function refuse(message: string): never {
  throw new AppError('BAD_USER_INPUT', message);
}

export function parseGrade(value: unknown): number {
  const grade = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof grade !== 'number' || !(VECTOR_INDEX_GRADES as readonly number[]).includes(grade)) refuse(`--grade must be an ICDR grade 0-4, got "${String(value)}"`);
  return grade;
}

export function parseKind(value: unknown): VectorIndexKind {
  if (typeof value !== 'string' || !(VECTOR_INDEX_KINDS as readonly string[]).includes(value)) refuse(`--kind must be one of ${VECTOR_INDEX_KINDS.join(', ')}, got "${String(value)}"`);
  return value as VectorIndexKind;
}

type IndexRow = { name: string; kind: VectorIndexKind; predicate: string; valid: boolean; options: string[] | null; bytes: number };

/** Every vector index of image_embedding with its partial predicate ("(dr_grade = 2)", "(dr_grade IS NULL)"). */
async function vectorIndexes(sql: SqlRunner): Promise<IndexRow[]> {
  return sql.query<IndexRow>(`
    SELECT c.relname AS name, am.amname AS kind, coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
           i.indisvalid AS valid, c.reloptions AS options, pg_relation_size(c.oid)::float8 AS bytes
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
    WHERE i.indrelid = 'image_embedding'::regclass AND am.amname IN ('hnsw', 'ivfflat')
    ORDER BY c.relname`);
}

const gradeOfPredicate = (predicate: string): number | null => {
  const match = /^\(dr_grade = (\d)\)$/.exec(predicate);
  return match ? Number(match[1]) : null;
};

const toMegabytes = (bytes: number) => Number((Number(bytes) / 2 ** 20).toFixed(1));

function toGradeIndex(row: IndexRow): GradeIndex {
  const lists = (row.options ?? []).map((option) => /^lists=(\d+)$/.exec(option)).find(Boolean);
  return { name: row.name, kind: row.kind, lists: lists ? Number(lists[1]) : row.kind === 'ivfflat' ? 100 : null, valid: row.valid, megabytes: toMegabytes(row.bytes) };
}

async function indexMegabytes(sql: SqlRunner, name: string): Promise<number> {
  const [size] = await sql.query<{ bytes: number }>(`SELECT pg_relation_size('${name}')::float8 AS bytes`);
  return toMegabytes(size?.bytes ?? 0);
}

export function rebuildRecommendation(index: GradeIndex | undefined, rowsNow: number, build: GradeIndexStatus['build']): string | null {
  if (!index) return 'no vector index: rebuild recommended';
  if (index.kind === 'hnsw') {
    return rowsNow >= IVFFLAT_ADVISED_FROM_ROWS ? `HNSW over ${rowsNow} rows (>= ${IVFFLAT_ADVISED_FROM_ROWS}): rebuild as ivfflat recommended` : null;
  }
  const rowsAtBuild = build?.kind === 'ivfflat' ? build.rowsAtBuild : 0;
  if (rowsNow > 2 * rowsAtBuild && ivfflatListsFor(rowsNow) > (index.lists ?? 1)) {
    return `rows grew from ${rowsAtBuild} at build to ${rowsNow} (more than 2x; lists ${index.lists}, ${ivfflatListsFor(rowsNow)} for the rows now): rebuild recommended`;
  }
  return null;
}

/** Per ICDR grade: its vector index(es), rows now and at the last rebuild, and whether a rebuild is advised. */
export async function vectorIndexStatus({ db }: { db: Pick<Database, 'sql'> }): Promise<GradeIndexStatus[]> {
  const [indexes, counts, builds] = await Promise.all([
    vectorIndexes(db.sql),
    db.sql.query<{ grade: number; rows: number }>('SELECT dr_grade AS grade, count(*)::int AS rows FROM image_embedding WHERE dr_grade IS NOT NULL GROUP BY dr_grade'),
    db.sql.query<{ grade: number; kind: VectorIndexKind; lists: number | null; rows_at_build: number; built_at: Date }>('SELECT dr_grade AS grade, kind, lists, rows_at_build, built_at FROM vector_index_build'),
  ]);
  return VECTOR_INDEX_GRADES.map((grade) => {
    const own = indexes.filter((row) => gradeOfPredicate(row.predicate) === grade).map(toGradeIndex);
    const rowsNow = counts.find((row) => Number(row.grade) === grade)?.rows ?? 0;
    const record = builds.find((row) => Number(row.grade) === grade);
    const build = record ? { kind: record.kind, lists: record.lists, rowsAtBuild: record.rows_at_build, builtAt: new Date(record.built_at) } : null;
    return { grade, indexes: own, rowsNow, build, recommendation: rebuildRecommendation(own.find((index) => index.valid), rowsNow, build) };
  });
}

export type RebuildResult = { grade: number; kind: VectorIndexKind; name: string; lists: number | null; rows: number; seconds: number; megabytes: number; dropped: string[] };

/** One session for the whole rebuild: CREATE/DROP INDEX CONCURRENTLY run outside a transaction, with its settings. */
async function withSession<T>(db: Pick<Database, 'kind' | 'sql' | 'connectionUrl'>, work: (sql: SqlRunner, concurrently: string) => Promise<T>): Promise<T> {
  // PGlite is one connection (one session) and has no other sessions to keep serving: plain CREATE INDEX.
  if (db.kind === 'pglite' || !db.connectionUrl) return work(db.sql, '');
  const client = new pg.Client({ connectionString: db.connectionUrl });
  await client.connect();
  const sql: SqlRunner = {
    exec: async (text) => void (await client.query(text)),
    query: async (text, params = []) => (await client.query(text, params)).rows,
    transaction: () => Promise.reject(new Error('the rebuild session runs no transactions')),
  };
  try {
    return await work(sql, 'CONCURRENTLY');
  } finally {
    await client.end();
  }
}

/**
 * (Re)builds one grade's partial index as `kind` (IVFFlat: lists from its rows now), then drops the grade's other
 * vector indexes and records the build. The new index is built under a temporary name beside the old one, so
 * searches keep an index throughout; a leftover of an interrupted rebuild is dropped first.
 */
export async function rebuildVectorIndex(options: { db: Pick<Database, 'kind' | 'sql' | 'connectionUrl'>; grade: unknown; kind: unknown }): Promise<RebuildResult> {
  const { db } = options;
  const grade = parseGrade(options.grade);
  const kind = parseKind(options.kind);
  return withSession(db, async (sql, concurrently) => {
    await sql.exec(`SET maintenance_work_mem = '${MAINTENANCE_WORK_MEM}'`);
    const [counted] = await sql.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM image_embedding WHERE dr_grade = ${grade}`);
    const rows = Number(counted?.rows ?? 0);
    const lists = kind === 'ivfflat' ? ivfflatListsFor(rows) : null;
    const name = `image_embedding_${kind}_grade_${grade}`;
    const building = `${name}_rebuild`;
    await sql.exec(`DROP INDEX ${concurrently} IF EXISTS ${building}`);
    const started = performance.now();
    const method = kind === 'ivfflat' ? `ivfflat ("embedding" vector_cosine_ops) WITH (lists = ${lists})` : 'hnsw ("embedding" vector_cosine_ops)';
    await sql.exec(`CREATE INDEX ${concurrently} ${building} ON image_embedding USING ${method} WHERE dr_grade = ${grade}`);
    const seconds = (performance.now() - started) / 1000;
    const others = (await vectorIndexes(sql)).filter((row) => gradeOfPredicate(row.predicate) === grade && row.name !== building);
    for (const other of others) await sql.exec(`DROP INDEX ${concurrently} IF EXISTS ${other.name}`);
    await sql.exec(`ALTER INDEX ${building} RENAME TO ${name}`);
    await sql.query(
      `INSERT INTO vector_index_build (dr_grade, kind, lists, rows_at_build, built_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (dr_grade) DO UPDATE SET kind = EXCLUDED.kind, lists = EXCLUDED.lists, rows_at_build = EXCLUDED.rows_at_build, built_at = EXCLUDED.built_at`,
      [grade, kind, lists, rows],
    );
    // The planner's row estimates for the partial predicate, so it costs the new index right from the next query.
    await sql.exec('ANALYZE image_embedding');
    return { grade, kind, name, lists, rows, seconds: Number(seconds.toFixed(1)), megabytes: await indexMegabytes(sql, name), dropped: others.map((other) => other.name) };
  });
}

// ---- The whole-case-base index: one IVFFlat over every row, for searches without a grade filter.
//
// Without a grade filter the per-grade indexes are scanned one after the other and their top k merged: with IVFFlat
// each grade reads probes 10 of its lists, so the five together read five times the rows one index over everything
// would (at 1M cases 18.7 ms database time p50 against 7.5 for the HNSW graphs, bench/README.md). One index over all
// rows reads 10 of its lists. It indexes the embedding in half precision (`embedding::halfvec(D)`, pgvector's
// halfvec_cosine_ops: half the size) and searches rank its candidates again in full precision, and its expression
// is what keeps the planner from taking it for a grade-filtered search (which orders by the full-precision
// distance, which only the per-grade indexes serve): at 1M cases the planner preferred a plain global index to the
// grade-0 and grade-2 graphs. Lists are rows / 500 (twice pgvector's guidance: measured at 1M, probes 10 of 2,000
// lists gave recall@10 1.000 at 1.8 ms p50 / 6.0 ms p95 database time; 1,000 lists 3.6 / 9.8 ms), so the lists at
// build say the rows the index was built for, and `status` needs no record of its own.

/** Rows per list of the whole-case-base index. */
export const WHOLE_INDEX_ROWS_PER_LIST = 500;
const WHOLE_INDEX_MAINTENANCE_WORK_MEM = '1GB';

export function wholeIndexListsFor(rows: number): number {
  return Math.max(1, Math.round(rows / WHOLE_INDEX_ROWS_PER_LIST));
}

export type WholeIndexStatus = {
  index: { name: string; lists: number | null; valid: boolean; megabytes: number } | null;
  rowsNow: number;
  recommendation: string | null;
};

export async function wholeIndexStatus({ db }: { db: Pick<Database, 'sql'> }): Promise<WholeIndexStatus> {
  const [indexes, [counted]] = await Promise.all([vectorIndexes(db.sql), db.sql.query<{ rows: number }>('SELECT count(*)::int AS rows FROM image_embedding')]);
  const row = indexes.find((one) => one.name === WHOLE_INDEX_NAME);
  const rowsNow = Number(counted?.rows ?? 0);
  if (!row) {
    return { index: null, rowsNow, recommendation: rowsNow >= IVFFLAT_ADVISED_FROM_ROWS ? `no whole-case-base index over ${rowsNow} rows (>= ${IVFFLAT_ADVISED_FROM_ROWS}): rebuild recommended` : null };
  }
  const index = toGradeIndex(row);
  const builtFor = (index.lists ?? 1) * WHOLE_INDEX_ROWS_PER_LIST;
  const recommendation = rowsNow > 2 * builtFor ? `rows grew to ${rowsNow}, more than twice the ${builtFor} its ${index.lists} lists were built for: rebuild recommended` : null;
  return { index: { name: index.name, lists: index.lists, valid: index.valid, megabytes: index.megabytes }, rowsNow, recommendation };
}

export type WholeRebuildResult = { name: string; lists: number; rows: number; dimensions: number; seconds: number; megabytes: number };

/** (Re)builds the whole-case-base index (IVFFlat over every row, half precision), beside the old one, then swaps. */
export async function rebuildWholeIndex(options: { db: Pick<Database, 'kind' | 'sql' | 'connectionUrl'> }): Promise<WholeRebuildResult> {
  return withSession(options.db, async (sql, concurrently) => {
    // k-means over 50 samples per list: at 1M rows (2,000 lists) pgvector asked for 807 MB.
    await sql.exec(`SET maintenance_work_mem = '${WHOLE_INDEX_MAINTENANCE_WORK_MEM}'`);
    const [counted] = await sql.query<{ rows: number }>('SELECT count(*)::int AS rows FROM image_embedding');
    const rows = Number(counted?.rows ?? 0);
    // The column's declared dimensions (vector(D)): the index expression casts to halfvec of the same.
    const [typed] = await sql.query<{ dimensions: number }>(
      "SELECT atttypmod AS dimensions FROM pg_attribute WHERE attrelid = 'image_embedding'::regclass AND attname = 'embedding'",
    );
    const dimensions = Number(typed?.dimensions ?? -1);
    if (!(dimensions > 0)) throw new AppError('BAD_USER_INPUT', 'image_embedding.embedding has no declared dimensions: the whole-case-base index needs vector(D)');
    const lists = wholeIndexListsFor(rows);
    const building = `${WHOLE_INDEX_NAME}_rebuild`;
    await sql.exec(`DROP INDEX ${concurrently} IF EXISTS ${building}`);
    const started = performance.now();
    await sql.exec(`CREATE INDEX ${concurrently} ${building} ON image_embedding USING ivfflat ((embedding::halfvec(${dimensions})) halfvec_cosine_ops) WITH (lists = ${lists})`);
    const seconds = (performance.now() - started) / 1000;
    await sql.exec(`DROP INDEX ${concurrently} IF EXISTS ${WHOLE_INDEX_NAME}`);
    await sql.exec(`ALTER INDEX ${building} RENAME TO ${WHOLE_INDEX_NAME}`);
    await sql.exec('ANALYZE image_embedding');
    return { name: WHOLE_INDEX_NAME, lists, rows, dimensions, seconds: Number(seconds.toFixed(1)), megabytes: await indexMegabytes(sql, WHOLE_INDEX_NAME) };
  });
}

/** Drops the whole-case-base index (searches without a grade filter go back to merging the per-grade indexes). */
export async function dropWholeIndex(options: { db: Pick<Database, 'kind' | 'sql' | 'connectionUrl'> }): Promise<boolean> {
  return withSession(options.db, async (sql, concurrently) => {
    const existed = (await vectorIndexes(sql)).some((one) => one.name === WHOLE_INDEX_NAME);
    await sql.exec(`DROP INDEX ${concurrently} IF EXISTS ${WHOLE_INDEX_NAME}`);
    return existed;
  });
}
