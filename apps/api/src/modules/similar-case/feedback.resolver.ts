import 'reflect-metadata';
import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import type { RequestContext } from '../../context.js';
import type { AttentionMap } from '../../search/similar-images.js';
import { exportRelevanceFeedback, submitRelevanceFeedback } from './feedback.service.js';
import {
  ExplainSimilarityInput,
  RelevanceFeedbackExport,
  RelevanceFeedbackExportInput,
  RelevanceFeedbackInput,
  RelevanceFeedbackResult,
  SimilarityExplanation,
} from './feedback.type.js';
import { explainSimilarity } from './region.service.js';

const toMap = (map: AttentionMap | null) => (map ? { width: map.width, height: map.height, values: Array.from(map.values) } : null);

@Resolver()
export class RelevanceFeedbackResolver {
  @Mutation(() => RelevanceFeedbackResult, {
    description: 'Marks hits of a search relevant or not (stored as training pairs), then re-runs it with the query refined by Rocchio.',
    complexity: ({ childComplexity }) => 100 * childComplexity,
  })
  async submitRelevanceFeedback(@Ctx() context: RequestContext, @Arg('input', () => RelevanceFeedbackInput) input: RelevanceFeedbackInput) {
    const details = { searchId: input.searchId, marks: input.marks.map((mark) => ({ caseId: mark.caseId, relevant: mark.relevant })) };
    const result = await audited(
      context,
      { operation: 'relevance-feedback', details },
      () => submitRelevanceFeedback({ prisma: context.db.prisma, viewer: context.viewer, searchId: input.searchId, marks: input.marks }),
      (done) => ({
        patientIds: done.refined.hits.map((hit) => hit.case.patient.id),
        imageIds: [...input.marks.map((mark) => mark.caseId), ...done.refined.hits.map((hit) => hit.case.id)],
        details: { recorded: done.recorded, refinedSearchId: done.refined.searchId, returned: done.refined.hits.map((hit) => hit.case.id) },
      }),
    );
    const refined = result.refined;
    return {
      recorded: result.recorded,
      markedSearchId: result.parentSearchId,
      refined: { ...refined, queryAttention: toMap(refined.queryAttention), hits: refined.hits.map((hit) => ({ ...hit, attention: toMap(hit.attention) })) },
    };
  }

  @Query(() => RelevanceFeedbackExport, { description: 'Relevance marks as training pairs (admins): CSV or JSON. The CLI twin is `npm run feedback:export`.' })
  async relevanceFeedbackExport(@Ctx() context: RequestContext, @Arg('input', () => RelevanceFeedbackExportInput, { nullable: true }) input?: RelevanceFeedbackExportInput | null) {
    const format = input?.format ?? 'CSV';
    const details = { format, from: input?.from?.toISOString() ?? null, to: input?.to?.toISOString() ?? null };
    const exported = await audited(
      context,
      { operation: 'export-feedback', details },
      () => exportRelevanceFeedback({ prisma: context.db.prisma, format, from: input?.from, to: input?.to }),
      (done) => ({ details: { rows: done.rows } }),
    );
    return { format, ...exported };
  }

  @Query(() => SimilarityExplanation, { description: 'Which regions of the query and of a hit correspond (feature correspondence): paired heat maps for the compare view.' })
  async explainSimilarity(@Ctx() context: RequestContext, @Arg('input', () => ExplainSimilarityInput) input: ExplainSimilarityInput) {
    const details = { by: input.imageId ? 'case' : 'upload', imageId: input.imageId ?? null, caseId: input.caseId };
    const explanation = await audited(
      context,
      { operation: 'explain-similarity', details },
      () => explainSimilarity({ prisma: context.db.prisma, embedder: context.embedder, uploads: context.uploads, imageId: input.imageId, uploadToken: input.uploadToken, caseId: input.caseId }),
      () => ({ imageIds: [...(input.imageId ? [input.imageId] : []), input.caseId] }),
    );
    return { ...explanation, queryMap: toMap(explanation.queryMap), hitMap: toMap(explanation.hitMap) };
  }
}
