import 'reflect-metadata';
import { Arg, Ctx, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../../context.js';
import { SimilarCasesInput } from './similar-case.input.js';
import { findSimilarCases } from './similar-case.service.js';
import { SimilarCasesResult } from './similar-case.type.js';

@Resolver()
export class SimilarCaseResolver {
  @Query(() => SimilarCasesResult, {
    description: 'The k cases most similar to a photograph, filtered, best first (exact cosine search).',
    complexity: ({ args, childComplexity }) => Math.min(Number(args.input?.k) || 1, 100) * childComplexity,
  })
  similarCases(@Ctx() context: RequestContext, @Arg('input', () => SimilarCasesInput) input: SimilarCasesInput) {
    return findSimilarCases({
      prisma: context.db.prisma,
      imageId: input.imageId,
      k: input.k,
      filters: input.filters,
      excludeSamePatient: input.excludeSamePatient,
      modelVersion: context.searchModelVersion,
    });
  }
}
