import 'reflect-metadata';
import { Arg, Ctx, Field, InputType, Int, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import type { RequestContext } from '../../context.js';
import { computeCohortStatistics } from './cohort.service.js';
import { CohortFilterInput, CohortStatistics, SurvivalStratum, WorseningEvent } from './cohort.type.js';

@InputType()
export class WorseningInput {
  @Field(() => WorseningEvent) event!: WorseningEvent;
  @Field(() => SurvivalStratum, { nullable: true }) stratifyBy?: SurvivalStratum | null;
}

@Resolver()
export class CohortResolver {
  @Query(() => CohortStatistics, {
    description:
      'Aggregate statistics of a cohort of eyes, de-identified and under disclosure control. COHORT_TOO_SMALL under k patients, EMPTY_COHORT when nothing matches, COHORT_OVERLAP when it differs from one of your recent cohorts by fewer than k patients. Roles: researcher, admin.',
    complexity: 50,
  })
  cohortStatistics(
    @Ctx() context: RequestContext,
    @Arg('filter', () => CohortFilterInput, { defaultValue: {} }) filter: CohortFilterInput,
    @Arg('k', () => Int, { nullable: true, description: 'Minimum cell size; at least the deployment’s (default 5).' }) k?: number | null,
    @Arg('timeToWorsening', () => WorseningInput, { nullable: true }) worsening?: WorseningInput | null,
  ) {
    return audited(
      context,
      { operation: 'cohort-statistics', details: { filter: { ...filter }, k: k ?? null, timeToWorsening: worsening ? { ...worsening } : null } },
      () => computeCohortStatistics({ prisma: context.db.prisma, subject: context.viewer.subject, filter: { ...filter }, k, worsening, settings: context.cohortSettings }),
      (statistics) => ({ details: { patients: statistics.patients, eyes: statistics.eyes, minimumCellSize: statistics.minimumCellSize } }),
    );
  }
}
