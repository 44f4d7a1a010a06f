import 'reflect-metadata';
import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../../context.js';
import { getCaseOrThrow } from './case.service.js';
import { Case } from './case.type.js';

@Resolver(() => Case)
export class CaseResolver {
  @Query(() => Case, { description: 'A photograph with its patient, gradings, diagnoses and treatments. NOT_FOUND when absent.' })
  case(@Ctx() context: RequestContext, @Arg('id', () => ID) id: string) {
    return getCaseOrThrow({ prisma: context.db.prisma, caseId: id });
  }
}
