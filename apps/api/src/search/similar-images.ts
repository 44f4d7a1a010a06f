// Every pgvector query of the application lives in this module.
//
// Exact search: the filtered ORDER BY <=> LIMIT k scans every embedding of the model version that passes the
// filter, so the hits are the true top-k and never fewer than k when k rows match. No approximate index exists
// yet, on purpose: a shared HNSW index under a selective WHERE returns too few rows and loses recall
// (../shared/TOOLCHAIN.md). At 10k-100k cases an exact scan costs milliseconds to tens of milliseconds; the
// approximate path (per-grade partial HNSW indexes, iterative scans, recall measured against this exact search
// for every grade filter) comes with the million-case work and must keep this function's contract.
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

export type SimilarImageSearch = {
  modelVersion: string;
  /** A stored photograph's embedding of modelVersion, or a vector computed from an upload by that model. */
  query: { imageId: string } | { vector: ArrayLike<number>; contentHash: string };
  k: number;
  filters: SimilarImageFilters;
  /** Leave out every photograph of this patient (the query's own, usually). */
  excludePatientId: string | null;
};

/** `grade`: the hit's reference grade (fundus_image.dr_grade), null while ungraded; the reuse step votes with it. */
export type SimilarImageHit = { imageId: string; similarity: number; grade: number | null };

