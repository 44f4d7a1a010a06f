import 'reflect-metadata';
import { Arg, Ctx, Mutation, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import { authorizePatientAccess } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { IngestCaseInput, IngestCaseResult } from './ingest.input.js';
import { ingestUploadedCase } from './ingest-upload.service.js';

@Resolver()
export class IngestResolver {
  @Mutation(() => IngestCaseResult, { description: 'Stores an uploaded photograph with its records as a new case, embedded by the loaded model. Idempotent by content hash. Roles: clinician, admin; ehr-service within its identifier system.' })
  ingestCase(@Ctx() context: RequestContext, @Arg('input', () => IngestCaseInput) input: IngestCaseInput) {
    return audited(
      context,
      { operation: 'ingest', identifierSystems: [input.patient.mrnSystem, ...(input.studyIdentifiers ?? []).map((identifier) => identifier.system)], details: { dataset: input.dataset, mrnSystem: input.patient.mrnSystem, eye: input.eye, visitDate: input.visitDate } },
      async () => {
        const result = await ingestUploadedCase({ prisma: context.db.prisma, embedder: context.embedder, uploads: context.uploads, input });
        // A DUPLICATE answers with the stored case: a system-bound credential sees it only if the patient is its own.
        authorizePatientAccess(context.viewer, result.case.patient);
        return result;
      },
      (result) => ({ patientIds: [result.case.patient.id], imageIds: [result.case.id], details: { status: result.status } }),
    );
  }
}
