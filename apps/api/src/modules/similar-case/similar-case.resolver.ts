import 'reflect-metadata';
import { Arg, Ctx, Info, Query, Resolver } from 'type-graphql';
import type { GraphQLResolveInfo } from 'graphql';
import { audited } from '../../audit/audited.js';
import type { RequestContext } from '../../context.js';
import { SimilarCasesInput } from './similar-case.input.js';
import type { AttentionMap } from '../../search/similar-images.js';
import { findSimilarCases, resolveSearchModelVersion } from './similar-case.service.js';
import { recordSearch } from './feedback.service.js';
import { SimilarCasesResult } from './similar-case.type.js';
import { selectsField } from '../../graphql/selection.js';
import { voteDepthFor } from './suggest-grade.service.js';
import { ALL_CASE_PARTS, type CaseParts } from '../case/case.service.js';

type Selection = Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>;

/**
 * The parts of the query's and the hits' cases this query reads (case.service.ts, loadCases): a search whose
 * selection shows no diagnoses, say, loads none. The grade suggestion summarises the hits' follow-up, so selecting
 * it loads every part.
 */
export function casePartsSelected(info: Selection): CaseParts {
  if (selectsField(info, 'suggestion')) return ALL_CASE_PARTS;
  const reads = (...path: [string, ...string[]]) => selectsField(info, 'hits', 'case', ...path) || selectsField(info, 'query', ...path);
  return {
    followUpGradings: reads('followUp', 'gradings'),
    diagnoses: reads('diagnoses') || reads('followUp', 'diagnoses'),
    treatments: reads('treatments') || reads('followUp', 'treatments'),
    hba1cReadings: reads('patient', 'hba1cReadings'),
    externalLinks: reads('patient', 'externalLinks'),
  };
}

@Resolver()
export class SimilarCaseResolver {
  @Query(() => SimilarCasesResult, {
    description:
      'The k cases most similar to a photograph by cosine similarity, filtered, best first. By default an approximate search (one vector index per reference grade: HNSW, or IVFFlat after `npm run vector-index -- rebuild`): every hit matches the filters and k hits come back whenever k cases match, but the hits are not guaranteed to be the exact top k; recall@10 against exact search is measured, not guaranteed: at least 0.97 for every filter benchmarked at 100k cases; at a million, 0.98 for every filter with the rebuilt IVFFlat indexes (0.96 with HNSW), with single queries as low as 0.6 (bench/README.md). Set input.exact for the exact top k.',
    complexity: ({ args, childComplexity }) => Math.min(Number(args.input?.k) || 1, 100) * childComplexity,
  })
  async similarCases(@Ctx() context: RequestContext, @Arg('input', () => SimilarCasesInput) input: SimilarCasesInput, @Info() info: GraphQLResolveInfo) {
    const details = { by: input.imageId ? 'case' : 'upload', imageId: input.imageId ?? null, k: input.k, filters: input.filters ?? null, excludeSamePatient: input.excludeSamePatient, region: input.region ?? null, exact: input.exact };
    const result = await audited(
      context,
      { operation: 'search', details },
      async () => {
        // The search on a read replica when there is one (db/read-routing.ts; the viewer's own saved cases are
        // always found); its record, which feedback must name, on the primary.
        const found = await context.read(async (prisma) => findSimilarCases({
          prisma,
          uploads: context.uploads,
          imageId: input.imageId,
          uploadToken: input.uploadToken,
          k: input.k,
          filters: input.filters,
          excludeSamePatient: input.excludeSamePatient,
          exact: input.exact,
          modelVersion: await resolveSearchModelVersion(prisma, context.searchModelVersion, context.embedder?.metadata.modelVersion),
          voteDepth: selectsField(info, 'suggestion') ? voteDepthFor(context.reuseCalibration) : 0,
          region: input.region ?? null,
          embedder: context.embedder,
          hitAttention: selectsField(info, 'hits', 'attention'),
          caseParts: casePartsSelected(info),
        }));
        // Recorded for relevance feedback only when the caller asks for its id, the one thing feedback needs: a
        // search whose id nobody can know could never be marked (the audit row records every search anyway).
        if (!selectsField(info, 'searchId')) return { ...found, searchId: null };
        return recordSearch({ prisma: context.db.prisma, viewer: context.viewer, result: found, k: input.k, excludeSamePatient: input.excludeSamePatient });
      },
      (found) => ({
        patientIds: [...(found.query ? [found.query.patient.id] : []), ...found.hits.map((hit) => hit.case.patient.id)],
        imageIds: [...(found.query ? [found.query.id] : []), ...found.hits.map((hit) => hit.case.id)],
        details: { returned: found.hits.map((hit) => hit.case.id), modelVersion: found.modelVersion, searchId: found.searchId },
      }),
    );
    const toMap = (map: AttentionMap | null) => (map ? { width: map.width, height: map.height, values: Array.from(map.values) } : null);
    return { ...result, queryAttention: toMap(result.queryAttention), hits: result.hits.map((hit) => ({ ...hit, attention: toMap(hit.attention) })) };
  }
}
