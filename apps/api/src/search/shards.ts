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
//
// Resharding (another number of shards, a shard moved or retired) builds the next generation of the projection
// beside the live one, since the shards hold nothing the primary does not: prepareReshard creates the next shards'
// table (case_projection_g<N>, so a shard of both generations keeps serving) and search_shards.case_projection_next
// over them; from then on every replay writes both generations; copyIntoNext fills the next one in batches, each
// under the replay's lock (so a batch and a replay never interleave: a write that commits after a batch read its
// photograph is queued, and its replay reaches both generations), first carrying over within each shard of both
// generations the rows whose patients stay on it, then the rest from the primary, into tables without HNSW graphs,
// and then builds each next shard's graphs over its rows (CREATE INDEX CONCURRENTLY, the replays writing on);
// finishReshard swaps the two partitioned tables in one transaction of the primary and counts the generation up;
// retireShards then empties the retired generation's tables through their foreign partitions (no shard keeps a
// stale copy of a patient) and drops their servers. An API process searches the shards only while the primary's
// generation is the one it opened: after a reshard it searches on the primary (logged, counted) until restarted
// with the new shards.
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

/** Photographs one batch of a reshard's copy takes. */
export const COPY_BATCH = 2000;

/** Photographs one batch of a reshard's carry-over takes (rows copied within a shard, not through the primary). */
export const CARRY_BATCH = 20_000;

/** statement_timeout of a search on a shard: a search reads a generation's shards for at most this long after it
 *  read the generation, which bounds how long a retired generation must stay whole (RETIRE_GRACE_MS). */
export const SHARD_STATEMENT_TIMEOUT_MS = 10_000;

/** How long a reshard waits after the swap before it empties the retired shards: a search routed to a replica
 *  reads the generation up to REPLICA_MAX_LAG_MS (5 s) plus one lag poll late, then its shards for at most
 *  SHARD_STATEMENT_TIMEOUT_MS; 30 s covers both with room. */
export const RETIRE_GRACE_MS = 30_000;

/** pg_try_advisory_xact_lock key of the replay: one replay at a time over every API process of the primary. The
 *  reshard's steps take it too, waiting for it (pg_advisory_xact_lock). */
const REPLAY_LOCK = 7318002;

/** The primary's partitioned tables: the live projection, the next generation's while a reshard fills it, and the
 *  generation a reshard retired until retireShards has emptied its shards. */
const LIVE = 'case_projection';
const NEXT = 'case_projection_next';
const RETIRED = 'case_projection_retired';

/** The shards' table of a generation: case_projection for the first attachment, case_projection_g<N> after. */
export function shardTableName(generation: number): string {
  if (!Number.isInteger(generation) || generation < 1) throw new Error(`no shard table for generation ${generation}`);
  return generation === 1 ? 'case_projection' : `case_projection_g${generation}`;
}
const serverName = (generation: number, index: number) => (generation === 1 ? `fundus_shard_${index}` : `fundus_shard_g${generation}_${index}`);
const partitionName = (generation: number, index: number) => (generation === 1 ? `case_projection_${index}` : `case_projection_g${generation}_${index}`);

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

/** The HNSW graphs of a shard's table: one per reference grade and one for the ungraded, as migration 0007 builds on
 *  the primary, so a grade filter walks its own graph. */
function shardGraphs(table: string): { name: string; where: string }[] {
  return [
    ...INDEXED_GRADES.map((grade) => ({ name: `${table}_hnsw_grade_${grade}`, where: `dr_grade = ${grade}` })),
    { name: `${table}_hnsw_ungraded`, where: 'dr_grade IS NULL' },
  ];
}

/**
 * One shard's table and indexes: the primary key leads with the partition key; an index on image_id for the
 * replay's deletes (which do not know the patient of an erased photograph); and, unless `graphs` is false, the HNSW
 * graphs (shardGraphs). A reshard's next generation is made without them and fills its graphs in one build each
 * after the copy (buildShardGraphs): a graph built over its rows takes a tenth of the time of one grown an insert
 * at a time, and is searched as well (bench/README.md, G8-G9).
 */
