// Similar-case search over shards, for data beyond one node (docs/SCALING.md, "100 million photographs").
//
// The primary keeps every row, as on one node. What a search reads of a photograph (its embedding of one model
// version and the columns the filters test) is also kept, as case_projection, on N shard databases, hashed by
// patient: on the primary, search_shards.case_projection is PARTITION BY HASH (patient_id) over postgres_fdw
// foreign partitions, one a shard (the declarative partitioning of scripts/cluster/shard.sh), so a patient's
// photographs sit on one shard and ad-hoc SQL on the primary sees the whole projection.
//
// Kept by an outbox, so no write path has to know about shards: migration 0012's triggers enqueue a photograph's id
// in the transaction of every write that changes what a search reads of it (ingest, re-embedding, a grade
// correction of the CBR revise step, an erasure, a patient's or visit's or treatment's change), and the replay
// (replayProjection: the API runs it in the background, `npm run shards -- replay` once) re-projects the queued
// photographs from the primary's current rows in one transaction of the primary: delete them from the partitioned
// table, insert what the primary holds now (nothing, for an erased one), delete the outbox rows it read.
// postgres_fdw commits the shards' transactions just before the primary's, so a replay that fails anywhere leaves
// its outbox rows behind and the next replay, which reads the primary again, writes the same rows: idempotent.
//
// A search (the approximate path; EXACT stays on the primary) reads the query embedding and the queued ids from the
// primary (or the replica the search was routed to) in one statement, then at once asks every shard for its top k
// under the filters, leaving the queued photographs out, and ranks the queued ones on the primary exactly; the
// k best of the merge are the answer. So a photograph written a moment ago is searched as it is now, before any
// replay: the clinician who saved a case finds it. With more queued photographs than MAX_PENDING_MERGED (a
// backfill, replay stopped), or when a shard fails, the primary answers alone, as on one node (logged, counted).
import pg from 'pg';
import pgvector from 'pgvector';
import { AppError } from '../errors.js';
import { queryRows } from '../db/driver-rows.js';
import { gradeFilteredPoolSize, type Database } from '../db/database.js';
import type { SqlRunner } from '../db/sql-runner.js';
import { Prisma, type PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import {
  APPROXIMATE_SEARCH_TUNING,
  INDEXED_GRADES,
  checkedGrade,
  coversEveryGrade,
  exactSearchSql,
  searchPrimaryApproximately,
  vectorSessionOptions,
  type ShardedSearcher,
  type SimilarImageHit,
  type SimilarImageSearch,
} from './similar-images.js';

/** The schema of the primary that holds the partitioned table and its foreign partitions. */
export const SHARD_SCHEMA = 'search_shards';

/** Queued photographs a search ranks on the primary beside the shards' answer; beyond this the primary answers. */
export const MAX_PENDING_MERGED = 1000;

/** Outbox rows one replay transaction takes. */
export const REPLAY_BATCH = 500;

/** pg_try_advisory_xact_lock key of the replay: one replay at a time over every API process of the primary. */
const REPLAY_LOCK = 7318002;

/** The projection's columns; the same on the shards and on the primary's partitioned table. */
const COLUMNS = `
  image_id uuid NOT NULL,
  model_version text NOT NULL,
  patient_id uuid NOT NULL,
  dr_grade integer,
  eye text NOT NULL,
  sex text NOT NULL,
  age_at_visit integer,
  treatment_types text[] NOT NULL,
  content_hash text NOT NULL,
  embedding vector(128) NOT NULL`;

/**
 * One shard's table and indexes: the primary key leads with the partition key; an index on image_id for the
 * replay's deletes (which do not know the patient of an erased photograph); one HNSW graph per reference grade
 * and one for the ungraded, as migration 0007 builds on the primary, so a grade filter walks its own graph.
 */
export function shardTableSql(): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS case_projection (${COLUMNS},
  PRIMARY KEY (patient_id, image_id, model_version))`,
    'CREATE INDEX IF NOT EXISTS case_projection_image_id_idx ON case_projection (image_id)',
    ...INDEXED_GRADES.map((grade) => `CREATE INDEX IF NOT EXISTS case_projection_hnsw_grade_${grade} ON case_projection USING hnsw (embedding vector_cosine_ops) WHERE dr_grade = ${grade}`),
    'CREATE INDEX IF NOT EXISTS case_projection_hnsw_ungraded ON case_projection USING hnsw (embedding vector_cosine_ops) WHERE dr_grade IS NULL',
  ];
}

/** host, port, database, user and password of a postgresql:// URL, refusing anything else. */
export function parseShardUrl(text: string): { host: string; port: string; dbname: string; user: string; password: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AppError('BAD_USER_INPUT', `shard URL ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') throw new AppError('BAD_USER_INPUT', `shard URL ${url.host}${url.pathname}: expected postgresql://`);
  const dbname = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!url.hostname || !dbname) throw new AppError('BAD_USER_INPUT', `shard URL ${url.host}${url.pathname}: needs a host and a database`);
  return { host: url.hostname, port: url.port || '5432', dbname, user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

/** A URL as logs and errors may show it: no password. */
export function shardName(text: string): string {
  const { host, port, dbname } = parseShardUrl(text);
  return `${host}:${port}/${dbname}`;
}

const quoteLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

export type ShardAttachment = { enabled: boolean; shards: number | null; servers: string[] };

/** What the primary says of the shards: the state row and the foreign partitions' servers (host:port/db), in the
 *  order of their hash remainders (the order attach was given them). */
export async function readShardAttachment(sql: SqlRunner): Promise<ShardAttachment> {
  const [state] = await sql.query<{ enabled: boolean; shards: number | null }>('SELECT enabled, shards FROM search_projection_state WHERE id');
  const servers = await sql.query<{ options: string[] }>(`
    SELECT s.srvoptions AS options
    FROM pg_inherits i
    JOIN pg_class parent ON parent.oid = i.inhparent
    JOIN pg_namespace n ON n.oid = parent.relnamespace
    JOIN pg_foreign_table ft ON ft.ftrelid = i.inhrelid
    JOIN pg_foreign_server s ON s.oid = ft.ftserver
    WHERE n.nspname = '${SHARD_SCHEMA}' AND parent.relname = 'case_projection'
    ORDER BY (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\\d+)'))[1]::int FROM pg_class c WHERE c.oid = i.inhrelid)`);
  const option = (options: string[], name: string) => options.find((one) => one.startsWith(`${name}=`))?.slice(name.length + 1) ?? '';
  return {
    enabled: state?.enabled === true,
    shards: state?.shards ?? null,
    servers: servers.map(({ options }) => `${option(options, 'host')}:${option(options, 'port') || '5432'}/${option(options, 'dbname')}`),
  };
}

/** Fails unless the primary's projection is on and over exactly these shards, in this order. */
export async function assertShardsAttached(sql: SqlRunner, shardUrls: string[]): Promise<void> {
  const attachment = await readShardAttachment(sql);
  const wanted = shardUrls.map(shardName);
  if (!attachment.enabled || attachment.servers.join(',') !== wanted.join(',')) {
    throw new AppError(
      'CONFLICT',
      `the database's search projection is ${attachment.enabled ? `over ${attachment.servers.join(', ')}` : 'not attached to shards'}, but SEARCH_SHARD_URLS names ${wanted.join(', ')}: run \`npm run shards -- attach\` with the same URLs first`,
    );
  }
}

export type AttachResult = { shards: string[]; alreadyAttached: boolean; queued: number };

/**
 * Attaches the shards to the primary, once: creates each shard's table and indexes (emptied, since a shard not yet
 * attached holds nothing this primary wrote), then in one transaction of the primary the foreign servers, user
 * mappings and the partitioned table, turns the projection on and queues every embedded photograph (the
 * backfill): a write that commits after this transaction is queued by the triggers, one before it by the backfill.
 * Run the replay afterwards (`npm run shards -- attach` does). Attaching again with the same shards changes nothing;
 * other shards are a CONFLICT (moving rows between shards is not built).
 * Needs, on the primary, the postgres_fdw extension and USAGE on it for this role; on each shard, the vector
 * extension (a superuser's steps, as for pgvector on the primary).
 */
export async function attachShards(db: Pick<Database, 'sql' | 'kind'>, shardUrls: string[]): Promise<AttachResult> {
  if (db.kind !== 'postgres') throw new AppError('BAD_USER_INPUT', 'shards are for PostgreSQL: set DATABASE_URL to the primary');
  if (shardUrls.length === 0) throw new AppError('BAD_USER_INPUT', 'name at least one shard (--shard URL, or SEARCH_SHARD_URLS)');
  const names = shardUrls.map(shardName);
  if (new Set(names).size !== names.length) throw new AppError('BAD_USER_INPUT', `a shard is named twice: ${names.join(', ')}`);
  const attachment = await readShardAttachment(db.sql);
  if (attachment.enabled) {
    if (attachment.servers.join(',') === names.join(',')) return { shards: names, alreadyAttached: true, queued: 0 };
    throw new AppError('CONFLICT', `the search projection is already over ${attachment.servers.join(', ')}; moving it to ${names.join(', ')} is not supported`);
  }
  const [fdw] = await db.sql.query<{ usable: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_foreign_data_wrapper WHERE fdwname = 'postgres_fdw') AND has_foreign_data_wrapper_privilege('postgres_fdw', 'USAGE') AS usable`);
  if (!fdw?.usable) throw new AppError('BAD_USER_INPUT', 'the primary has no usable postgres_fdw: as a superuser, CREATE EXTENSION postgres_fdw and GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw to this role');
  for (const url of shardUrls) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      const { rows } = await client.query<{ found: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS found`);
      if (!rows[0]?.found) throw new AppError('BAD_USER_INPUT', `shard ${shardName(url)} has no vector extension: CREATE EXTENSION vector there as a superuser`);
      for (const statement of shardTableSql()) await client.query(statement);
      await client.query('TRUNCATE case_projection');
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw new AppError('SERVICE_UNAVAILABLE', `shard ${shardName(url)}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      await client.end().catch(() => {});
    }
  }
  const queued = await db.sql.transaction(async (tx) => {
    await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${SHARD_SCHEMA}`);
    await tx.exec(`DROP TABLE IF EXISTS ${SHARD_SCHEMA}.case_projection`);
    await tx.exec(`CREATE TABLE ${SHARD_SCHEMA}.case_projection (${COLUMNS}) PARTITION BY HASH (patient_id)`);
    for (const [index, url] of shardUrls.entries()) {
      const { host, port, dbname, user, password } = parseShardUrl(url);
      const server = `fundus_shard_${index}`;
      // extensions 'vector': <=> and the ORDER BY may ship to the shard; async_capable: the shards scan at once.
      const serverOptions = `host ${quoteLiteral(host)}, port ${quoteLiteral(port)}, dbname ${quoteLiteral(dbname)}, extensions 'vector', async_capable 'true', batch_size '500', fetch_size '500'`;
      await tx.exec(`DROP SERVER IF EXISTS ${server} CASCADE`);
      await tx.exec(`CREATE SERVER ${server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (${serverOptions})`);
      await tx.exec(`CREATE USER MAPPING FOR CURRENT_USER SERVER ${server} OPTIONS (user ${quoteLiteral(user)}, password ${quoteLiteral(password)})`);
      await tx.exec(`CREATE FOREIGN TABLE ${SHARD_SCHEMA}.case_projection_${index} PARTITION OF ${SHARD_SCHEMA}.case_projection
        FOR VALUES WITH (MODULUS ${shardUrls.length}, REMAINDER ${index}) SERVER ${server} OPTIONS (schema_name 'public', table_name 'case_projection')`);
    }
    await tx.query('UPDATE search_projection_state SET enabled = true, shards = $1, enabled_at = now() WHERE id', [shardUrls.length]);
    const [row] = await tx.query<{ queued: number }>(`
      WITH queued AS (INSERT INTO search_projection_outbox (image_id) SELECT DISTINCT image_id FROM image_embedding RETURNING 1)
      SELECT count(*)::int AS queued FROM queued`);
    return row?.queued ?? 0;
  });
  return { shards: names, alreadyAttached: false, queued };
}

