// Every pgvector query of the application lives in this module (and its index upkeep in vector-indexes.ts).
//
// Two paths, one contract (the k most cosine-similar photographs of one model version under the filters, best
// first, never fewer than k when k rows match):
// - approximate (the default): one partial vector index per reference grade over image_embedding.dr_grade, a
//   trigger-kept copy of fundus_image.dr_grade: migration 0007's HNSW graphs, which `npm run vector-index --
//   rebuild` replaces with IVFFlat indexes whose lists are learnt from the grade's rows (vector-indexes.ts; at 1M
//   cases IVFFlat held recall@10 1.0 under a grade filter at a fraction of HNSW's cost, bench/README.md). A grade
//   has one index, so the planner has one to pick, and the statement is the same whichever kind it is. A grade
//   filter scans only its grades' indexes; no grade filter (and every grade: the reuse step's voters) takes the
//   whole-case-base index when the rebuild has made one (IVFFlat over every row in half precision, candidates
//   re-ranked in full precision: wholeIndexSearchSql), and otherwise merges the top k of every grade's index and
//   of the ungraded graph. The other filters (eye, sex, age, treatments, the excluded patient) are checked on the rows
//   the scan returns, with pgvector's iterative scans going on until k rows pass or a bound is reached (HNSW:
//   max_scan_tuples visited rows; IVFFlat: max_probes lists). If a scan still returns fewer than k, the filtered
//   set is small and the exact path answers instead. What holds is measured recall@10 against the exact path
//   (bench/README.md), not exact top-k: a shared graph under a selective WHERE lost most of it
//   (../shared/TOOLCHAIN.md).
// - exact: the filtered ORDER BY distance + 0, id LIMIT k. The `+ 0` is what keeps the planner off the vector
//   indexes: with a bare `<=>` as the first sort key, PGlite's planner (PostgreSQL 18) walked a grade's partial
//   index and sorted its output by id (an incremental sort), an approximate answer. So every matching row is
//   ranked. For evaluation, and as the small-set fallback.
import pgvector from 'pgvector';
import { queryRows } from '../db/driver-rows.js';
import { Prisma, type PrismaClient } from '../generated/prisma/client.js';
import type { Eye, Sex, TreatmentType } from '../generated/prisma/enums.js';

export type SimilarImageFilters = {
  drGrades: number[];
  eye: Eye | null;
  sex: Sex | null;
  ageMin: number | null;
  ageMax: number | null;
  treatmentTypes: TreatmentType[];
};

export type SearchMode = 'APPROXIMATE' | 'EXACT';

export type SimilarImageSearch = {
  modelVersion: string;
  /** A stored photograph's embedding of modelVersion, or a vector computed from an upload by that model. */
  query: { imageId: string } | { vector: ArrayLike<number>; contentHash: string };
  k: number;
  filters: SimilarImageFilters;
  /** Leave out every photograph of this patient (the query's own, usually). */
  excludePatientId: string | null;
  /** APPROXIMATE unless asked: EXACT ranks every matching row (evaluation, recall measurement). */
  mode?: SearchMode;
};

/** `grade`: the hit's reference grade (fundus_image.dr_grade), null while ungraded; the reuse step votes with it. */
export type SimilarImageHit = { imageId: string; similarity: number; grade: number | null };

/**
 * pgvector settings of the approximate path, chosen by bench/search-filtered.mjs at 100k and 1M cases
 * (bench/README.md). HNSW: without a grade filter a query's neighbours sit in its own grade's graph, where the walk
 * starts out towards them: ef_search 100 gave recall@10 1.0 at 1M. Under a grade filter most queries come from
 * another grade's region of the space and the walk of the filtered graph can end in a wrong cluster: at 1M,
 * ef_search 100 gave 0.73-0.92 per grade, 400 gave 0.94-1.0 and 800 0.99-1.0, so grade-filtered searches of a
 * grade that still has its HNSW graph walk with 800 (SET LOCAL). IVFFlat compares the query with every list centre
 * first, so a query from another region is not misled: probes 10 held recall@10 1.0 at 1M for every grade filter,
 * with and without one, and needs no per-search setting.
 */