function filterClauses(search: SimilarImageSearch): Prisma.Sql[] {
  const { filters } = search;
  const clauses: Prisma.Sql[] = [Prisma.sql`e.model_version = ${search.modelVersion}`];
  // The query itself is never its own hit: the stored photograph by id, an upload by its content hash.
  if ('imageId' in search.query) clauses.push(Prisma.sql`fi.id <> ${search.query.imageId}::uuid`);
  else clauses.push(Prisma.sql`fi.content_hash <> ${search.query.contentHash}`);
  if (search.excludePatientId) clauses.push(Prisma.sql`fi.patient_id <> ${search.excludePatientId}::uuid`);
  if (filters.drGrades.length > 0) clauses.push(Prisma.sql`fi.dr_grade IN (${Prisma.join(filters.drGrades)})`);
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

/** Patient and visit rows are joined only when a filter reads them: every row the scan ranks pays for a join. */
function joinsFor(filters: SimilarImageFilters): Prisma.Sql {
  const needsAge = filters.ageMin !== null || filters.ageMax !== null;
  const needsPatient = needsAge || filters.sex !== null;
  return Prisma.sql`${needsPatient ? Prisma.sql`JOIN patient p ON p.id = fi.patient_id` : Prisma.empty}
    ${needsAge ? Prisma.sql`JOIN visit v ON v.id = fi.visit_id` : Prisma.empty}`;
}

/** The k most cosine-similar photographs to the query's embedding of the same model version, best first. */
export async function searchSimilarImages(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
  const queryEmbedding =
    'imageId' in search.query
      ? Prisma.sql`SELECT embedding FROM image_embedding WHERE image_id = ${search.query.imageId}::uuid AND model_version = ${search.modelVersion}`
      : Prisma.sql`SELECT ${toVectorLiteral(search.query.vector, 'the query')}::vector AS embedding`;
  const rows = await prisma.$queryRaw<{ image_id: string; similarity: number; grade: number | null }[]>`
    WITH query AS (${queryEmbedding})
    SELECT fi.id::text AS image_id, (1 - (e.embedding <=> query.embedding))::float8 AS similarity, fi.dr_grade AS grade
    FROM image_embedding e
    CROSS JOIN query
    JOIN fundus_image fi ON fi.id = e.image_id
    ${joinsFor(search.filters)}
    WHERE ${Prisma.join(filterClauses(search), ' AND ')}
    ORDER BY e.embedding <=> query.embedding, fi.id
    LIMIT ${search.k}`;
  return rows.map((row) => ({ imageId: row.image_id, similarity: Number(row.similarity), grade: row.grade === null ? null : Number(row.grade) }));
}

/**
 * A filtered search and the reuse step's voters in one scan: the hits under the filters, and the `voterCount`
 * nearest GRADED photographs of any patient but `voterExcludePatientId`, unfiltered (the neighbourhood the vote
 * was calibrated on). The distances are computed once (a materialised CTE) and ranked twice, instead of two
 * exact scans. Both lists keep the exact search's order and tie-break.
 */
export async function searchSimilarImagesWithVoters(
  prisma: PrismaClient,
  search: SimilarImageSearch,
  voterCount: number,
  voterExcludePatientId: string | null,
): Promise<{ hits: SimilarImageHit[]; voters: SimilarImageHit[] }> {
  const queryEmbedding =
    'imageId' in search.query
      ? Prisma.sql`SELECT embedding FROM image_embedding WHERE image_id = ${search.query.imageId}::uuid AND model_version = ${search.modelVersion}`
      : Prisma.sql`SELECT ${toVectorLiteral(search.query.vector, 'the query')}::vector AS embedding`;
  const self = 'imageId' in search.query ? Prisma.sql`fi.id <> ${search.query.imageId}::uuid` : Prisma.sql`fi.content_hash <> ${search.query.contentHash}`;
  const rows = await prisma.$queryRaw<{ kind: string; image_id: string; similarity: number; grade: number | null }[]>`
    WITH query AS (${queryEmbedding}),
    scored AS MATERIALIZED (
      SELECT fi.id, fi.patient_id, fi.dr_grade, (e.embedding <=> query.embedding) AS distance,
             (${Prisma.join(filterClauses(search), ' AND ')}) AS matches
      FROM image_embedding e
      CROSS JOIN query
      JOIN fundus_image fi ON fi.id = e.image_id
      ${joinsFor(search.filters)}
      WHERE e.model_version = ${search.modelVersion} AND ${self})
    (SELECT 'hit' AS kind, id::text AS image_id, (1 - distance)::float8 AS similarity, dr_grade AS grade
       FROM scored WHERE matches ORDER BY distance, id LIMIT ${search.k})
    UNION ALL
    (SELECT 'voter', id::text, (1 - distance)::float8, dr_grade
       FROM scored WHERE dr_grade IS NOT NULL ${voterExcludePatientId ? Prisma.sql`AND patient_id <> ${voterExcludePatientId}::uuid` : Prisma.empty}
       ORDER BY distance, id LIMIT ${voterCount})`;
  const toHit = (row: (typeof rows)[number]) => ({ imageId: row.image_id, similarity: Number(row.similarity), grade: row.grade === null ? null : Number(row.grade) });
  // UNION ALL does not promise to keep each branch's order: restore it (uuid order is lower-case hex order).
  const ranked = (kind: string) => rows.filter((row) => row.kind === kind).map(toHit).sort((a, b) => b.similarity - a.similarity || (a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0));
  return { hits: ranked('hit'), voters: ranked('voter') };
}

/** The newest model version that has embeddings, or null when nothing is embedded yet. */
export async function findNewestModelVersion(prisma: PrismaClient): Promise<string | null> {
  const rows = await prisma.$queryRaw<{ model_version: string }[]>`
    SELECT model_version FROM image_embedding GROUP BY model_version ORDER BY max(created_at) DESC, model_version LIMIT 1`;
  return rows[0]?.model_version ?? null;
}

export async function hasEmbedding(prisma: PrismaClient, imageId: string, modelVersion: string): Promise<boolean> {
  const rows = await prisma.$queryRaw<{ found: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM image_embedding WHERE image_id = ${imageId}::uuid AND model_version = ${modelVersion}) AS found`;
  return rows[0]?.found === true;
}

export type AttentionMap = { width: number; height: number; values: Float32Array };

/** float32 little-endian, row-major: the stored form of an attention map. */
export function encodeAttentionMap(values: Float32Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, index) => view.setFloat32(index * 4, value, true));
  return bytes;
}

export function decodeAttentionMap(bytes: Uint8Array, width: number, height: number): AttentionMap {
  if (bytes.length !== width * height * 4) throw new Error(`Attention map holds ${bytes.length} bytes, expected ${width * height * 4} for ${width}x${height}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Float32Array(width * height);
  for (let index = 0; index < values.length; index += 1) values[index] = view.getFloat32(index * 4, true);
  return { width, height, values };
}

export function toVectorLiteral(embedding: ArrayLike<number>, what: string): string {
  const values = Array.from(embedding);
  if (values.length === 0 || !values.every(Number.isFinite)) throw new Error(`Embedding of ${what} is empty or contains a non-finite value`);
  return `[${values.join(',')}]`;
}

export type ImageEmbeddingRow = { modelVersion: string; embedding: ArrayLike<number>; attention?: AttentionMap | null };

/**
 * The statement that writes (or replaces) one image's embedding of one model version. `imageId` is an SQL
 * expression, so ingestion can embed it in the statement that inserts the image (`(SELECT id FROM image)`).
 */
export function imageEmbeddingUpsertSql(imageId: Prisma.Sql, { modelVersion, embedding, attention }: ImageEmbeddingRow, what: string): Prisma.Sql {
  const literal = toVectorLiteral(embedding, what);
  const map = attention ? encodeAttentionMap(attention.values) : null;
  return Prisma.sql`
    INSERT INTO image_embedding (image_id, model_version, embedding, attention_map, attention_width, attention_height)
    VALUES (${imageId}, ${modelVersion}, ${literal}::vector, ${map}, ${attention?.width ?? null}::int, ${attention?.height ?? null}::int)
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
      AND image_id IN (${Prisma.join(imageIds.map((id) => Prisma.sql`${id}::uuid`))})`;
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