export function shardTableSql(table = shardTableName(1), { graphs = true }: { graphs?: boolean } = {}): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (${COLUMNS},
  PRIMARY KEY (patient_id, image_id, model_version))`,
    `CREATE INDEX IF NOT EXISTS ${table}_image_id_idx ON ${table} (image_id)`,
    ...(graphs ? shardGraphs(table).map(({ name, where }) => `CREATE INDEX IF NOT EXISTS ${name} ON ${table} USING hnsw (embedding vector_cosine_ops) WHERE ${where}`) : []),
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

export type ShardAttachment = {
  enabled: boolean;
  shards: number | null;
  /** 0 never attached; 1 after attach; one more after each reshard. */
  generation: number;
  /** The live generation's shards (host:port/db), in the order of their hash remainders (the order given). */
  servers: string[];
  /** A reshard under way: the generation it fills, its shards, and whether its copy has finished. */
  next: { generation: number; servers: string[]; copied: boolean } | null;
  /** Shards of a retired generation not yet emptied (retireShards). */
  retired: string[];
};

type Partition = { partition: string; server: string; shard: string };

/** The foreign partitions of one of the primary's partitioned tables, in the order of their hash remainders. */
async function partitionsOf(sql: SqlRunner, parent: string): Promise<Partition[]> {
  const rows = await sql.query<{ partition: string; server: string; options: string[] }>(`
    SELECT c.relname AS partition, s.srvname AS server, s.srvoptions AS options
    FROM pg_inherits i
    JOIN pg_class parent ON parent.oid = i.inhparent
    JOIN pg_namespace n ON n.oid = parent.relnamespace
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_foreign_table ft ON ft.ftrelid = i.inhrelid
    JOIN pg_foreign_server s ON s.oid = ft.ftserver
    WHERE n.nspname = '${SHARD_SCHEMA}' AND parent.relname = $1
    ORDER BY (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\\d+)'))[1]::int`, [parent]);
  const option = (options: string[], name: string) => options.find((one) => one.startsWith(`${name}=`))?.slice(name.length + 1) ?? '';
  return rows.map(({ partition, server, options }) => ({ partition, server, shard: `${option(options, 'host')}:${option(options, 'port') || '5432'}/${option(options, 'dbname')}` }));
}

/** What the primary says of the shards: the state row and the foreign partitions of each generation. */
export async function readShardAttachment(sql: SqlRunner): Promise<ShardAttachment> {
  const [state] = await sql.query<{ enabled: boolean; shards: number | null; generation: number; next_generation: number | null; copied: boolean }>(
    'SELECT enabled, shards, generation, next_generation, next_copied_at IS NOT NULL AS copied FROM search_projection_state WHERE id',
  );
  // One after another: `sql` may be a transaction's one connection.
  const carryStarted = performance.now();
  const live = await partitionsOf(sql, LIVE);
  const next = await partitionsOf(sql, NEXT);
  const retired = await partitionsOf(sql, RETIRED);
  const nextGeneration = state?.next_generation ?? null;
  return {
    enabled: state?.enabled === true,
    shards: state?.shards ?? null,
    generation: state?.generation ?? 0,
    servers: live.map((partition) => partition.shard),
    next: nextGeneration === null ? null : { generation: nextGeneration, servers: next.map((partition) => partition.shard), copied: state?.copied === true },
    retired: retired.map((partition) => partition.shard),
  };
}

/** Fails unless the primary's projection is on and over exactly these shards, in this order; returns it. */
export async function assertShardsAttached(sql: SqlRunner, shardUrls: string[]): Promise<ShardAttachment> {
  const attachment = await readShardAttachment(sql);
  const wanted = shardUrls.map(shardName);
  if (!attachment.enabled || attachment.servers.join(',') !== wanted.join(',')) {
    throw new AppError(
      'CONFLICT',
      `the database's search projection is ${attachment.enabled ? `over ${attachment.servers.join(', ')}` : 'not attached to shards'}, but SEARCH_SHARD_URLS names ${wanted.join(', ')}: run \`npm run shards -- attach\` with the same URLs first (or set SEARCH_SHARD_URLS to the shards the database names)`,
    );
  }
  return attachment;
}

/** Checks a list of shards given to attach or reshard: PostgreSQL, at least one, none twice. */
function checkedShardNames(db: Pick<Database, 'kind'>, shardUrls: string[]): string[] {
  if (db.kind !== 'postgres') throw new AppError('BAD_USER_INPUT', 'shards are for PostgreSQL: set DATABASE_URL to the primary');
  if (shardUrls.length === 0) throw new AppError('BAD_USER_INPUT', 'name at least one shard (--shard URL, or SEARCH_SHARD_URLS)');
  const names = shardUrls.map(shardName);
  if (new Set(names).size !== names.length) throw new AppError('BAD_USER_INPUT', `a shard is named twice: ${names.join(', ')}`);
  return names;
}