export type ApproximateSearchTuning = {
  /** Candidates each graph's walk keeps without a grade filter (hnsw.ef_search, the session's setting). */
  efSearch: number;
  /** hnsw.ef_search under a grade filter, for grades with an HNSW graph: the session setting of the grade-filtered
   *  pool (registerGradeFilteredClient), or SET LOCAL in the search's transaction where there is none. */
  efSearchGradeFiltered: number;
  /** Rows one graph's iterative scan may visit before it gives up (hnsw.max_scan_tuples). */
  maxScanTuples: number;
  /** Lists an IVFFlat scan reads first (ivfflat.probes, the session's setting). */
  probes: number;
  /** Lists an IVFFlat iterative scan may read in all before it gives up (ivfflat.max_probes). */
  maxProbes: number;
};
export const APPROXIMATE_SEARCH_TUNING: ApproximateSearchTuning = { efSearch: 100, efSearchGradeFiltered: 800, maxScanTuples: 20_000, probes: 10, maxProbes: 100 };

/** The ICDR grades the partial vector indexes are per; null is the (HNSW) graph of ungraded photographs. */
export const INDEXED_GRADES = [0, 1, 2, 3, 4] as const;

function filterClauses(search: SimilarImageSearch): Prisma.Sql[] {
  const { filters } = search;
  const clauses: Prisma.Sql[] = [Prisma.sql`e.model_version = ${search.modelVersion}`];
  // The query itself is never its own hit: the stored photograph by id, an upload by its content hash.
  if ('imageId' in search.query) clauses.push(Prisma.sql`fi.id <> ${search.query.imageId}::uuid`);
  else clauses.push(Prisma.sql`fi.content_hash <> ${search.query.contentHash}`);
  if (search.excludePatientId) clauses.push(Prisma.sql`fi.patient_id <> ${search.excludePatientId}::uuid`);
  if (filters.eye) clauses.push(Prisma.sql`fi.eye = ${filters.eye}::"eye"`);
  if (filters.sex) clauses.push(Prisma.sql`p.sex = ${filters.sex}::"sex"`);
  // Age at the visit from the birth year; patients without a birth year never match an age filter.
  if (filters.ageMin !== null) clauses.push(Prisma.sql`(EXTRACT(YEAR FROM v.visit_date)::int - p.birth_year) >= ${filters.ageMin}`);
  if (filters.ageMax !== null) clauses.push(Prisma.sql`(EXTRACT(YEAR FROM v.visit_date)::int - p.birth_year) <= ${filters.ageMax}`);
  if (filters.treatmentTypes.length > 0) {
    const types = Prisma.join(filters.treatmentTypes.map((type) => Prisma.sql`${type}::"treatment_type"`));
    clauses.push(Prisma.sql`EXISTS (
      SELECT 1 FROM treatment t
      WHERE t.patient_id = fi.patient_id AND t.type IN (${types})
        AND (t.eye::text = fi.eye::text OR t.eye IN ('BOTH', 'UNSPECIFIED')))`);
  }
  return clauses;
}

/**
 * A grade as an SQL literal, not a parameter: the planner proves `dr_grade = 4` implies a partial index's
 * predicate only from a constant.
 */
function gradeLiteral(grade: number): Prisma.Sql {
  return Prisma.raw(String(checkedGrade(grade)));
}

/** An ICDR grade, refused unless an integer 0-4 (it is written into statements as a literal). */
export function checkedGrade(grade: number): number {
  if (!Number.isInteger(grade) || grade < 0 || grade > 4) throw new Error(`ICDR grade ${grade} is not an integer 0-4`);
  return grade;
}

