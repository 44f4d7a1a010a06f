// Relevance feedback (issue 13, the CBR cycle's learning step): every answered search that selects its searchId is recorded with the vector
// it searched with and its hits; a clinician marks hits of that search relevant or not; the marks are stored as
// training pairs (query photograph by id or content hash, hit photograph, relevant, who, when, model version), the
// query is refined by Rocchio in the embedding space and the search re-run; admins export the pairs for the next
// model.
import { AppError, badInput, notFound } from '../../errors.js';
import type { Viewer } from '../../auth/policy.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { findAttentionMaps, searchSimilarImages, type SimilarImageFilters } from '../../search/similar-images.js';
import { findEmbeddings, findSearchRecord, insertSearchRecord } from '../../search/search-records.js';
import { formatCsvRow } from '../../embedding/dataset.js';
import { loadCases } from '../case/case.service.js';
import { requireUuid } from '../common/validation.js';
import { findSimilarCases, type SimilarCases } from './similar-case.service.js';

/**
 * Rocchio's weights: q' = ALPHA q + BETA mean(relevant) - GAMMA mean(not relevant), renormalised. Chosen on
 * validation patients by bench/cbr-feedback-region.mjs (models/results/cbr-feedback-region.json), reported on test
 * patients in bench/README.md.
 */
export const ROCCHIO = { alpha: 0.1, beta: 0.9, gamma: 0.75 } as const;
export const MAX_MARKS = 100;

export type RecordedSearch = SimilarCases & { searchId: string };

/** Writes the search as answered and returns the result with its id (feedback names it). */
export async function recordSearch({ prisma, viewer, result, k, excludeSamePatient, parentSearchId = null }: {
  prisma: PrismaClient;
  viewer: Viewer;
  result: SimilarCases;
  k: number;
  excludeSamePatient: boolean;
  parentSearchId?: string | null;
}): Promise<RecordedSearch> {
  const searchId = await insertSearchRecord(prisma, {
    subject: viewer.subject,
    role: viewer.role,
    modelVersion: result.modelVersion,
    queryImageId: result.searched.queryImageId,
    queryContentHash: result.searched.queryContentHash,
    queryVector: result.searched.queryVector,
    region: result.searched.region,
    parentSearchId,
    k,
    filters: result.searched.filters,
    excludeSamePatient,
    hitImageIds: result.hits.map((hit) => hit.case.id),
  });
  return { ...result, searchId };
}

/** findSimilarCases, then the search recorded under the viewer: what the similarCases query serves. */
export async function findAndRecordSimilarCases(options: Parameters<typeof findSimilarCases>[0] & { viewer: Viewer }): Promise<RecordedSearch> {
  const result = await findSimilarCases(options);
  return recordSearch({ prisma: options.prisma, viewer: options.viewer, result, k: options.k, excludeSamePatient: options.excludeSamePatient });
}

export type RelevanceMark = { caseId: string; relevant: boolean };

/** Rocchio's refined query (unit length); relevant/notRelevant may be empty. */
export function refineQuery(query: Float32Array, relevant: readonly Float32Array[], notRelevant: readonly Float32Array[], weights: { alpha: number; beta: number; gamma: number } = ROCCHIO): Float32Array {
  const refined = new Float32Array(query.length);
  for (let d = 0; d < query.length; d += 1) {
    let value = weights.alpha * query[d]!;
    if (relevant.length > 0) value += (weights.beta * relevant.reduce((sum, vector) => sum + vector[d]!, 0)) / relevant.length;
    if (notRelevant.length > 0) value -= (weights.gamma * notRelevant.reduce((sum, vector) => sum + vector[d]!, 0)) / notRelevant.length;
    refined[d] = value;
  }
  const norm = Math.hypot(...refined);
  if (!Number.isFinite(norm) || norm === 0) return Float32Array.from(query);
  return refined.map((value) => value / norm);
}

/**
 * Stores the marks on hits of one of the viewer's searches (a mark on a hit of another search is
 * BAD_USER_INPUT reason HIT_NOT_IN_RESULT, and nothing is written), then re-runs the search with the refined
 * query under the same filters, k and exclusion, recorded as a refinement of it.
 */
