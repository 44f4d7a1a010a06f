import 'reflect-metadata';
import { Arg, Ctx, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import type { RequestContext } from '../../context.js';
import { SimilarCasesInput } from './similar-case.input.js';
import type { AttentionMap } from '../../search/similar-images.js';
import { findSimilarCases, resolveSearchModelVersion } from './similar-case.service.js';
import { SimilarCasesResult } from './similar-case.type.js';

@Resolver()
export class SimilarCaseResolver {
  @Query(() => SimilarCasesResult, {
    description: 'The k cases most similar to a photograph, filtered, best first (exact cosine search).',
    complexity: ({ args, childComplexity }) => Math.min(Number(args.input?.k) || 1, 100) * childComplexity,
  })
  async similarCases(@Ctx() context: RequestContext, @Arg('input', () => SimilarCasesInput) input: SimilarCasesInput) {
    const details = { by: input.imageId ? 'case' : 'upload', imageId: input.imageId ?? null, k: input.k, filters: input.filters ?? null, excludeSamePatient: input.excludeSamePatient };
    const result = await audited(
      context,
      { operation: 'search', details },
      // On a read replica when there is one (db/read-routing.ts); the viewer's own saved cases are always found.
      () => context.read(async (prisma) => findSimilarCases({
        prisma,
        uploads: context.uploads,
        imageId: input.imageId,
        uploadToken: input.uploadToken,
        k: input.k,
        filters: input.filters,
        excludeSamePatient: input.excludeSamePatient,
        modelVersion: await resolveSearchModelVersion(prisma, context.searchModelVersion, context.embedder?.metadata.modelVersion),
      })),
      (found) => ({
        patientIds: [...(found.query ? [found.query.patient.id] : []), ...found.hits.map((hit) => hit.case.patient.id)],
        imageIds: [...(found.query ? [found.query.id] : []), ...found.hits.map((hit) => hit.case.id)],
        details: { returned: found.hits.map((hit) => hit.case.id), modelVersion: found.modelVersion },
      }),
    );
    const toMap = (map: AttentionMap | null) => (map ? { width: map.width, height: map.height, values: Array.from(map.values) } : null);
    return { ...result, queryAttention: toMap(result.queryAttention), hits: result.hits.map((hit) => ({ ...hit, attention: toMap(hit.attention) })) };
  }
}