/** Patient and visit rows are joined only when a filter reads them: every row the scan ranks pays for a join. */
function joinsFor(filters: SimilarImageFilters): Prisma.Sql {
  const needsAge = filters.ageMin !== null || filters.ageMax !== null;
  const needsPatient = needsAge || filters.sex !== null;
  return Prisma.sql`${needsPatient ? Prisma.sql`JOIN patient p ON p.id = fi.patient_id` : Prisma.empty}
    ${needsAge ? Prisma.sql`JOIN visit v ON v.id = fi.visit_id` : Prisma.empty}`;
}

/** An embedding as the `vector` parameter pgvector's text form reads; refuses empty and non-finite vectors. */
export function toVectorParameter(embedding: ArrayLike<number>, what: string): Prisma.Sql {
  const values = Array.from(embedding);
  if (values.length === 0 || !values.every(Number.isFinite)) throw new Error(`Embedding of ${what} is empty or contains a non-finite value`);
  return Prisma.sql`${pgvector.toSql(values)}::vector`;
}

function queryEmbeddingSql(search: SimilarImageSearch): Prisma.Sql {
  return 'imageId' in search.query
    ? Prisma.sql`(SELECT embedding FROM image_embedding WHERE image_id = ${search.query.imageId}::uuid AND model_version = ${search.modelVersion})`
    : toVectorParameter(search.query.vector, 'the query');
}

type HitRow = { image_id: string; similarity: number; grade: number | null };

function toHits(rows: HitRow[]): SimilarImageHit[] {
  return rows.map((row) => ({ imageId: row.image_id, similarity: Number(row.similarity), grade: row.grade === null ? null : Number(row.grade) }));
}

/**
 * The exact statement: every row that passes the filters ranked, ties broken by id. With `onlyImages`, only those
 * photographs (the sharded search ranks the ones still queued for the shards here: search/shards.ts).
 */
export function exactSearchSql(search: SimilarImageSearch, onlyImages?: string[]): Prisma.Sql {
  const clauses = filterClauses(search);
  if (onlyImages) clauses.push(Prisma.sql`e.image_id = ANY(${onlyImages}::uuid[])`);
  if (search.filters.drGrades.length > 0) clauses.push(Prisma.sql`e.dr_grade IN (${Prisma.join(search.filters.drGrades.map(gradeLiteral))})`);
  return Prisma.sql`
    WITH query AS (SELECT ${queryEmbeddingSql(search)} AS embedding)
    SELECT fi.id::text AS image_id, (1 - (e.embedding <=> query.embedding))::float8 AS similarity, e.dr_grade AS grade
    FROM image_embedding e
    CROSS JOIN query
    JOIN fundus_image fi ON fi.id = e.image_id
    ${joinsFor(search.filters)}
    WHERE ${Prisma.join(clauses, ' AND ')}
    ORDER BY (e.embedding <=> query.embedding) + 0, fi.id
    LIMIT ${search.k}`;
}

async function searchExactly(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
  return toHits(await queryRows<HitRow>(prisma, exactSearchSql(search)));
}

/** The approximate statement: the top k of each grade's graph under the filters, merged and re-ranked. */
export function approximateSearchSql(search: SimilarImageSearch): Prisma.Sql {
  const query = queryEmbeddingSql(search);
  const clauses = filterClauses(search);
  const grades: (number | null)[] = search.filters.drGrades.length > 0 ? search.filters.drGrades : [...INDEXED_GRADES, null];
  const branches = grades.map((grade) => {
    const gradeClause = grade === null ? Prisma.sql`e.dr_grade IS NULL` : Prisma.sql`e.dr_grade = ${gradeLiteral(grade)}`;
    return Prisma.sql`(SELECT e.image_id, e.dr_grade, e.embedding <=> ${query} AS distance
      FROM image_embedding e
      JOIN fundus_image fi ON fi.id = e.image_id
      ${joinsFor(search.filters)}
      WHERE ${gradeClause} AND ${Prisma.join(clauses, ' AND ')}
      ORDER BY e.embedding <=> ${query}
      LIMIT ${search.k})`;
  });
  // relaxed_order returns a graph's rows nearly in order; the outer ORDER BY puts the merged candidates in order.
  return Prisma.sql`
    SELECT image_id::text AS image_id, (1 - distance)::float8 AS similarity, dr_grade AS grade
    FROM (${Prisma.join(branches, ' UNION ALL ')}) candidates
    ORDER BY distance, image_id
    LIMIT ${search.k}`;
}