/**
 * What the primary holds now for the given photographs, as projection rows: one per embedding (model version);
 * none for a photograph erased or without an embedding. The filters' columns as the primary's search computes
 * them (similar-images.ts filterClauses): sex; age at the visit from the birth year (null without one, so no age
 * filter matches); the patient's treatment types on this eye (or on both, or unspecified).
 */
const PROJECTION_SELECT = `
  SELECT e.image_id, e.model_version, fi.patient_id, e.dr_grade, fi.eye::text, p.sex::text,
         EXTRACT(YEAR FROM v.visit_date)::int - p.birth_year,
         ARRAY(SELECT DISTINCT t.type::text FROM treatment t
               WHERE t.patient_id = fi.patient_id AND (t.eye::text = fi.eye::text OR t.eye IN ('BOTH', 'UNSPECIFIED'))
               ORDER BY 1),
         fi.content_hash, e.embedding
  FROM image_embedding e
  JOIN fundus_image fi ON fi.id = e.image_id
  JOIN patient p ON p.id = fi.patient_id
  JOIN visit v ON v.id = fi.visit_id
  WHERE e.image_id = ANY($1::uuid[])`;

export type ReplayResult = { outboxRows: number; images: number; projected: number; locked: boolean };

/**
 * One replay: up to `batch` outbox rows, oldest first, in one transaction of the primary (see the head of this
 * file). `locked` false: another process is replaying now, and nothing was done here. Outbox rows are deleted by
 * id, never by range: a write whose row has a lower id but commits after this read keeps its row.
 */
