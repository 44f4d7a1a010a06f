import { AppError, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { Eye, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { findNewestModelVersion, hasEmbedding, searchSimilarImages, type SimilarImageFilters } from '../../search/similar-images.js';
import { loadCases } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';
import { badInput } from '../../errors.js';
import { requireIcdrGrade, requireIntegerInRange, requireUuid } from '../common/validation.js';

export const MAX_K = 100;

export type CaseFilters = {
  drGrades?: number[] | null;
  eye?: Eye | null;
  sex?: Sex | null;
  ageMin?: number | null;
  ageMax?: number | null;
  treatmentTypes?: TreatmentType[] | null;
};

export type SimilarCases = { query: Case; modelVersion: string; hits: { rank: number; similarity: number; case: Case }[] };

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
 * The k cases most similar to an existing photograph, under the filters, compared on one model version only:
 * the configured one, else the newest in the database.
 */
export async function findSimilarCases({
  prisma,
  imageId,
  k,
  filters,
  excludeSamePatient,
  modelVersion,
}: {
  prisma: PrismaClient;
  imageId: string;
  k: number;
  filters?: CaseFilters | null;
  excludeSamePatient: boolean;
  modelVersion?: string;
}): Promise<SimilarCases> {
  const queryImageId = requireUuid(imageId, 'imageId');
  requireIntegerInRange(k, 'k', 1, MAX_K);
  const normalised = normaliseFilters(filters);

  const query = (await loadCases(prisma, [queryImageId])).get(queryImageId);
  if (!query) throw notFound(`No case with id ${queryImageId}`, { field: 'imageId' });
  const version = modelVersion ?? (await findNewestModelVersion(prisma));
  if (!version || !(await hasEmbedding(prisma, queryImageId, version))) {
    throw new AppError('EMBEDDING_UNAVAILABLE', `Case ${queryImageId} has no embedding for model version ${version ?? '(none)'} yet; re-embed it first`, { field: 'imageId' });
  }

  const hits = await searchSimilarImages(prisma, {
    modelVersion: version,
    queryImageId,
    k,
    filters: normalised,
    excludePatientId: excludeSamePatient ? query.patient.id : null,
  });
  const cases = await loadCases(prisma, hits.map((hit) => hit.imageId));
  return {
    query,
    modelVersion: version,
    hits: hits.map((hit, index) => ({ rank: index + 1, similarity: hit.similarity, case: cases.get(hit.imageId)! })),
  };
}