/**
 * The approximate path's settings as session settings: every connection the API opens starts with them
 * (db/database.ts), so a search without a grade filter is one statement, without a transaction around it.
 */
export function vectorSessionSettings(tuning: ApproximateSearchTuning = APPROXIMATE_SEARCH_TUNING, efSearch = tuning.efSearch): Record<string, string> {
  return {
    'hnsw.ef_search': String(efSearch),
    'hnsw.iterative_scan': 'relaxed_order',
    'hnsw.max_scan_tuples': String(tuning.maxScanTuples),
    'ivfflat.probes': String(tuning.probes),
    'ivfflat.iterative_scan': 'relaxed_order',
    'ivfflat.max_probes': String(tuning.maxProbes),
  };
}

/**
 * The same settings as libpq startup options (`-c name=value ...`), for every pool that runs searches; with
 * `efSearch`, for the pool of grade-filtered walks (registerGradeFilteredClient).
 */
export function vectorSessionOptions(efSearch?: number): string {
  return Object.entries(vectorSessionSettings(APPROXIMATE_SEARCH_TUNING, efSearch)).map(([name, value]) => `-c ${name}=${value}`).join(' ');
}

/**
 * Beside each PostgreSQL pool that runs searches, db/database.ts opens a small one whose sessions start with the
 * grade-filtered ef_search (APPROXIMATE_SEARCH_TUNING.efSearchGradeFiltered) and registers its client here under
 * the main pool's. A grade-filtered walk of an HNSW graph then runs there as one statement, instead of BEGIN,
 * set_config, the search and COMMIT on the main pool, whose connection waited idle in its transaction while the
 * API's thread was busy (bench/README.md, "The search's transaction"). PGlite has one session, and a client with
 * no companion (a benchmark's own) keeps the transaction.
 */
const gradeFilteredClients = new WeakMap<PrismaClient, PrismaClient>();

export function registerGradeFilteredClient(prisma: PrismaClient, gradeFiltered: PrismaClient): void {
  gradeFilteredClients.set(prisma, gradeFiltered);
}

/** The grade-filtered client registered for `prisma`, if any. */
export function gradeFilteredClientFor(prisma: PrismaClient): PrismaClient | undefined {
  return gradeFilteredClients.get(prisma);
}

/** How long a process trusts what it read of the index layout; a rebuild elsewhere is seen within this. */
const INDEX_KINDS_TTL_MS = 60_000;

/** The whole-case-base index's name (search/vector-indexes.ts builds it under this name). */
export const WHOLE_INDEX_NAME = 'image_embedding_ivfflat_whole';

/**
 * What the approximate path needs to know of image_embedding's vector indexes: the grades whose partial index is
 * (still) an HNSW graph (only their grade-filtered walks need the larger ef_search), and the dimensions of the
 * whole-case-base index's half-precision expression (`embedding::halfvec(D)`), null when there is none.
 */
type IndexLayout = { hnswGrades: Set<number>; wholeDimensions: number | null };
const indexLayoutCache = new WeakMap<PrismaClient, { readAt: number; layout: Promise<IndexLayout> }>();

/**
 * The index layout, read from the catalogue in one statement once a minute per client; `npm run vector-index --
 * rebuild` in another process is seen within that minute (until then a rebuilt grade gets one needless SET LOCAL,
 * a grade rebuilt back to HNSW walks at the session's ef_search, and a new or dropped whole-case-base index is
 * not yet taken, or is missed once and the per-grade path answers).
 */
