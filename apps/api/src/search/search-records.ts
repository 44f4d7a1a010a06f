// The vector SQL of relevance feedback and search by region (issue 13): searches as answered, with the vector
// they searched with, and the stored embeddings a refinement moves the query towards or away from.
import { Prisma, type PrismaClient } from '../generated/prisma/client.js';
import pgvector from 'pgvector';
import { toVectorParameter } from './similar-images.js';

export type SearchRecordInput = {
  subject: string;
  role: string;
  modelVersion: string;
  queryImageId: string | null;
  queryContentHash: string;
  /** The vector searched with; null: the stored query photograph's embedding of modelVersion. */
  queryVector: ArrayLike<number> | null;
  region: Record<string, number> | null;
  parentSearchId: string | null;
  k: number;
  filters: unknown;
  excludeSamePatient: boolean;
  hitImageIds: string[];
};

export type SearchRecord = {
  id: string;
  subject: string;
  modelVersion: string;
  queryImageId: string | null;
  queryContentHash: string;
  /** The query photograph's patient (for the same exclusion on a re-run), null for an upload. */
  queryPatientId: string | null;
  queryVector: Float32Array;
  region: Record<string, number> | null;
  k: number;
  filters: unknown;
  excludeSamePatient: boolean;
  hitImageIds: string[];
};

/** Writes one search as answered; returns its id. */
export async function insertSearchRecord(prisma: Pick<PrismaClient, '$queryRaw'>, record: SearchRecordInput): Promise<string> {
  const vector = record.queryVector
    ? toVectorParameter(record.queryVector, 'the query')
    : Prisma.sql`(SELECT embedding FROM image_embedding WHERE image_id = ${record.queryImageId}::uuid AND model_version = ${record.modelVersion})`;
  const hits = record.hitImageIds.length > 0 ? Prisma.sql`ARRAY[${Prisma.join(record.hitImageIds.map((id) => Prisma.sql`${id}::uuid`))}]` : Prisma.sql`ARRAY[]::uuid[]`;
  const rows = await prisma.$queryRaw<{ id: string }[]>`
    INSERT INTO similar_case_search (subject, role, model_version, query_image_id, query_content_hash, query_embedding, region,
      parent_search_id, k, filters, exclude_same_patient, hit_image_ids)
    VALUES (${record.subject}, ${record.role}, ${record.modelVersion}, ${record.queryImageId}::uuid, ${record.queryContentHash}, ${vector},
      ${record.region ? JSON.stringify(record.region) : null}::jsonb, ${record.parentSearchId}::uuid, ${record.k},
      ${JSON.stringify(record.filters ?? {})}::jsonb, ${record.excludeSamePatient}, ${hits})
    RETURNING id::text AS id`;
  return rows[0]!.id;
}

export async function findSearchRecord(prisma: PrismaClient, id: string): Promise<SearchRecord | null> {
  const rows = await prisma.$queryRaw<
    { id: string; subject: string; model_version: string; query_image_id: string | null; query_content_hash: string; query_patient_id: string | null; query_embedding: string; region: Record<string, number> | null; k: number; filters: unknown; exclude_same_patient: boolean; hit_image_ids: string[] | null }[]
  >`
    SELECT s.id::text AS id, s.subject, s.model_version, s.query_image_id::text AS query_image_id, s.query_content_hash,
      fi.patient_id::text AS query_patient_id, s.query_embedding::text AS query_embedding, s.region, s.k, s.filters,
      s.exclude_same_patient, s.hit_image_ids::text[] AS hit_image_ids
    FROM similar_case_search s LEFT JOIN fundus_image fi ON fi.id = s.query_image_id
    WHERE s.id = ${id}::uuid`;
  const row = rows[0];
  if (!row) return null;
  return {
    id: row.id,
    subject: row.subject,
    modelVersion: row.model_version,
    queryImageId: row.query_image_id,
    queryContentHash: row.query_content_hash,
    queryPatientId: row.query_patient_id,
    queryVector: parseVector(row.query_embedding),
    region: row.region,
    k: row.k,
    filters: row.filters,
    excludeSamePatient: row.exclude_same_patient,
    hitImageIds: row.hit_image_ids ?? [],
  };
}

/** Stored embeddings of the given images for one model version (images without one are absent). */
export async function findEmbeddings(prisma: PrismaClient, imageIds: string[], modelVersion: string): Promise<Map<string, Float32Array>> {
  if (imageIds.length === 0) return new Map();
  const rows = await prisma.$queryRaw<{ image_id: string; embedding: string }[]>`
    SELECT image_id::text AS image_id, embedding::text AS embedding FROM image_embedding
    WHERE model_version = ${modelVersion} AND image_id IN (${Prisma.join(imageIds.map((id) => Prisma.sql`${id}::uuid`))})`;
  return new Map(rows.map((row) => [row.image_id, parseVector(row.embedding)]));
}

/** A vector read back as text (`::text`), through the pgvector package's parser. */
export function parseVector(text: string): Float32Array {
  return Float32Array.from(pgvector.fromSql(text) as number[]);
}
