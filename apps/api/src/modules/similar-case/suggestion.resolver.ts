import 'reflect-metadata';
import { Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import type { RequestContext } from '../../context.js';
import type { SimilarCases } from './similar-case.service.js';
import { SimilarCasesResult } from './similar-case.type.js';
import { suggestGrade } from './suggest-grade.service.js';
import { GradeSuggestion } from './suggestion.type.js';

@Resolver(() => SimilarCasesResult)
export class SuggestionResolver {
  // Computed (and logged) only when asked for: a search that does not select it pays nothing. The search itself
  // was authorised and audited by similarCases, whose result this is.
  @FieldResolver(() => GradeSuggestion, { description: 'The suggested grade (CBR reuse) from the nearest graded cases, calibrated for this model version, with the hits’ grades and outcomes. Computed and logged for monitoring when selected.' })
  suggestion(@Root() result: SimilarCases, @Ctx() context: RequestContext) {
    return suggestGrade({ prisma: context.db.prisma, search: result, reuse: context.reuseCalibration, subject: context.viewer.subject });
  }
}
