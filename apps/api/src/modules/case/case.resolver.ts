import 'reflect-metadata';
import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import { authorizePatientAccess } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { getCaseOrThrow } from './case.service.js';
import { Case } from './case.type.js';

@Resolver(() => Case)
export class CaseResolver {
  @Query(() => Case, { description: 'A photograph with its patient, gradings, diagnoses and treatments. NOT_FOUND when absent. Roles: clinician, admin; ehr-service for patients of its identifier system.' })
  case(@Ctx() context: RequestContext, @Arg('id', () => ID) id: string) {
    return audited(
      context,
      { operation: 'read-case', details: { caseId: id } },
      async () => {
        const found = await context.read((prisma) => getCaseOrThrow({ prisma, caseId: id }));
        authorizePatientAccess(context.viewer, found.patient);
        return found;
      },
      (found) => ({ patientIds: [found.patient.id], imageIds: [found.id] }),
    );
  }
}