function indexLayout(prisma: PrismaClient): Promise<IndexLayout> {
  const cached = indexLayoutCache.get(prisma);
  if (cached && Date.now() - cached.readAt < INDEX_KINDS_TTL_MS) return cached.layout;
  const layout = prisma.$queryRaw<{ name: string; kind: string; predicate: string; definition: string }[]>`
    SELECT c.relname AS name, am.amname AS kind, coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
           pg_get_indexdef(c.oid) AS definition
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
    WHERE i.indrelid = 'image_embedding'::regclass AND am.amname IN ('hnsw', 'ivfflat') AND i.indisvalid`
    .then((rows) => {
      const whole = rows.find((row) => row.name === WHOLE_INDEX_NAME);
      const dimensions = whole ? /halfvec\((\d+)\)/.exec(whole.definition) : null;
      return {
        hnswGrades: new Set(rows.filter((row) => row.kind === 'hnsw').map((row) => /^\(dr_grade = (\d)\)$/.exec(row.predicate)).filter((match) => match !== null).map((match) => Number(match[1]))),
        wholeDimensions: dimensions ? Number(dimensions[1]) : null,
      };
    });
  layout.catch(() => indexLayoutCache.delete(prisma));
  indexLayoutCache.set(prisma, { readAt: Date.now(), layout });
  return layout;
}

/** The grades whose partial index is (still) an HNSW graph. */
export async function hnswGrades(prisma: PrismaClient): Promise<Set<number>> {
  return (await indexLayout(prisma)).hnswGrades;
}

/** The dimensions of the whole-case-base index (`npm run vector-index -- rebuild` builds it), or null. */
export async function wholeIndexDimensions(prisma: PrismaClient): Promise<number | null> {
  return (await indexLayout(prisma)).wholeDimensions;
}

/** Forget the cached index layout (after a rebuild in this process). */
export function forgetIndexKinds(prisma: PrismaClient): void {
  indexLayoutCache.delete(prisma);
}

/** No grade filter, or every ICDR grade (the reuse step's voters): what the whole-case-base index serves. */
export function coversEveryGrade(search: SimilarImageSearch): boolean {
  return search.filters.drGrades.length === 0 || search.filters.drGrades.length === INDEXED_GRADES.length;
}

/** Candidates the whole-case-base index returns for the full-precision re-ranking: four times k, at least 40. */
const wholeIndexDepth = (k: number) => Math.max(4 * k, 40);

/**
 * Without a grade filter, on the whole-case-base index: one IVFFlat scan in half precision for the nearest
 * candidates under the other filters (iterative scan until enough pass), ranked again by the full-precision distance.
 * Every grade at once (the reuse step's voters) is the graded rows.
 */
export function wholeIndexSearchSql(search: SimilarImageSearch, dimensions: number): Prisma.Sql {
  if (!Number.isInteger(dimensions) || dimensions < 1) throw new Error(`halfvec dimensions ${dimensions}`);
  const query = queryEmbeddingSql(search);
  const clauses = filterClauses(search);
  if (search.filters.drGrades.length > 0) clauses.push(Prisma.sql`e.dr_grade IN (${Prisma.join(search.filters.drGrades.map(gradeLiteral))})`);
  const half = Prisma.raw(`halfvec(${dimensions})`);
  return Prisma.sql`
    SELECT image_id::text AS image_id, (1 - distance)::float8 AS similarity, dr_grade AS grade
    FROM (
      SELECT e.image_id, e.dr_grade, e.embedding <=> ${query} AS distance
      FROM image_embedding e
      JOIN fundus_image fi ON fi.id = e.image_id
      ${joinsFor(search.filters)}
      WHERE ${Prisma.join(clauses, ' AND ')}
      ORDER BY e.embedding::${half} <=> (${query})::${half}
      LIMIT ${wholeIndexDepth(search.k)}) candidates
    ORDER BY distance, image_id
    LIMIT ${search.k}`;
}

/**
 * The statement the approximate path runs on the session's settings: the whole-case-base index's when there is one
 * and the search has no grade filter (or every grade: the voters), else the per-grade one. For EXPLAIN (benchmarks,
 * tests) as much as for the search.
 */