async function assertForeignDataWrapper(sql: SqlRunner): Promise<void> {
  const [fdw] = await sql.query<{ usable: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_foreign_data_wrapper WHERE fdwname = 'postgres_fdw') AND has_foreign_data_wrapper_privilege('postgres_fdw', 'USAGE') AS usable`);
  if (!fdw?.usable) throw new AppError('BAD_USER_INPUT', 'the primary has no usable postgres_fdw: as a superuser, CREATE EXTENSION postgres_fdw and GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw to this role');
}

/** Runs `work` on a connection of the shard, a failure that is not a refusal as SERVICE_UNAVAILABLE naming it. */
async function onShard(url: string, work: (client: pg.Client, url: string) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    await work(client, url);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new AppError('SERVICE_UNAVAILABLE', `shard ${shardName(url)}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** On each shard: the vector extension checked, the generation's table and indexes created (if missing), and, with
 *  `truncate`, emptied. With `graphs` false the table is left without HNSW graphs, and those an earlier try left
 *  are dropped (a reshard's next table, which nothing searches before its swap). */
async function prepareShardTables(shardUrls: string[], table: string, { truncate, graphs }: { truncate: boolean; graphs: boolean }): Promise<void> {
  for (const url of shardUrls) await onShard(url, async (client) => {
    const { rows } = await client.query<{ found: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS found`);
    if (!rows[0]?.found) throw new AppError('BAD_USER_INPUT', `shard ${shardName(url)} has no vector extension: CREATE EXTENSION vector there as a superuser`);
    for (const statement of shardTableSql(table, { graphs })) await client.query(statement);
    if (!graphs) for (const { name } of shardGraphs(table)) await client.query(`DROP INDEX IF EXISTS ${name}`);
    if (truncate) await client.query(`TRUNCATE ${table}`);
  });
}

/** maintenance_work_mem of a graph build on a shard: pgvector builds in memory while the graph fits, and much more
 *  slowly on disk after (about 833 bytes a vector at m 16: 512 MB holds a grade of about 600k photographs). */
export const SHARD_GRAPH_BUILD_MEMORY = '512MB';

/**
 * Builds `table`'s HNSW graphs (shardGraphs) on every shard at once, one graph after another on each, with CREATE
 * INDEX CONCURRENTLY, so the replays that write the table meanwhile are not blocked. A graph an earlier build left
 * invalid (it failed or was cancelled) is dropped and built again; a valid one is kept. Returns the seconds taken.
 */
async function buildShardGraphs(shardUrls: string[], table: string): Promise<number> {
  const started = performance.now();
  await Promise.all(shardUrls.map((url) => onShard(url, async (client) => {
    await client.query(`SET maintenance_work_mem = '${SHARD_GRAPH_BUILD_MEMORY}'`);
    for (const { name, where } of shardGraphs(table)) {
      const { rows } = await client.query<{ valid: boolean }>('SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1 AND pg_table_is_visible(c.oid)', [name]);
      if (rows[0]?.valid === false) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
      await client.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON ${table} USING hnsw (embedding vector_cosine_ops) WHERE ${where}`);
    }
  })));
  return (performance.now() - started) / 1000;
}

/** In a transaction of the primary: `parent`, PARTITION BY HASH (patient_id) over one foreign partition a shard, the
 *  generation's servers and user mappings (replacing any of the same names). */
async function createPartitionedTable(tx: SqlRunner, parent: string, generation: number, shardUrls: string[]): Promise<void> {
  await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${SHARD_SCHEMA}`);
  await tx.exec(`DROP TABLE IF EXISTS ${SHARD_SCHEMA}.${parent}`);
  await tx.exec(`CREATE TABLE ${SHARD_SCHEMA}.${parent} (${COLUMNS}) PARTITION BY HASH (patient_id)`);
  for (const [index, url] of shardUrls.entries()) {
    const { host, port, dbname, user, password } = parseShardUrl(url);
    const server = serverName(generation, index);
    // extensions 'vector': <=> and the ORDER BY may ship to the shard; async_capable: the shards scan at once.
    const serverOptions = `host ${quoteLiteral(host)}, port ${quoteLiteral(port)}, dbname ${quoteLiteral(dbname)}, extensions 'vector', async_capable 'true', batch_size '500', fetch_size '500'`;
    await tx.exec(`DROP SERVER IF EXISTS ${server} CASCADE`);
    await tx.exec(`CREATE SERVER ${server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (${serverOptions})`);
    await tx.exec(`CREATE USER MAPPING FOR CURRENT_USER SERVER ${server} OPTIONS (user ${quoteLiteral(user)}, password ${quoteLiteral(password)})`);
    await tx.exec(`CREATE FOREIGN TABLE ${SHARD_SCHEMA}.${partitionName(generation, index)} PARTITION OF ${SHARD_SCHEMA}.${parent}
      FOR VALUES WITH (MODULUS ${shardUrls.length}, REMAINDER ${index}) SERVER ${server} OPTIONS (schema_name 'public', table_name ${quoteLiteral(shardTableName(generation))})`);
  }
}

export type AttachResult = { shards: string[]; alreadyAttached: boolean; queued: number };

/**
 * Attaches the shards to the primary, once: creates each shard's table and indexes (emptied, since a shard not yet
 * attached holds nothing this primary wrote), then in one transaction of the primary the foreign servers, user
 * mappings and the partitioned table, turns the projection on and queues every embedded photograph (the
 * backfill): a write that commits after this transaction is queued by the triggers, one before it by the backfill.
 * Run the replay afterwards (`npm run shards -- attach` does). With `graphs` false the shards' tables are made
 * without their HNSW graphs, for the backfill to write plain tables and buildAttachedGraphs to build the graphs
 * over them after it (what the CLI does; a search on the shards meanwhile scans them exactly). Attaching again with
 * the same shards changes nothing; other shards are a CONFLICT (that is a reshard: prepareReshard).
 * Needs, on the primary, the postgres_fdw extension and USAGE on it for this role; on each shard, the vector
 * extension (a superuser's steps, as for pgvector on the primary).
 */
export async function attachShards(db: Pick<Database, 'sql' | 'kind'>, shardUrls: string[], { graphs = true }: { graphs?: boolean } = {}): Promise<AttachResult> {
  const names = checkedShardNames(db, shardUrls);
  const attachment = await readShardAttachment(db.sql);
  if (attachment.enabled) {
    if (attachment.servers.join(',') === names.join(',')) return { shards: names, alreadyAttached: true, queued: 0 };
    throw new AppError('CONFLICT', `the search projection is already over ${attachment.servers.join(', ')}: to move it to ${names.join(', ')}, run \`npm run shards -- reshard\` with them`);
  }
  await assertForeignDataWrapper(db.sql);
  // Emptied: a shard not yet attached holds nothing this primary wrote.
  await prepareShardTables(shardUrls, shardTableName(1), { truncate: true, graphs });
  const queued = await db.sql.transaction(async (tx) => {
    await createPartitionedTable(tx, LIVE, 1, shardUrls);
    await tx.query('UPDATE search_projection_state SET enabled = true, shards = $1, enabled_at = now(), generation = 1, next_generation = NULL, next_copied_at = NULL WHERE id', [shardUrls.length]);
    const [row] = await tx.query<{ queued: number }>(`
      WITH queued AS (INSERT INTO search_projection_outbox (image_id) SELECT DISTINCT image_id FROM image_embedding RETURNING 1)
      SELECT count(*)::int AS queued FROM queued`);
    return row?.queued ?? 0;
  });
  return { shards: names, alreadyAttached: false, queued };
}