export async function replayProjection(sql: SqlRunner, batch = REPLAY_BATCH): Promise<ReplayResult> {
  return sql.transaction(async (tx) => {
    const [lock] = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [REPLAY_LOCK]);
    if (!lock?.locked) return { outboxRows: 0, images: 0, projected: 0, locked: false };
    const rows = await tx.query<{ id: string; image_id: string }>('SELECT id::text AS id, image_id::text AS image_id FROM search_projection_outbox ORDER BY id LIMIT $1', [batch]);
    if (rows.length === 0) return { outboxRows: 0, images: 0, projected: 0, locked: true };
    const images = [...new Set(rows.map((row) => row.image_id))];
    await tx.query(`DELETE FROM ${SHARD_SCHEMA}.case_projection WHERE image_id = ANY($1::uuid[])`, [images]);
    const inserted = await tx.query<{ image_id: string }>(`
      INSERT INTO ${SHARD_SCHEMA}.case_projection (image_id, model_version, patient_id, dr_grade, eye, sex, age_at_visit, treatment_types, content_hash, embedding)
      ${PROJECTION_SELECT}
      RETURNING image_id`, [images]);
    await tx.query('DELETE FROM search_projection_outbox WHERE id = ANY($1::bigint[])', [rows.map((row) => row.id)]);
    return { outboxRows: rows.length, images: images.length, projected: inserted.length, locked: true };
  });
}