export async function approximateStatementFor(prisma: PrismaClient, search: SimilarImageSearch): Promise<Prisma.Sql> {
  const dimensions = coversEveryGrade(search) ? await wholeIndexDimensions(prisma) : null;
  return dimensions === null ? approximateSearchSql(search) : wholeIndexSearchSql(search, dimensions);
}

async function searchApproximately(prisma: PrismaClient, search: SimilarImageSearch, tuning: ApproximateSearchTuning): Promise<SimilarImageHit[]> {
  // No grade filter, or every grade (the voters): the whole-case-base index when there is one, one scan.
  const everyGrade = coversEveryGrade(search);
  const layout = await indexLayout(prisma);
  if (everyGrade && tuning === APPROXIMATE_SEARCH_TUNING && layout.wholeDimensions !== null) {
    return toHits(await queryRows<HitRow>(prisma, wholeIndexSearchSql(search, layout.wholeDimensions)));
  }
  // Every grade at once (the reuse step's voters) walks the same graphs as no filter, where ef_search 100 held.
  const gradeFiltered = !everyGrade;
  // Under a grade filter only an HNSW graph needs the larger ef_search; IVFFlat grades run on the session's settings.
  const graphGrades = layout.hnswGrades;
  const efSearch = Math.max(gradeFiltered && search.filters.drGrades.some((grade) => graphGrades.has(grade)) ? tuning.efSearchGradeFiltered : tuning.efSearch, search.k);
  if (tuning === APPROXIMATE_SEARCH_TUNING) {
    // The shipped settings are some pool's session settings: the main pool's, or the grade-filtered pool's.
    const sessionClient = efSearch === tuning.efSearch ? prisma : efSearch === tuning.efSearchGradeFiltered ? gradeFilteredClientFor(prisma) : undefined;
    if (sessionClient) return toHits(await queryRows<HitRow>(sessionClient, approximateSearchSql(search)));
  }
  // Other settings (grade filters without a grade-filtered pool, a benchmark's sweep): SET LOCAL in the search's own
  // transaction, so the pooled connection goes back with the session's.
  const settings = Object.entries(vectorSessionSettings(tuning, efSearch));
  const [, rows] = await prisma.$transaction([
    prisma.$queryRaw`SELECT ${Prisma.join(settings.map(([name, value]) => Prisma.sql`set_config(${name}, ${value}, true)`))}`,
    prisma.$queryRaw<HitRow[]>(approximateSearchSql(search)),
  ]);
  return toHits(rows);
}

/** The approximate path on this database alone, with the shipped settings (the sharded search's fallback). */
export function searchPrimaryApproximately(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
  return searchApproximately(prisma, search, APPROXIMATE_SEARCH_TUNING);
}

/**
 * The approximate path over shards (search/shards.ts), registered for the Prisma clients of an API started with
 * SEARCH_SHARD_URLS (the primary's and each read replica's): the same contract, answered by the shards.
 */
