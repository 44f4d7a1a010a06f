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
  queryImageId: string;
  k: number;
  filters: SimilarImageFilters;
  /** Leave out every photograph of this patient (the query's own, usually). */
  excludePatientId: string | null;
};

export type SimilarImageHit = { imageId: string; similarity: number };

function filterClauses(search: SimilarImageSearch): Prisma.Sql[] {
  const { filters } = search;
  const clauses: Prisma.Sql[] = [Prisma.sql`e.model_version = ${search.modelVersion}`, Prisma.sql`fi.id <> ${search.queryImageId}::uuid`];
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

/** The k most cosine-similar photographs to the query's embedding of the same model version, best first. */
export async function searchSimilarImages(prisma: PrismaClient, search: SimilarImageSearch): Promise<SimilarImageHit[]> {
  const rows = await prisma.$queryRaw<{ image_id: string; similarity: number }[]>`
    WITH query AS (
      SELECT embedding FROM image_embedding WHERE image_id = ${search.queryImageId}::uuid AND model_version = ${search.modelVersion}
    )
    SELECT fi.id::text AS image_id, (1 - (e.embedding <=> query.embedding))::float8 AS similarity
    FROM image_embedding e
    CROSS JOIN query
    JOIN fundus_image fi ON fi.id = e.image_id
    JOIN patient p ON p.id = fi.patient_id
    JOIN visit v ON v.id = fi.visit_id
    WHERE ${Prisma.join(filterClauses(search), ' AND ')}
    ORDER BY e.embedding <=> query.embedding, fi.id
    LIMIT ${search.k}`;
  return rows.map((row) => ({ imageId: row.image_id, similarity: Number(row.similarity) }));
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

/** Writes an embedding (text form '[x,y,...]'); used by ingestion and fixtures. */
export async function upsertImageEmbedding(
  prisma: Pick<PrismaClient, '$executeRaw'>,
  { imageId, modelVersion, embedding }: { imageId: string; modelVersion: string; embedding: ArrayLike<number> },
): Promise<void> {
  const values = Array.from(embedding);
  if (!values.every(Number.isFinite)) throw new Error(`Embedding for image ${imageId} contains a non-finite value`);
  const literal = `[${values.join(',')}]`;
  await prisma.$executeRaw`
    INSERT INTO image_embedding (image_id, model_version, embedding)
    VALUES (${imageId}::uuid, ${modelVersion}, ${literal}::vector)
    ON CONFLICT (image_id, model_version) DO UPDATE SET embedding = EXCLUDED.embedding, created_at = now()`;
}
