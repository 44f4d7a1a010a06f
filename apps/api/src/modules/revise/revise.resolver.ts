import 'reflect-metadata';
import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { LocalDateResolver } from 'graphql-scalars';
import { audited } from '../../audit/audited.js';
import type { RequestContext } from '../../context.js';
import { reviseCase } from './revise.service.js';
import { ReviseCaseInput, ReviseCaseResult, SuggestionMonitoring } from './revise.type.js';
import { computeSuggestionMonitoring } from './suggestion-monitoring.service.js';

@Resolver()
export class ReviseResolver {
  @Mutation(() => ReviseCaseResult, { description: 'The clinician confirms or corrects grade, maculopathy and diagnosis of a photograph (CBR revise): a CLINICIAN grading by the signed-in user, which becomes the reference grade, compared with the suggestion shown. Roles: clinician, admin.' })
  reviseCase(@Ctx() context: RequestContext, @Arg('input', () => ReviseCaseInput) input: ReviseCaseInput) {
    return audited(
      context,
      { operation: 'revise-case', details: { caseId: input.caseId, drGrade: input.drGrade, suggestionId: input.suggestionId ?? null } },
      () => reviseCase({ prisma: context.db.prisma, input, clinician: context.viewer.subject }),
      (result) => ({ patientIds: [result.case.patient.id], imageIds: [result.case.id], details: { gradingId: result.gradingId, agrees: result.suggestion?.agrees ?? null } }),
    );
  }

  @Query(() => SuggestionMonitoring, { description: 'Agreement rate and confusion matrix of grade suggestions against clinicians’ revisions, by month. Roles: admin.' })
  suggestionMonitoring(
    @Ctx() context: RequestContext,
    @Arg('from', () => LocalDateResolver, { nullable: true }) from?: string | null,
    @Arg('to', () => LocalDateResolver, { nullable: true }) to?: string | null,
  ) {
    return audited(context, { operation: 'read-suggestion-monitoring', details: { from: from ?? null, to: to ?? null } }, () => computeSuggestionMonitoring({ prisma: context.db.prisma, from, to }));
  }
}