export type ShardedSearcher = { search(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> };
const shardedSearchers = new WeakMap<PrismaClient, ShardedSearcher>();

export function registerShardedSearcher(prisma: PrismaClient, searcher: ShardedSearcher): void {
  shardedSearchers.set(prisma, searcher);
}

/** The k most cosine-similar photographs to the query's embedding of the same model version, best first. */
export async function searchSimilarImages(
  prisma: PrismaClient,
  search: SimilarImageSearch,
  tuning: ApproximateSearchTuning = APPROXIMATE_SEARCH_TUNING,
): Promise<SimilarImageHit[]> {
  if (search.mode === 'EXACT') return searchExactly(prisma, search);
  // The shards answer with the shipped settings; a benchmark's sweep of other settings runs on this database.
  const sharded = tuning === APPROXIMATE_SEARCH_TUNING ? shardedSearchers.get(prisma) : undefined;
  const hits = sharded ? await sharded.search(prisma, search) : await searchApproximately(prisma, search, tuning);
  // Fewer than k: either fewer than k rows match (the exact path says so too, cheaply: the set is small) or the
  // iterative scans stopped at max_scan_tuples under very selective filters.
  return hits.length < search.k ? searchExactly(prisma, search) : hits;
}

/** Every ICDR grade and nothing else: the graded photographs, who alone can vote. */
export const EVERY_GRADE_FILTERS: SimilarImageFilters = { drGrades: [...INDEXED_GRADES], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };

/**
 * A filtered search and the reuse step's voters: the hits under the filters, and the `voters.count` nearest GRADED
 * photographs of any patient but `voters.excludePatientId`, unfiltered, of `voters.query` (the whole photograph
 * when the hits are a region's; by default the hits' own query): the neighbourhood the vote was calibrated on.
 * Two searches on the same path (approximate: two index walks; EXACT: two scans), so the voters are as exact as
 * the hits.
 */
export async function searchSimilarImagesWithVoters(
  prisma: PrismaClient,
  search: SimilarImageSearch,
  voters: { count: number; excludePatientId: string | null; query?: SimilarImageSearch['query'] },
): Promise<{ hits: SimilarImageHit[]; voters: SimilarImageHit[] }> {
  // Concurrently: on PostgreSQL the two walks run on two pooled connections (PGlite runs them one after the other).
  const [hits, voterHits] = await Promise.all([
    searchSimilarImages(prisma, search),
    searchSimilarImages(prisma, { ...search, query: voters.query ?? search.query, k: voters.count, filters: EVERY_GRADE_FILTERS, excludePatientId: voters.excludePatientId }),
  ]);
  return { hits, voters: voterHits };
}

/**
 * The newest model version that has embeddings (the version of the most recently written embedding; of two
 * written at the same instant, the last by name), or null when nothing is embedded yet. One step down the
 * (created_at, model_version) index (migration 0011): it runs on every search of an API with no model loaded or
 * pinned, and the aggregate over every embedding it replaces cost a scan of the table each time.
 */
export async function findNewestModelVersion(prisma: PrismaClient): Promise<string | null> {
  const rows = await queryRows<{ model_version: string }>(prisma, Prisma.sql`
    SELECT model_version FROM image_embedding ORDER BY created_at DESC, model_version DESC LIMIT 1`);
  return rows[0]?.model_version ?? null;
}

/**
 * What a search by a stored photograph needs to know of it, in one statement: null when there is no such
 * photograph; else its patient and content hash, whether it has an embedding of this version (none when the
 * version is null) and, if so, its attention map (null for a model without one).
 */
export async function findStoredPhotograph(prisma: PrismaClient, imageId: string, modelVersion: string | null): Promise<{ patientId: string; contentHash: string; embedded: boolean; attention: AttentionMap | null } | null> {
  const rows = await queryRows<{ patient_id: string; content_hash: string; embedded: boolean; attention_map: Uint8Array | null; attention_width: number | null; attention_height: number | null }>(prisma, Prisma.sql`
    SELECT fi.patient_id::text AS patient_id, fi.content_hash, e.image_id IS NOT NULL AS embedded, e.attention_map, e.attention_width, e.attention_height
    FROM fundus_image fi LEFT JOIN image_embedding e ON e.image_id = fi.id AND e.model_version = ${modelVersion}
    WHERE fi.id = ${imageId}::uuid`);
  const row = rows[0];
  if (!row) return null;
  const attention = row.attention_map && row.attention_width && row.attention_height ? decodeAttentionMap(row.attention_map, row.attention_width, row.attention_height) : null;
  return { patientId: row.patient_id, contentHash: row.content_hash, embedded: row.embedded, attention };
}

export type AttentionMap = { width: number; height: number; values: Float32Array };

/** float32 little-endian, row-major: the stored form of an attention map. */
export function encodeAttentionMap(values: Float32Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, index) => view.setFloat32(index * 4, value, true));
  return bytes;
}

/** float32 little-endian bytes (encodeAttentionMap's form) back to values. */
export function decodeFloat32(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Float32Array(bytes.byteLength / 4);
  for (let index = 0; index < values.length; index += 1) values[index] = view.getFloat32(index * 4, true);
  return values;
}