export async function submitRelevanceFeedback({ prisma, viewer, searchId, marks }: {
  prisma: PrismaClient;
  viewer: Viewer;
  searchId: string;
  marks: readonly RelevanceMark[];
}): Promise<{ recorded: number; refined: RecordedSearch; parentSearchId: string }> {
  const id = requireUuid(searchId, 'searchId');
  if (marks.length === 0) throw badInput('Give at least one mark', { field: 'marks' });
  if (marks.length > MAX_MARKS) throw badInput(`At most ${MAX_MARKS} marks at once`, { field: 'marks' });
  const caseIds = marks.map((mark, index) => requireUuid(mark.caseId, `marks[${index}].caseId`));
  const duplicate = caseIds.find((caseId, index) => caseIds.indexOf(caseId) !== index);
  if (duplicate) throw badInput(`Case ${duplicate} is marked twice; give one mark per hit`, { field: 'marks', reason: 'DUPLICATE_MARK' });
  const search = await findSearchRecord(prisma, id);
  // Another person's search reads as unknown, like another person's upload token.
  if (!search || search.subject !== viewer.subject) throw notFound(`No search with id ${id} of yours`, { field: 'searchId' });
  const notInResult = caseIds.filter((caseId) => !search.hitImageIds.includes(caseId));
  if (notInResult.length > 0) {
    throw badInput(`Case(s) ${notInResult.join(', ')} were not among the hits of search ${id}; mark only hits of that search`, { field: 'marks', reason: 'HIT_NOT_IN_RESULT', caseIds: notInResult });
  }
  const embeddings = await findEmbeddings(prisma, caseIds, search.modelVersion);
  const missing = caseIds.find((caseId) => !embeddings.has(caseId));
  if (missing) throw new AppError('EMBEDDING_UNAVAILABLE', `Case ${missing} has no embedding of model ${search.modelVersion} any more`, { field: 'marks' });
  const hashes = new Map((await prisma.fundusImage.findMany({ where: { id: { in: caseIds } }, select: { id: true, contentHash: true } })).map((image) => [image.id, image.contentHash]));

  await prisma.$transaction(
    marks.map((mark, index) => {
      const data = {
        relevant: mark.relevant,
        subject: viewer.subject,
        role: viewer.role,
        modelVersion: search.modelVersion,
        hitRank: search.hitImageIds.indexOf(caseIds[index]!) + 1,
        markedAt: new Date(),
      };
      return prisma.relevanceFeedback.upsert({
        where: { searchId_hitImageId: { searchId: id, hitImageId: caseIds[index]! } },
        create: { ...data, searchId: id, hitImageId: caseIds[index]!, hitContentHash: hashes.get(caseIds[index]!)!, queryImageId: search.queryImageId, queryContentHash: search.queryContentHash },
        update: data,
      });
    }),
  );

  const refinedVector = refineQuery(
    search.queryVector,
    marks.filter((mark) => mark.relevant).map((mark) => embeddings.get(mark.caseId)!),
    marks.filter((mark) => !mark.relevant).map((mark) => embeddings.get(mark.caseId)!),
  );
  const filters = search.filters as SimilarImageFilters;
  const excludePatientId = search.excludeSamePatient ? search.queryPatientId : null;
  const hits = await searchSimilarImages(prisma, {
    modelVersion: search.modelVersion,
    query: { vector: refinedVector, contentHash: search.queryContentHash },
    k: search.k,
    filters,
    excludePatientId,
  });
  const ids = [search.queryImageId, ...hits.map((hit) => hit.imageId)].filter((value): value is string => value !== null);
  const [cases, attention] = await Promise.all([loadCases(prisma, ids), findAttentionMaps(prisma, ids, search.modelVersion)]);
  const result: SimilarCases = {
    query: search.queryImageId ? cases.get(search.queryImageId) ?? null : null,
    queryAttention: search.queryImageId ? attention.get(search.queryImageId) ?? null : null,
    modelVersion: search.modelVersion,
    hits: hits.map((hit, index) => ({ rank: index + 1, similarity: hit.similarity, case: cases.get(hit.imageId)!, attention: attention.get(hit.imageId) ?? null })),
    // A grade suggestion on the refined result is still about the query photograph: it votes with the original
    // query vector's own neighbourhood (a second search, suggest-grade.service.ts findVoters), not the refined one.
    reuseContext: {
      modelVersion: search.modelVersion,
      query: { vector: search.queryVector, contentHash: search.queryContentHash },
      queryImageId: search.queryImageId,
      uploadContentHash: search.queryImageId ? null : search.queryContentHash,
      queryPatientId: search.queryPatientId,
      isPlainNeighbourhood: false,
      searchHits: hits,
      voters: null,
    },
    searched: {
      queryImageId: search.queryImageId,
      queryContentHash: search.queryContentHash,
      queryVector: refinedVector,
      region: search.region as SimilarCases['searched']['region'],
      filters,
      excludePatientId,
    },
  };
  const refined = await recordSearch({ prisma, viewer, result, k: search.k, excludeSamePatient: search.excludeSamePatient, parentSearchId: id });
  return { recorded: marks.length, refined, parentSearchId: id };
}

export type FeedbackExportFormat = 'CSV' | 'JSON';

export const FEEDBACK_EXPORT_COLUMNS = [
  'search_id', 'query_image_id', 'query_content_hash', 'hit_image_id', 'hit_content_hash', 'hit_rank', 'relevant',
  'subject', 'role', 'model_version', 'marked_at', 'search_region',
] as const;

export type FeedbackExportRow = Record<(typeof FEEDBACK_EXPORT_COLUMNS)[number], string | number | boolean | null>;

/** Every training pair marked in [from, to), oldest first, as CSV (header + rows) or JSON (an array of objects). */
export async function exportRelevanceFeedback({ prisma, format, from, to }: { prisma: PrismaClient; format: FeedbackExportFormat; from?: Date | null; to?: Date | null }): Promise<{ rows: number; content: string }> {
  if (from && to && from >= to) throw badInput('from must be before to', { field: 'from' });
  const marks = await prisma.relevanceFeedback.findMany({
    where: { markedAt: { ...(from ? { gte: from } : {}), ...(to ? { lt: to } : {}) } },
    orderBy: [{ markedAt: 'asc' }, { id: 'asc' }],
    include: { search: { select: { region: true } } },
  });
  const rows: FeedbackExportRow[] = marks.map((mark) => ({
    search_id: mark.searchId,
    query_image_id: mark.queryImageId,
    query_content_hash: mark.queryContentHash,
    hit_image_id: mark.hitImageId,
    hit_content_hash: mark.hitContentHash,
    hit_rank: mark.hitRank,
    relevant: mark.relevant,
    subject: mark.subject,
    role: mark.role,
    model_version: mark.modelVersion,
    marked_at: mark.markedAt.toISOString(),
    search_region: mark.search.region ? JSON.stringify(mark.search.region) : null,
  }));
  const content = format === 'JSON'
    ? JSON.stringify(rows)
    : [formatCsvRow(FEEDBACK_EXPORT_COLUMNS), ...rows.map((row) => formatCsvRow(FEEDBACK_EXPORT_COLUMNS.map((column) => row[column] as string | number | null)))].join('\n') + '\n';
  return { rows: rows.length, content };
}
