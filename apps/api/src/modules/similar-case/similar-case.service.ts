import { AppError, badInput, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { Eye, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { findAttentionMaps, findNewestModelVersion, hasAnyEmbedding, hasEmbedding, searchSimilarImages, type AttentionMap, type SimilarImageFilters } from '../../search/similar-images.js';
import { loadCases } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';
import { requireIcdrGrade, requireIntegerInRange, requireUuid } from '../common/validation.js';
import type { OwnUploads } from '../upload/upload.store.js';

export const MAX_K = 100;

export type CaseFilters = {
  drGrades?: number[] | null;
  eye?: Eye | null;
  sex?: Sex | null;
  ageMin?: number | null;
  ageMax?: number | null;
  treatmentTypes?: TreatmentType[] | null;
};

export type SimilarCases = {
  query: Case | null;
  queryAttention: AttentionMap | null;
  modelVersion: string;
  hits: { rank: number; similarity: number; case: Case; attention: AttentionMap | null }[];
};

export function normaliseFilters(filters: CaseFilters | null | undefined): SimilarImageFilters {
  const drGrades = [...new Set((filters?.drGrades ?? []).map((grade, index) => requireIcdrGrade(grade, `filters.drGrades[${index}]`)))].sort();
  const ageMin = filters?.ageMin ?? null;
  const ageMax = filters?.ageMax ?? null;
  if (ageMin !== null) requireIntegerInRange(ageMin, 'filters.ageMin', 0, 130);
  if (ageMax !== null) requireIntegerInRange(ageMax, 'filters.ageMax', 0, 130);
  if (ageMin !== null && ageMax !== null && ageMin > ageMax) throw badInput(`filters.ageMin (${ageMin}) is greater than filters.ageMax (${ageMax})`, { field: 'filters.ageMin' });
  return {
    drGrades,
    eye: filters?.eye ?? null,
    sex: filters?.sex ?? null,
    ageMin,
    ageMax,
    treatmentTypes: [...new Set(filters?.treatmentTypes ?? [])],
  };
}

/**
 * The model version searches compare on: the pinned one, else the loaded model's, else the newest in the
 * database. One version per search, always: embeddings of two models are not comparable.
 */
export async function resolveSearchModelVersion(prisma: PrismaClient, pinned: string | undefined, loadedModelVersion: string | undefined): Promise<string | null> {
  return pinned ?? loadedModelVersion ?? (await findNewestModelVersion(prisma));
}

/**
 * The k cases most similar to a stored photograph (imageId) or to an uploaded one (uploadToken from
 * POST /uploads), under the filters, best first, with attention maps for overlays.
 */
export async function findSimilarCases({
  prisma,
  uploads,
  imageId,
  uploadToken,
  k,
  filters,
  excludeSamePatient,
  modelVersion,
}: {
  prisma: PrismaClient;
  uploads: OwnUploads;
  imageId?: string | null;
  uploadToken?: string | null;
  k: number;
  filters?: CaseFilters | null;
  excludeSamePatient: boolean;
  modelVersion: string | null;
}): Promise<SimilarCases> {
  if ((imageId ? 1 : 0) + (uploadToken ? 1 : 0) !== 1) throw badInput('Give exactly one of imageId (a stored case) or uploadToken (from POST /uploads)', { field: 'imageId' });
  requireIntegerInRange(k, 'k', 1, MAX_K);
  const normalised = normaliseFilters(filters);

  let query: Case | null = null;
  let version: string;
  let queryAttention: AttentionMap | null = null;
  let searchQuery: Parameters<typeof searchSimilarImages>[1]['query'];
  if (imageId) {
    const queryImageId = requireUuid(imageId, 'imageId');
    query = (await loadCases(prisma, [queryImageId])).get(queryImageId) ?? null;
    if (!query) throw notFound(`No case with id ${queryImageId}`, { field: 'imageId' });
    if (!modelVersion || !(await hasEmbedding(prisma, queryImageId, modelVersion))) {
      throw new AppError('EMBEDDING_UNAVAILABLE', `Case ${queryImageId} has no embedding for model version ${modelVersion ?? '(none)'} yet; run \`npm run reembed\``, { field: 'imageId' });
    }
    version = modelVersion;
    queryAttention = (await findAttentionMaps(prisma, [queryImageId], version)).get(queryImageId) ?? null;
    searchQuery = { imageId: queryImageId };
  } else {
    const upload = await uploads.get(uploadToken!);
    if (!upload) throw notFound('The upload token is unknown or expired; upload the photograph again', { field: 'uploadToken' });
    if (modelVersion && upload.modelVersion !== modelVersion) {
      throw new AppError('EMBEDDING_UNAVAILABLE', `The upload was embedded by model ${upload.modelVersion} but searches use ${modelVersion}`, { field: 'uploadToken' });
    }
    version = upload.modelVersion;
    if (!(await hasAnyEmbedding(prisma, version))) {
      throw new AppError('EMBEDDING_UNAVAILABLE', `No stored case is embedded with model ${version} yet; run \`npm run reembed\``, { field: 'uploadToken' });
    }
    queryAttention = upload.attention;
    searchQuery = { vector: upload.embedding, contentHash: upload.contentHash };
  }

  const hits = await searchSimilarImages(prisma, {
    modelVersion: version,
    query: searchQuery,
    k,
    filters: normalised,
    excludePatientId: excludeSamePatient && query ? query.patient.id : null,
  });
  const hitIds = hits.map((hit) => hit.imageId);
  const [cases, attention] = await Promise.all([loadCases(prisma, hitIds), findAttentionMaps(prisma, hitIds, version)]);
  return {
    query,
    queryAttention,
    modelVersion: version,
    hits: hits.map((hit, index) => ({ rank: index + 1, similarity: hit.similarity, case: cases.get(hit.imageId)!, attention: attention.get(hit.imageId) ?? null })),
  };
}