/** Builds the live generation's HNSW graphs on its shards (buildShardGraphs: the ones there and valid are kept, so
 *  after an attach that built them this only checks); `shardUrls` must be the attached shards. Returns seconds. */
export async function buildAttachedGraphs(sql: SqlRunner, shardUrls: string[]): Promise<number> {
  const { generation } = await assertShardsAttached(sql, shardUrls);
  return buildShardGraphs(shardUrls, shardTableName(generation));
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

/** Replaces the photographs' rows in one of the primary's partitioned tables with what the primary holds now;
 *  returns the rows written. The delete names no patient, so it reaches every partition. */
async function reproject(tx: SqlRunner, parent: string, images: string[]): Promise<number> {
  await tx.query(`DELETE FROM ${SHARD_SCHEMA}.${parent} WHERE image_id = ANY($1::uuid[])`, [images]);
  const inserted = await tx.query<{ image_id: string }>(`
    INSERT INTO ${SHARD_SCHEMA}.${parent} (image_id, model_version, patient_id, dr_grade, eye, sex, age_at_visit, treatment_types, content_hash, embedding)
    ${PROJECTION_SELECT}
    RETURNING image_id`, [images]);
  return inserted.length;
}

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
    // While a reshard fills the next generation, it gets every replay too (its copy and the replays take turns).
    const [state] = await tx.query<{ next: number | null }>('SELECT next_generation AS next FROM search_projection_state WHERE id');
    const projected = await reproject(tx, LIVE, images);
    if (state?.next != null) await reproject(tx, NEXT, images);
    await tx.query('DELETE FROM search_projection_outbox WHERE id = ANY($1::bigint[])', [rows.map((row) => row.id)]);
    return { outboxRows: rows.length, images: images.length, projected, locked: true };
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

export type ReshardPlan = { from: string[]; to: string[]; generation: number; unchanged: boolean };

/**
 * A reshard's first step: the next generation's table on each of the given shards, and, in one transaction of the
 * primary under the replay's lock, search_shards.case_projection_next over them (emptied through its partitions),
 * so that every replay from then on writes it too. Run again with the same shards (after a failed copy), it starts
 * the copy over; with other shards while one is under way, a CONFLICT (finish it, or abortReshard).
 * `unchanged`: the shards given are the live ones; nothing was done.
 */
export async function prepareReshard(db: Pick<Database, 'sql' | 'kind'>, shardUrls: string[]): Promise<ReshardPlan> {
  const names = checkedShardNames(db, shardUrls);
  const attachment = await readShardAttachment(db.sql);
  if (!attachment.enabled) throw new AppError('BAD_USER_INPUT', 'the search projection is not attached to shards: run `npm run shards -- attach` first');
  if (attachment.retired.length > 0) throw new AppError('CONFLICT', `the shards of the generation before (${attachment.retired.join(', ')}) are not emptied yet: run \`npm run shards -- retire\` first`);
  if (attachment.next && attachment.next.servers.join(',') !== names.join(',')) {
    throw new AppError('CONFLICT', `a reshard to ${attachment.next.servers.join(', ')} is under way: run it to its end with those shards, or \`npm run shards -- reshard --abort\``);
  }
  if (!attachment.next && attachment.servers.join(',') === names.join(',')) return { from: attachment.servers, to: names, generation: attachment.generation, unchanged: true };
  await assertForeignDataWrapper(db.sql);
  const generation = attachment.next?.generation ?? attachment.generation + 1;
  await prepareShardTables(shardUrls, shardTableName(generation), { truncate: false, graphs: false });
  await db.sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [REPLAY_LOCK]);
    const [state] = await tx.query<{ next: number | null }>('SELECT next_generation AS next FROM search_projection_state WHERE id');
    if ((state?.next ?? null) !== (attachment.next?.generation ?? null)) throw new AppError('CONFLICT', 'another reshard changed the projection meanwhile: run `npm run shards -- status`, then again');
    if (!attachment.next) await createPartitionedTable(tx, NEXT, generation, shardUrls);
    // Emptied under the lock: what an earlier try or an aborted reshard left there is not the primary's now.
    await tx.exec(`TRUNCATE ${SHARD_SCHEMA}.${NEXT}`);
    await tx.query('UPDATE search_projection_state SET next_generation = $1, next_copied_at = NULL WHERE id', [generation]);
  });
  return { from: attachment.servers, to: names, generation, unchanged: false };
}

