import { AppError, badInput, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { Eye, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { findAttentionMaps, findNewestModelVersion, findStoredPhotograph, hasAnyEmbedding, searchSimilarImages, searchSimilarImagesWithVoters, type AttentionMap, type SimilarImageFilters, type SimilarImageHit, type SimilarImageSearch } from '../../search/similar-images.js';
import { ALL_CASE_PARTS, loadCases, type CaseParts } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';
import { requireIcdrGrade, requireIntegerInRange, requireUuid } from '../common/validation.js';
import type { OwnUploads } from '../upload/upload.store.js';
import type { Embedder } from '../../embedding/embedder.js';
import type { Region } from '../../embedding/regions.js';
import { computeRegionQueryVector, featuresOfStoredPhotograph, featuresOfUpload, requireRegion, requireRegionModel } from './region.service.js';

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
  /** What the reuse step (suggest-grade.service.ts) needs to know about this search; not a GraphQL field. */
  reuseContext: ReuseSearchContext;
  /** What was searched with, for the search record (relevance feedback): feedback.service.ts recordSearch. */
  searched: {
    queryImageId: string | null;
    queryContentHash: string;
    /** The vector searched with: the region descriptor, or an upload's embedding; null: the stored case's embedding. */
    queryVector: Float32Array | null;
    region: Region | null;
    filters: SimilarImageFilters;
    excludePatientId: string | null;
  };
};

export type ReuseSearchContext = {
  modelVersion: string;
  query: SimilarImageSearch['query'];
  queryImageId: string | null;
  uploadContentHash: string | null;
  /** The patient a vote must leave out: the stored query's own (always, whatever excludeSamePatient says). */
  queryPatientId: string | null;
  /** Whether the hits are the plain neighbourhood: no filter, and the query patient left out. */
  isPlainNeighbourhood: boolean;
  searchHits: SimilarImageHit[];
  /** The nearest graded cases of the plain neighbourhood, found by the search itself when asked (voteDepth). */
  voters: SimilarImageHit[] | null;
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

const isFiltered = (filters: SimilarImageFilters) =>
  filters.drGrades.length > 0 || filters.eye !== null || filters.sex !== null || filters.ageMin !== null || filters.ageMax !== null || filters.treatmentTypes.length > 0;

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
  exact = false,
  modelVersion,
  voteDepth = 0,
  region,
  embedder,
  hitAttention = true,
  caseParts = ALL_CASE_PARTS,
}: {
  prisma: PrismaClient;
  uploads: OwnUploads;
  imageId?: string | null;
  uploadToken?: string | null;
  k: number;
  filters?: CaseFilters | null;
  excludeSamePatient: boolean;
  /** The exact top k (every matching row ranked) instead of the approximate index search. */
  exact?: boolean;
  modelVersion: string | null;
  /** When the reuse step will vote: find this many graded neighbours of the plain neighbourhood in the same scan. */
  voteDepth?: number;
  /** Search by this rectangle of the query photograph (fractions of the model's crop) instead of the whole. */
  region?: Region | null;
  /** Needed for a region: the feature map comes from the loaded model. */
  embedder?: Embedder | null;
  /** Load the hits' attention maps (false when nobody asked for them: each hit's is then null). */
  hitAttention?: boolean;
  /** What of the query's and the hits' cases to load (all unless the caller knows what is read: case.service.ts). */
  caseParts?: CaseParts;
}): Promise<SimilarCases> {
  if ((imageId ? 1 : 0) + (uploadToken ? 1 : 0) !== 1) throw badInput('Give exactly one of imageId (a stored case) or uploadToken (from POST /uploads)', { field: 'imageId' });
  requireIntegerInRange(k, 'k', 1, MAX_K);
  const normalised = normaliseFilters(filters);
  const searchRegion = region ? requireRegion(region) : null;
  const regionModel = searchRegion ? requireRegionModel(embedder ?? null) : null;
  let regionVector: Float32Array | null = null;
  let queryContentHash: string;
  let uploadVector: Float32Array | null = null;

  // The stored photograph searched by (or whose bytes an upload repeats): its id and patient now, its case with the hits'.
  let queryPhotograph: { id: string; patientId: string } | null = null;
  let version: string;
  let queryAttention: AttentionMap | null = null;
  let searchQuery: Parameters<typeof searchSimilarImages>[1]['query'];
  // The photograph as a whole, whatever region is searched: what the grade suggestion votes from (its calibration
  // was fitted on whole photographs, and a grade is the whole photograph's).
  let wholeQuery: Parameters<typeof searchSimilarImages>[1]['query'];
  if (imageId) {
    const queryImageId = requireUuid(imageId, 'imageId');
    const stored = await findStoredPhotograph(prisma, queryImageId, modelVersion);
    if (!stored) throw notFound(`No case with id ${queryImageId}`, { field: 'imageId' });
    queryPhotograph = { id: queryImageId, patientId: stored.patientId };
    if (!modelVersion || !stored.embedded) {
      throw new AppError('EMBEDDING_UNAVAILABLE', `Case ${queryImageId} has no embedding for model version ${modelVersion ?? '(none)'} yet; run \`npm run reembed\``, { field: 'imageId' });
    }
    version = modelVersion;
    queryAttention = stored.attention;
    searchQuery = { imageId: queryImageId };
    wholeQuery = searchQuery;
    queryContentHash = stored.contentHash;
    if (regionModel && searchRegion) {
      if (regionModel.metadata.modelVersion !== version) {
        throw new AppError('EMBEDDING_UNAVAILABLE', `Search by region needs the loaded model ${regionModel.metadata.modelVersion}, but searches use ${version}`, { field: 'region' });
      }
      const features = await featuresOfStoredPhotograph(prisma, regionModel, queryImageId);
      regionVector = await computeRegionQueryVector(regionModel, features, searchRegion);
      searchQuery = { vector: regionVector, contentHash: queryContentHash };
    }
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
    wholeQuery = searchQuery;
    queryContentHash = upload.contentHash;
    uploadVector = upload.embedding;
    if (regionModel && searchRegion) {
      const features = await featuresOfUpload(uploads, uploadToken!);
      regionVector = await computeRegionQueryVector(regionModel, features, searchRegion);
      searchQuery = { vector: regionVector, contentHash: upload.contentHash };
    }
    // The same bytes stored already (saved earlier): that case is the query, as if searched by its id, so the
    // clinician is told the photograph is on file (it is never its own hit).
    const stored = await prisma.fundusImage.findUnique({ where: { contentHash: upload.contentHash }, select: { id: true, patientId: true } });
    if (stored) queryPhotograph = stored;
  }

  const excludePatientId = excludeSamePatient && queryPhotograph ? queryPhotograph.patientId : null;
  const search: SimilarImageSearch = { modelVersion: version, query: searchQuery, k, filters: normalised, excludePatientId, mode: exact ? 'EXACT' : 'APPROXIMATE' };
  // A region's hits are never the vote's neighbourhood: that is the whole photograph's.
  const isPlainNeighbourhood = !isFiltered(normalised) && (queryPhotograph === null || excludePatientId !== null) && searchRegion === null;
  let hits: SimilarImageHit[];
  let voters: SimilarImageHit[] | null = null;
  if (voteDepth > 0 && isPlainNeighbourhood) {
    // The vote's neighbourhood is the hits' own: one search deep enough for both (a larger LIMIT: a deeper top-N
    // sort in an exact scan, k = 15 instead of 10 from each grade's graph in the approximate one).
    const deeper = await searchSimilarImages(prisma, { ...search, k: Math.max(k, voteDepth) });
    const graded = deeper.filter((hit) => hit.grade !== null);
    voters = graded.length >= voteDepth ? graded.slice(0, voteDepth) : null;
    hits = deeper.slice(0, k);
  } else if (voteDepth > 0) {
    ({ hits, voters } = await searchSimilarImagesWithVoters(prisma, search, { count: voteDepth, excludePatientId: queryPhotograph?.patientId ?? null, query: wholeQuery }));
  } else {
    hits = await searchSimilarImages(prisma, search);
  }
  const hitIds = hits.map((hit) => hit.imageId);
  // One load for the query's case and the hits' (the query is never its own hit, but may share their patients).
  const [cases, attention] = await Promise.all([
    loadCases(prisma, queryPhotograph ? [queryPhotograph.id, ...hitIds] : hitIds, caseParts),
    hitAttention ? findAttentionMaps(prisma, hitIds, version) : new Map<string, AttentionMap>(),
  ]);
  const query = queryPhotograph ? (cases.get(queryPhotograph.id) ?? null) : null;
  return {
    query,
    queryAttention,
    modelVersion: version,
    hits: hits.map((hit, index) => ({ rank: index + 1, similarity: hit.similarity, case: cases.get(hit.imageId)!, attention: attention.get(hit.imageId) ?? null })),
    reuseContext: {
      modelVersion: version,
      query: wholeQuery,
      queryImageId: query?.id ?? null,
      // A region search of a stored case also searches by a vector; only an upload has no image id.
      uploadContentHash: query ? null : queryContentHash,
      queryPatientId: query?.patient.id ?? null,
      isPlainNeighbourhood,
      searchHits: hits,
      voters,
    },
    searched: { queryImageId: query?.id ?? null, queryContentHash, queryVector: regionVector ?? uploadVector, region: searchRegion, filters: normalised, excludePatientId },
  };
}
