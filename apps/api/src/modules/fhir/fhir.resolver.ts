import 'reflect-metadata';
import type { Bundle, FhirResource } from 'fhir/r4.js';
import { JSONObjectResolver } from 'graphql-scalars';
import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import { authorizePatientAccess } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { getCaseOrThrow } from '../case/case.service.js';
import { caseToFhirBundle } from './case-bundle.js';

@Resolver()
export class FhirResolver {
  @Query(() => JSONObjectResolver, {
    description:
      'A case (photograph id) as a FHIR R4 Bundle of type collection: Patient, Encounter, ImagingStudy, the DR severity Observation, HbA1c Observations, Condition, Procedure, MedicationAdministration (docs/FHIR-MAPPING.md). No photograph bytes. NOT_FOUND when absent. Roles: clinician, admin; ehr-service for patients of its identifier system.',
  })
  caseFhirBundle(@Ctx() context: RequestContext, @Arg('id', () => ID) id: string): Promise<Bundle<FhirResource>> {
    // The same data as case(id), so the same policy: one audited `read-case`, then the patient check.
    return audited(
      context,
      { operation: 'read-case', details: { caseId: id, format: 'fhir-r4-bundle' } },
      async () => {
        const found = await context.read((prisma) => getCaseOrThrow({ prisma, caseId: id }));
        authorizePatientAccess(context.viewer, found.patient);
        return { found, bundle: caseToFhirBundle(found, { exportedAt: new Date() }) };
      },
      ({ found }) => ({ patientIds: [found.patient.id], imageIds: [found.id] }),
    ).then(({ bundle }) => bundle);
  }
}