export type CopyResult = {
  /** Photographs copied through the primary, and their rows (one per embedding). */
  images: number;
  projected: number;
  /** Photographs carried over within their shard (carryOnShard), and their rows; a photograph a replay wrote into
   *  the next generation first is not counted. */
  carried: number;
  carriedRows: number;
  /** The shards rows were carried over on: those of both generations whose hash agreed with the primary's. */
  carriedOn: string[];
  /** Seconds of the carry-over (its batches and the replays between them), and of the graphs' build. */
  carrySeconds: number;
  graphSeconds: number;
};

/** A shard's table whose only use is its partition key: satisfies_hash_partition on it hashes a patient id as the
 *  primary's partitioned tables do (same key type and operator class), so a shard can tell which of a generation's
 *  partitions a patient belongs to without asking the primary. */
const HASH_KEY_TABLE = 'case_projection_hash_key';

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

/** Patient ids a carry-over checks the shard's hash on, against the primary's, before trusting it. */
const HASH_PROBES = 64;

type CarryPair = { from: number; to: number; url: string; shard: string };

/**
 * The pairs of partitions, the live generation's `from` and the next one's `to`, that sit on the same shard (by
 * host:port/db), each checked: the shard must place HASH_PROBES patient ids in the next generation's partitions as
 * the primary does (same hash function and seed; a shard whose PostgreSQL hashed otherwise would be skipped, and its
 * rows copied through the primary).
 */
async function carryPairs(sql: SqlRunner, live: Partition[], shardUrls: string[], modulus: number): Promise<CarryPair[]> {
  const names = shardUrls.map(shardName);
  const candidates = live.flatMap((partition, from) => {
    const to = names.indexOf(partition.shard);
    return to < 0 ? [] : [{ from, to, url: shardUrls[to]!, shard: partition.shard }];
  });
  if (candidates.length === 0) return [];
  const probeSql = (parent: string) => `
    SELECT p.id::text AS id, r.remainder
    FROM (SELECT md5('fundus-hash-probe-' || g)::uuid AS id FROM generate_series(1, ${HASH_PROBES}) g) p
    CROSS JOIN LATERAL (SELECT r AS remainder FROM generate_series(0, ${modulus - 1}) r
                        WHERE satisfies_hash_partition('${parent}'::regclass, ${modulus}, r, p.id)) r
    ORDER BY 1`;
  const expected = JSON.stringify(await sql.query<{ id: string; remainder: number }>(probeSql(`${SHARD_SCHEMA}.${NEXT}`)));
  const agreed: CarryPair[] = [];
  for (const pair of candidates) {
    await onShard(pair.url, async (client) => {
      await client.query(`CREATE TABLE IF NOT EXISTS ${HASH_KEY_TABLE} (patient_id uuid NOT NULL) PARTITION BY HASH (patient_id)`);
      const { rows } = await client.query<{ id: string; remainder: number }>(probeSql(HASH_KEY_TABLE));
      if (JSON.stringify(rows) === expected) agreed.push(pair);
    });
  }
  return agreed;
}

/** On the primary: true for a photograph whose patient's rows a carry-over moved within a shard (its partition of
 *  the live generation and of the next are a pair on one shard). */
function carriedPredicate(pairs: CarryPair[], liveModulus: number, nextModulus: number, patient: string): string {
  if (pairs.length === 0) return 'false';
  return pairs.map(({ from, to }) => `(satisfies_hash_partition('${SHARD_SCHEMA}.${LIVE}'::regclass, ${liveModulus}, ${from}, ${patient})
      AND satisfies_hash_partition('${SHARD_SCHEMA}.${NEXT}'::regclass, ${nextModulus}, ${to}, ${patient}))`).join(' OR ');
}

const PROJECTION_COLUMNS = 'image_id, model_version, patient_id, dr_grade, eye, sex, age_at_visit, treatment_types, content_hash, embedding';

/**
 * A reshard's second step: the next generation filled, then its graphs built and the copy marked finished.
 * - Carry-over first: where a shard is in both generations, the rows it holds whose patients stay on it are copied
 *   within the shard (INSERT ... SELECT from the live generation's table, in batches of `carryBatch` photographs),
 *   never through the primary (carryPairs says which shards, having checked their hash against the primary's).
 *   The live generation holds what the primary holds except what is queued, and a queued photograph is replayed to
 *   both generations, so a carried row is the primary's, or is replaced by the replay.
 * - Then every other embedded photograph copied from the primary, in batches of `batch` photographs by id.
 * Each batch is one transaction of the primary that waits for the replay's lock (the replays run between the
 * batches). Then the next shards' HNSW graphs are built over what they hold (buildShardGraphs: the copy writes
 * tables without graphs), and the copy marked finished. `shardUrls` are the next generation's shards as
 * prepareReshard was given them (the primary knows them without their passwords). A photograph written meanwhile
 * is queued by the triggers and replayed to both generations, into the graphs as they are built. A prepare run
 * meanwhile (another operator's: it empties the next generation) changes the state row, which every batch and the
 * last step check (its row version, xmin), so this copy stops with a CONFLICT instead of marking a partial copy done.
 */