/** Replays until the outbox is empty (or another process holds the replay); returns the totals. */
export async function replayAll(sql: SqlRunner, onBatch?: (result: ReplayResult) => void): Promise<ReplayResult> {
  const total: ReplayResult = { outboxRows: 0, images: 0, projected: 0, locked: true };
  for (;;) {
    const result = await replayProjection(sql);
    onBatch?.(result);
    total.outboxRows += result.outboxRows;
    total.images += result.images;
    total.projected += result.projected;
    if (!result.locked) return { ...total, locked: false };
    if (result.outboxRows < REPLAY_BATCH) return total;
  }
}

export type ShardStatus = { shard: string; rows: number | null; problem: string | null };

/** Outbox depth and, per shard, its projection rows (or why it could not be read). */
export async function shardStatus(sql: SqlRunner, shardUrls: string[]): Promise<{ attachment: ShardAttachment; queued: number; oldestQueuedSeconds: number | null; shards: ShardStatus[] }> {
  const attachment = await readShardAttachment(sql);
  const [outbox] = await sql.query<{ queued: number; oldest: number | null }>('SELECT count(*)::int AS queued, EXTRACT(EPOCH FROM now() - min(enqueued_at))::float8 AS oldest FROM search_projection_outbox');
  const shards = await Promise.all(shardUrls.map(async (url): Promise<ShardStatus> => {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      const { rows } = await client.query<{ rows: number }>('SELECT count(*)::int AS rows FROM case_projection');
      return { shard: shardName(url), rows: rows[0]?.rows ?? 0, problem: null };
    } catch (error) {
      // 42P01: the shard answers but has no projection table: nothing was attached to it yet.
      const problem = (error as { code?: string }).code === '42P01' ? 'no case_projection table (not attached)' : `unreachable: ${error instanceof Error ? error.message : String(error)}`;
      return { shard: shardName(url), rows: null, problem };
    } finally {
      await client.end().catch(() => {});
    }
  }));
  return { attachment, queued: outbox?.queued ?? 0, oldestQueuedSeconds: outbox?.oldest === null || outbox?.oldest === undefined ? null : Number(outbox.oldest), shards };
}

/** A statement with positional parameters, built up clause by clause. */
class Statement {
  readonly values: unknown[] = [];
  param(value: unknown, cast = ''): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }
}