export function decodeAttentionMap(bytes: Uint8Array, width: number, height: number): AttentionMap {
  if (bytes.length !== width * height * 4) throw new Error(`Attention map holds ${bytes.length} bytes, expected ${width * height * 4} for ${width}x${height}`);
  return { width, height, values: decodeFloat32(bytes) };
}

export type ImageEmbeddingRow = { modelVersion: string; embedding: ArrayLike<number>; attention?: AttentionMap | null };

/**
 * The statement that writes (or replaces) one image's embedding of one model version. `imageId` is an SQL
 * expression, so ingestion can embed it in the statement that inserts the image (`(SELECT id FROM image)`).
 */
export function imageEmbeddingUpsertSql(imageId: Prisma.Sql, { modelVersion, embedding, attention }: ImageEmbeddingRow, what: string): Prisma.Sql {
  const vector = toVectorParameter(embedding, what);
  const map = attention ? encodeAttentionMap(attention.values) : null;
  return Prisma.sql`
    INSERT INTO image_embedding (image_id, model_version, embedding, attention_map, attention_width, attention_height)
    VALUES (${imageId}, ${modelVersion}, ${vector}, ${map}, ${attention?.width ?? null}::int, ${attention?.height ?? null}::int)
    ON CONFLICT (image_id, model_version) DO UPDATE
      SET embedding = EXCLUDED.embedding, attention_map = EXCLUDED.attention_map,
          attention_width = EXCLUDED.attention_width, attention_height = EXCLUDED.attention_height, created_at = now()`;
}

/** Writes (or replaces) one image's embedding of one model version, with its attention map when there is one. */
export async function upsertImageEmbedding(
  prisma: Pick<PrismaClient, '$executeRaw'>,
  { imageId, ...row }: ImageEmbeddingRow & { imageId: string },
): Promise<void> {
  await prisma.$executeRaw(imageEmbeddingUpsertSql(Prisma.sql`${imageId}::uuid`, row, `image ${imageId}`));
}

/** Attention maps of the given images for one model version (images without one are absent). */
export async function findAttentionMaps(prisma: PrismaClient, imageIds: string[], modelVersion: string): Promise<Map<string, AttentionMap>> {
  if (imageIds.length === 0) return new Map();
  const rows = await prisma.$queryRaw<{ image_id: string; attention_map: Uint8Array; attention_width: number; attention_height: number }[]>`
    SELECT image_id::text AS image_id, attention_map, attention_width, attention_height FROM image_embedding
    WHERE model_version = ${modelVersion} AND attention_map IS NOT NULL
      AND image_id = ANY(${imageIds}::uuid[])`;
  return new Map(rows.map((row) => [row.image_id, decodeAttentionMap(row.attention_map, row.attention_width, row.attention_height)]));
}

/** Whether any photograph is embedded by this version (EXISTS: stops at the first row, unlike a count). */
export async function hasAnyEmbedding(prisma: PrismaClient, modelVersion: string): Promise<boolean> {
  const rows = await prisma.$queryRaw<{ found: boolean }[]>`SELECT EXISTS (SELECT 1 FROM image_embedding WHERE model_version = ${modelVersion}) AS found`;
  return rows[0]?.found === true;
}

/** Up to `limit` photographs without an embedding of this version, by id after `afterId` (a resumable walk). */
export async function findImagesMissingEmbedding(prisma: PrismaClient, modelVersion: string, afterId: string | null, limit: number): Promise<string[]> {
  const rows = await prisma.$queryRaw<{ id: string }[]>`
    SELECT fi.id::text AS id FROM fundus_image fi
    WHERE NOT EXISTS (SELECT 1 FROM image_embedding e WHERE e.image_id = fi.id AND e.model_version = ${modelVersion})
      ${afterId ? Prisma.sql`AND fi.id > ${afterId}::uuid` : Prisma.empty}
    ORDER BY fi.id LIMIT ${limit}`;
  return rows.map((row) => row.id);
}