export async function copyIntoNext(
  sql: SqlRunner,
  { shardUrls, batch = COPY_BATCH, carryBatch = CARRY_BATCH, carry = true, onBatch, onGraphs }: {
    shardUrls: string[];
    batch?: number;
    carryBatch?: number;
    /** false: no carry-over, every photograph through the primary (a benchmark's comparison). */
    carry?: boolean;
    onBatch?: (done: Omit<CopyResult, 'carrySeconds' | 'graphSeconds'>) => void | Promise<unknown>;
    /** Called once the rows are copied, before the graphs are built. */
    onGraphs?: () => void | Promise<unknown>;
  },
): Promise<CopyResult> {
  const attachment = await readShardAttachment(sql);
  if (!attachment.next) throw new AppError('CONFLICT', 'no reshard is under way (it was finished or aborted meanwhile)');
  const next = attachment.next;
  const names = shardUrls.map(shardName);
  if (names.join(',') !== next.servers.join(',')) {
    throw new AppError('CONFLICT', `the reshard under way is to ${next.servers.join(', ')}, not ${names.join(', ')}: copy with its shards, or \`npm run shards -- reshard --abort\``);
  }
  const total = { images: 0, projected: 0, carried: 0, carriedRows: 0, carriedOn: [] as string[] };
  let version: string | null = null;
  // One primary transaction under the replay's lock: still the reshard this copy began (else CONFLICT), and then
  // `work` (null when the state row was only checked).
  const underLock = <T>(work: (tx: SqlRunner) => Promise<T>) => sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [REPLAY_LOCK]);
    const [state] = await tx.query<{ next: number | null; version: string }>('SELECT next_generation AS next, xmin::text AS version FROM search_projection_state WHERE id');
    if (state?.next == null) throw new AppError('CONFLICT', 'no reshard is under way (it was finished or aborted meanwhile)');
    if (state.next !== next.generation || (version !== null && state.version !== version)) {
      throw new AppError('CONFLICT', 'the reshard was prepared again meanwhile (another operator?): this copy stops; run `npm run shards -- reshard` again');
    }
    version = state.version;
    return work(tx);
  });
  // The replay's turn after each batch: the next batch would take the lock again at once, and the background
  // replays (which only try the lock) would hardly ever get it, leaving the queue to grow for the whole copy.
  const betweenBatches = async () => {
    await replayAll(sql);
    await onBatch?.({ ...total, carriedOn: [...total.carriedOn] });
  };

  const carryStarted = performance.now();
  const live = await partitionsOf(sql, LIVE);
  const pairs = carry ? await carryPairs(sql, live, shardUrls, shardUrls.length) : [];
  const [liveTable, nextTable] = [shardTableName(attachment.generation), shardTableName(next.generation)];
  for (const pair of pairs) {
    await onShard(pair.url, async (client) => {
      let after = ZERO_UUID;
      for (;;) {
        // A row a replay already wrote into the next generation is the primary's (the replay wrote both): kept.
        const { rows: [done] } = await underLock(() => client.query<{ last: string | null; images: number; rows: number }>(`
          WITH batch AS (SELECT DISTINCT image_id FROM ${liveTable} WHERE image_id > $1::uuid ORDER BY image_id LIMIT $2),
          carried AS (
            INSERT INTO ${nextTable} (${PROJECTION_COLUMNS})
            SELECT ${PROJECTION_COLUMNS} FROM ${liveTable}
            WHERE image_id IN (SELECT image_id FROM batch) AND satisfies_hash_partition('${HASH_KEY_TABLE}'::regclass, $3, $4, patient_id)
            ON CONFLICT DO NOTHING
            RETURNING image_id)
          SELECT (SELECT image_id::text FROM batch ORDER BY image_id DESC LIMIT 1) AS last,
                 (SELECT count(DISTINCT image_id)::int FROM carried) AS images, (SELECT count(*)::int FROM carried) AS rows`,
        [after, carryBatch, shardUrls.length, pair.to]));
        if (!done?.last) break;
        after = done.last;
        total.carried += done.images;
        total.carriedRows += done.rows;
        await betweenBatches();
      }
    });
    total.carriedOn.push(pair.shard);
  }
  const carrySeconds = (performance.now() - carryStarted) / 1000;

  // Through the primary: every photograph whose patient was not carried over.
  const carried = carriedPredicate(pairs, live.length, shardUrls.length, 'fi.patient_id');
  const select = pairs.length === 0
    ? 'SELECT image_id::text AS image_id FROM image_embedding WHERE image_id > $1::uuid GROUP BY image_id ORDER BY image_id LIMIT $2'
    : `SELECT e.image_id::text AS image_id FROM image_embedding e JOIN fundus_image fi ON fi.id = e.image_id
       WHERE e.image_id > $1::uuid AND NOT (${carried}) GROUP BY e.image_id ORDER BY e.image_id LIMIT $2`;
  let after = ZERO_UUID;
  for (;;) {
    const more = await underLock(async (tx) => {
      const ids = await tx.query<{ image_id: string }>(select, [after, batch]);
      if (ids.length === 0) return false;
      total.projected += await reproject(tx, NEXT, ids.map((row) => row.image_id));
      total.images += ids.length;
      after = ids[ids.length - 1]!.image_id;
      return true;
    });
    if (!more) break;
    await betweenBatches();
  }
  await onGraphs?.();
  const graphSeconds = await buildShardGraphs(shardUrls, nextTable);
  await underLock((tx) => tx.query('UPDATE search_projection_state SET next_copied_at = now() WHERE id'));
  return { ...total, carrySeconds, graphSeconds };
}