/**
 * One shard's statement: the top k of each searched grade's graph under the filters, the queued photographs left
 * out, merged and ranked (the primary's approximateSearchSql over the projection's own columns).
 */
export function shardSearchStatement(search: SimilarImageSearch, queryVector: string, pending: string[]): { text: string; values: unknown[] } {
  const statement = new Statement();
  const query = statement.param(queryVector, '::vector');
  const { filters } = search;
  const clauses = [`model_version = ${statement.param(search.modelVersion)}`];
  if ('imageId' in search.query) clauses.push(`image_id <> ${statement.param(search.query.imageId, '::uuid')}`);
  else clauses.push(`content_hash <> ${statement.param(search.query.contentHash)}`);
  if (search.excludePatientId) clauses.push(`patient_id <> ${statement.param(search.excludePatientId, '::uuid')}`);
  if (filters.eye) clauses.push(`eye = ${statement.param(filters.eye)}`);
  if (filters.sex) clauses.push(`sex = ${statement.param(filters.sex)}`);
  if (filters.ageMin !== null) clauses.push(`age_at_visit >= ${statement.param(filters.ageMin, '::int')}`);
  if (filters.ageMax !== null) clauses.push(`age_at_visit <= ${statement.param(filters.ageMax, '::int')}`);
  if (filters.treatmentTypes.length > 0) clauses.push(`treatment_types && ${statement.param(filters.treatmentTypes, '::text[]')}`);
  if (pending.length > 0) clauses.push(`image_id <> ALL(${statement.param(pending, '::uuid[]')})`);
  const k = statement.param(search.k, '::int');
  const grades: (number | null)[] = filters.drGrades.length > 0 ? filters.drGrades : [...INDEXED_GRADES, null];
  const branches = grades.map((grade) => {
    // A literal grade: the planner proves a partial index's predicate only from a constant.
    const gradeClause = grade === null ? 'dr_grade IS NULL' : `dr_grade = ${checkedGrade(grade)}`;
    return `(SELECT image_id, dr_grade, embedding <=> ${query} AS distance FROM case_projection
      WHERE ${gradeClause} AND ${clauses.join(' AND ')} ORDER BY embedding <=> ${query} LIMIT ${k})`;
  });
  return {
    text: `SELECT image_id::text AS image_id, dr_grade AS grade, distance::float8 AS distance
      FROM (${branches.join(' UNION ALL ')}) candidates ORDER BY distance, image_id LIMIT ${k}`,
    values: statement.values,
  };
}

const SERIAL = '-c max_parallel_workers_per_gather=0';

type ShardPools = { name: string; pool: pg.Pool; gradeFiltered: pg.Pool };

export type ShardSearchStats = {
  /** Searches the shards answered (with the queued photographs ranked on the primary beside them). */
  shardSearches: number;
  /** Of those, searches that ranked queued photographs on the primary. */
  withQueued: number;
  /** Searches the primary answered alone: a shard failed, or more than MAX_PENDING_MERGED were queued. */
  primaryFallbacks: number;
};

export type ShardSearch = ShardedSearcher & {
  shards: string[];
  stats(): ShardSearchStats;
  close(): Promise<void>;
};

/**
 * Pools for the shards' searches (two a shard: the session settings of the approximate path, and the
 * grade-filtered ef_search for grade-filtered walks, as db/database.ts opens on the primary) and the searcher
 * that fans out over them.
 */