/**
 * A reshard's third step, in one transaction of the primary under the replay's lock: the next generation becomes
 * the live one and the live one is retired (search_shards.case_projection_retired), the generation counted up.
 * Refused (CONFLICT) with no reshard under way or its copy unfinished.
 */
export async function finishReshard(sql: SqlRunner): Promise<{ generation: number; shards: string[]; retired: string[] }> {
  return sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [REPLAY_LOCK]);
    const attachment = await readShardAttachment(tx);
    if (!attachment.next) throw new AppError('CONFLICT', 'no reshard is under way: nothing to finish');
    if (!attachment.next.copied) throw new AppError('CONFLICT', 'the copy into the next shards has not finished: run `npm run shards -- reshard` with the same shards again');
    if (attachment.retired.length > 0) throw new AppError('CONFLICT', `the shards of the generation before (${attachment.retired.join(', ')}) are not emptied yet: run \`npm run shards -- retire\` first`);
    await tx.exec(`ALTER TABLE ${SHARD_SCHEMA}.${LIVE} RENAME TO ${RETIRED}`);
    await tx.exec(`ALTER TABLE ${SHARD_SCHEMA}.${NEXT} RENAME TO ${LIVE}`);
    await tx.query(
      'UPDATE search_projection_state SET generation = next_generation, next_generation = NULL, next_copied_at = NULL, shards = $1, enabled_at = now() WHERE id',
      [attachment.next.servers.length],
    );
    return { generation: attachment.next.generation, shards: attachment.next.servers, retired: attachment.servers };
  });
}

export type RetireResult = { emptied: string[]; failed: { shard: string; problem: string }[]; dropped: boolean };

/** Empties the foreign partitions of `parent` one by one (postgres_fdw's TRUNCATE on each shard); the ones that fail
 *  are returned with why. */
async function emptyPartitions(sql: SqlRunner, partitions: Partition[]): Promise<Omit<RetireResult, 'dropped'>> {
  const result: Omit<RetireResult, 'dropped'> = { emptied: [], failed: [] };
  for (const { partition, shard } of partitions) {
    try {
      await sql.exec(`TRUNCATE ${SHARD_SCHEMA}.${partition}`);
      result.emptied.push(shard);
    } catch (error) {
      result.failed.push({ shard, problem: error instanceof Error ? error.message : String(error) });
    }
  }
  return result;
}

/**
 * A reshard's last step: the retired generation's tables emptied on their shards, then its partitioned table and
 * servers dropped from the primary. A shard that cannot be reached keeps its rows and the primary keeps its
 * partition (`failed`, `dropped` false): run it again once the shard is back. Nothing retired: nothing done.
 * The emptied tables stay on the shards (dropping them needs a connection of the shard's own).
 */
export async function retireShards(sql: SqlRunner): Promise<RetireResult> {
  const partitions = await partitionsOf(sql, RETIRED);
  if (partitions.length === 0) {
    await sql.exec(`DROP TABLE IF EXISTS ${SHARD_SCHEMA}.${RETIRED}`);
    return { emptied: [], failed: [], dropped: false };
  }
  const result = await emptyPartitions(sql, partitions);
  if (result.failed.length > 0) return { ...result, dropped: false };
  await sql.transaction(async (tx) => {
    await tx.exec(`DROP TABLE ${SHARD_SCHEMA}.${RETIRED}`);
    for (const { server } of partitions) await tx.exec(`DROP SERVER IF EXISTS ${server} CASCADE`);
  });
  return { ...result, dropped: true };
}

/**
 * Gives up a reshard under way: the next generation's tables emptied on their shards (as far as they answer), its
 * partitioned table and servers dropped, and the replay back to the live generation alone, in one transaction
 * under the replay's lock. The live generation is untouched. `aborted` false: none was under way.
 */
export async function abortReshard(sql: SqlRunner): Promise<{ aborted: boolean; failed: { shard: string; problem: string }[] }> {
  return sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [REPLAY_LOCK]);
    const [state] = await tx.query<{ next: number | null }>('SELECT next_generation AS next FROM search_projection_state WHERE id');
    if (state?.next == null) return { aborted: false, failed: [] };
    const partitions = await partitionsOf(tx, NEXT);
    const failed: { shard: string; problem: string }[] = [];
    for (const { partition, shard } of partitions) {
      // A savepoint each: a shard that does not answer fails its TRUNCATE, not the abort.
      await tx.exec('SAVEPOINT empty_partition');
      try {
        await tx.exec(`TRUNCATE ${SHARD_SCHEMA}.${partition}`);
        await tx.exec('RELEASE SAVEPOINT empty_partition');
      } catch (error) {
        await tx.exec('ROLLBACK TO SAVEPOINT empty_partition');
        failed.push({ shard, problem: error instanceof Error ? error.message : String(error) });
      }
    }
    await tx.exec(`DROP TABLE IF EXISTS ${SHARD_SCHEMA}.${NEXT}`);
    for (const { server } of partitions) await tx.exec(`DROP SERVER IF EXISTS ${server} CASCADE`);
    await tx.query('UPDATE search_projection_state SET next_generation = NULL, next_copied_at = NULL WHERE id');
    return { aborted: true, failed };
  });
}

export type ShardStatus = { shard: string; rows: number | null; problem: string | null };

/** Outbox depth and, per shard, its projection rows (or why it could not be read). */
export async function shardStatus(sql: SqlRunner, shardUrls: string[]): Promise<{ attachment: ShardAttachment; queued: number; oldestQueuedSeconds: number | null; shards: ShardStatus[] }> {
  const attachment = await readShardAttachment(sql);
  // A shard of the reshard under way is counted in the next generation's table; another in the live one's.
  const tableOf = (url: string) => shardTableName(attachment.next?.servers.includes(shardName(url)) ? attachment.next.generation : Math.max(attachment.generation, 1));
  const [outbox] = await sql.query<{ queued: number; oldest: number | null }>('SELECT count(*)::int AS queued, EXTRACT(EPOCH FROM now() - min(enqueued_at))::float8 AS oldest FROM search_projection_outbox');
  const shards = await Promise.all(shardUrls.map(async (url): Promise<ShardStatus> => {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      const { rows } = await client.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM ${tableOf(url)}`);
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
export function shardSearchStatement(search: SimilarImageSearch, queryVector: string, pending: string[], table = shardTableName(1)): { text: string; values: unknown[] } {
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
    return `(SELECT image_id, dr_grade, embedding <=> ${query} AS distance FROM ${table}
      WHERE ${gradeClause} AND ${clauses.join(' AND ')} ORDER BY embedding <=> ${query} LIMIT ${k})`;
  });
  return {
    text: `SELECT image_id::text AS image_id, dr_grade AS grade, distance::float8 AS distance
      FROM (${branches.join(' UNION ALL ')}) candidates ORDER BY distance, image_id LIMIT ${k}`,
    values: statement.values,
  };
}

const SERIAL = `-c max_parallel_workers_per_gather=0 -c statement_timeout=${SHARD_STATEMENT_TIMEOUT_MS}`;

type ShardPools = { name: string; pool: pg.Pool; gradeFiltered: pg.Pool };

export type ShardSearchStats = {
  /** Searches the shards answered (with the queued photographs ranked on the primary beside them). */
  shardSearches: number;
  /** Of those, searches that ranked queued photographs on the primary. */
  withQueued: number;
  /** Searches the primary answered alone: a shard failed, more than MAX_PENDING_MERGED were queued, or the
   *  projection was resharded since this process opened the shards. */
  primaryFallbacks: number;
  /** Of those, searches that found the projection resharded (restart with the new SEARCH_SHARD_URLS). */
  resharded: number;
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
export function openShardSearch({ shardUrls, generation, poolSize, logger }: { shardUrls: string[]; generation: number; poolSize: number; logger: Logger }): ShardSearch {
  const table = shardTableName(generation);
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
  const stats: ShardSearchStats = { shardSearches: 0, withQueued: 0, primaryFallbacks: 0, resharded: 0 };

  async function search(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
    // The query embedding (a stored photograph's), the projection's generation and the queued ids, in one statement
    // on the search's database.
    const storedQuery = 'imageId' in search.query ? Prisma.sql`(SELECT embedding::text FROM image_embedding WHERE image_id = ${search.query.imageId}::uuid AND model_version = ${search.modelVersion})` : Prisma.sql`NULL::text`;
    const [head] = await queryRows<{ embedding: string | null; generation: number | null; pending: string[] }>(prisma, Prisma.sql`
      SELECT ${storedQuery} AS embedding,
             (SELECT generation FROM search_projection_state WHERE id) AS generation,
             ARRAY(SELECT DISTINCT image_id::text FROM search_projection_outbox LIMIT ${MAX_PENDING_MERGED + 1}) AS pending`);
    if (head?.generation !== generation) {
      // Resharded since start-up: these shards are no longer kept (or are being emptied).
      stats.primaryFallbacks += 1;
      stats.resharded += 1;
      if (stats.resharded === 1) logger.warn('the search projection was resharded since start-up: the primary answers until this process is restarted with the new SEARCH_SHARD_URLS (npm run shards -- status)', { opened: generation, now: head?.generation ?? null });
      return searchPrimaryApproximately(prisma, search);
    }
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
    const statement = shardSearchStatement(search, queryVector, pending, table);
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