export function openShardSearch({ shardUrls, poolSize, logger }: { shardUrls: string[]; poolSize: number; logger: Logger }): ShardSearch {
  const shards: ShardPools[] = shardUrls.map((url) => {
    // A dead shard must fail fast (the primary then answers), not hang the request. No parallel query: a search's
    // sequential scan of a small grade as 3 processes a shard, every shard at once, overran the cores (bench/README.md,
    // "The API's own fan-out").
    const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 2000, options: `${vectorSessionOptions()} ${SERIAL}` });
    const gradeFiltered = new pg.Pool({ connectionString: url, max: gradeFilteredPoolSize(poolSize), connectionTimeoutMillis: 2000, options: `${vectorSessionOptions(APPROXIMATE_SEARCH_TUNING.efSearchGradeFiltered)} ${SERIAL}` });
    // An idle connection ended by the server emits 'error' on its pool; the pool drops it and opens another.
    pool.on('error', () => {});
    gradeFiltered.on('error', () => {});
    return { name: shardName(url), pool, gradeFiltered };
  });
  const stats: ShardSearchStats = { shardSearches: 0, withQueued: 0, primaryFallbacks: 0 };

  async function search(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
    // The query embedding (a stored photograph's) and the queued ids, in one statement on the search's database.
    const storedQuery = 'imageId' in search.query ? Prisma.sql`(SELECT embedding::text FROM image_embedding WHERE image_id = ${search.query.imageId}::uuid AND model_version = ${search.modelVersion})` : Prisma.sql`NULL::text`;
    const [head] = await queryRows<{ embedding: string | null; pending: string[] }>(prisma, Prisma.sql`
      SELECT ${storedQuery} AS embedding,
             ARRAY(SELECT DISTINCT image_id::text FROM search_projection_outbox LIMIT ${MAX_PENDING_MERGED + 1}) AS pending`);
    const pending = head?.pending ?? [];
    if (pending.length > MAX_PENDING_MERGED) {
      stats.primaryFallbacks += 1;
      logger.debug('more photographs queued for the shards than a search merges: the primary answers', { queued: pending.length });
      return searchPrimaryApproximately(prisma, search);
    }
    let queryVector: string;
    if ('imageId' in search.query) {
      if (!head?.embedding) return [];
      queryVector = head.embedding;
    } else {
      queryVector = pgvector.toSql(Array.from(search.query.vector));
    }
    const statement = shardSearchStatement(search, queryVector, pending);
    const gradeFilteredSearch = !coversEveryGrade(search);
    try {
      const [queued, ...perShard] = await Promise.all([
        pending.length > 0 ? queryRows<{ image_id: string; similarity: number; grade: number | null }>(prisma, exactSearchSql(search, pending)) : Promise.resolve([]),
        ...shards.map((shard) => (gradeFilteredSearch ? shard.gradeFiltered : shard.pool).query<{ image_id: string; grade: number | null; distance: number }>(statement)),
      ]);
      stats.shardSearches += 1;
      if (pending.length > 0) stats.withQueued += 1;
      const candidates = [
        ...queued.map((row) => ({ imageId: row.image_id, distance: 1 - Number(row.similarity), grade: row.grade === null ? null : Number(row.grade) })),
        ...perShard.flatMap((result) => result.rows.map((row) => ({ imageId: row.image_id, distance: Number(row.distance), grade: row.grade === null ? null : Number(row.grade) }))),
      ];
      candidates.sort((a, b) => a.distance - b.distance || (a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0));
      return candidates.slice(0, search.k).map((hit) => ({ imageId: hit.imageId, similarity: 1 - hit.distance, grade: hit.grade }));
    } catch (error) {
      if (error instanceof AppError) throw error;
      stats.primaryFallbacks += 1;
      logger.warn('a shard search failed: the primary answered', { error: error instanceof Error ? error.message : String(error) });
      return searchPrimaryApproximately(prisma, search);
    }
  }

  return {
    shards: shards.map((shard) => shard.name),
    search,
    stats: () => ({ ...stats }),
    close: async () => {
      await Promise.allSettled(shards.flatMap((shard) => [shard.pool.end(), shard.gradeFiltered.end()]));
    },
  };
}

/**
 * The API's background replay: replays whenever the outbox has rows, a batch after another while batches come
 * full, then every `intervalMs`. A failed replay (a shard down) is logged and retried at the interval, up to 30 s
 * apart while it keeps failing; the outbox keeps every queued photograph meanwhile.
 */
export function startReplayLoop({ sql, intervalMs, logger }: { sql: SqlRunner; intervalMs: number; logger: Logger }): { replayNow(): Promise<ReplayResult>; stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let failures = 0;
  const schedule = (delay: number) => {
    if (!stopped) timer = setTimeout(tick, delay);
  };
  function tick() {
    running = replayProjection(sql).then(
      (result) => {
        if (failures > 0) logger.info('the shard replay works again', { failures });
        failures = 0;
        schedule(result.outboxRows >= REPLAY_BATCH ? 0 : intervalMs);
      },
      (error) => {
        failures += 1;
        if (failures === 1 || failures % 20 === 0) logger.warn('the shard replay failed; queued photographs wait in the outbox', { failures, error: error instanceof Error ? error.message : String(error) });
        schedule(Math.min(intervalMs * 2 ** Math.min(failures, 10), 30_000));
      },
    );
  }
  schedule(0);
  return {
    replayNow: () => replayAll(sql),
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running.catch(() => {});
    },
  };
}
