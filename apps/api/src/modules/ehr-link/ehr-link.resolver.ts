import 'reflect-metadata';
import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import { authorizePatientAccess } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { loadCases } from '../case/case.service.js';
import { isUuid } from '../common/validation.js';
import { Case, Patient } from '../case/case.type.js';
import { findCaseByExternalId, findPatientByIdentifier, linkCase, recordGrading, unlinkCase, upsertPatient } from './ehr-link.service.js';
import { DemographicsInput, IdentifierInput, LinkCaseResult, RecordGradingInput, UpsertPatientResult } from './ehr-link.type.js';

const systems = (...identifiers: { system: string }[]) => identifiers.map((identifier) => identifier.system.trim());

@Resolver()
export class EhrLinkResolver {
  @Query(() => Patient, { description: 'A patient by an identifier of theirs: MRN (system + value) or a linked EHR id. Roles: clinician, admin; ehr-service for its own system.' })
  patientByIdentifier(@Ctx() context: RequestContext, @Arg('identifier', () => IdentifierInput) identifier: IdentifierInput) {
    return audited(
      context,
      { operation: 'read-patient', identifierSystems: systems(identifier), details: { identifier: { ...identifier } } },
      async () => {
        // urn:dicom:uid passes the system check for every credential, and FHIR imports link study UIDs to the
        // patient: the patient found must still carry the bound credential's system.
        const patient = await findPatientByIdentifier({ prisma: context.db.prisma, identifier });
        authorizePatientAccess(context.viewer, patient);
        return patient;
      },
      (patient) => ({ patientIds: [patient.id] }),
    );
  }

  @Query(() => Case, { description: 'A case by an identifier linked to its photograph (Study Instance UID under urn:dicom:uid, an accession number, the EHR id).' })
  caseByExternalId(@Ctx() context: RequestContext, @Arg('identifier', () => IdentifierInput) identifier: IdentifierInput) {
    return audited(
      context,
      { operation: 'read-case', identifierSystems: systems(identifier), details: { identifier: { ...identifier } } },
      async () => {
        const found = await findCaseByExternalId({ prisma: context.db.prisma, identifier });
        authorizePatientAccess(context.viewer, found.patient);
        return found;
      },
      (found) => ({ patientIds: [found.patient.id], imageIds: [found.id] }),
    );
  }

  @Mutation(() => UpsertPatientResult, { description: 'Creates the patient with this MRN or updates the demographics given (fields left out keep their values). Roles: ehr-service (its own system), admin.' })
  upsertPatient(
    @Ctx() context: RequestContext,
    @Arg('identifier', () => IdentifierInput) identifier: IdentifierInput,
    @Arg('demographics', () => DemographicsInput, { defaultValue: {} }) demographics: DemographicsInput,
    @Arg('dataset', () => String, { defaultValue: 'clinic' }) dataset: string,
  ) {
    return audited(
      context,
      { operation: 'write-patient', identifierSystems: systems(identifier), details: { identifier: { ...identifier }, dataset } },
      () => upsertPatient({ prisma: context.db.prisma, identifier, demographics: { ...demographics }, dataset }),
      (result) => ({ patientIds: [result.patient.id], details: { status: result.status } }),
    );
  }

  @Mutation(() => LinkCaseResult, { description: 'Links an identifier (Study UID, accession number, EHR id) to a case. The same link twice: UNCHANGED; an identifier pointing elsewhere: CONFLICT. Roles: ehr-service, admin.' })
  linkCase(@Ctx() context: RequestContext, @Arg('caseId', () => String) caseId: string, @Arg('identifier', () => IdentifierInput) identifier: IdentifierInput) {
    return audited(
      context,
      { operation: 'link', identifierSystems: systems(identifier), details: { caseId, identifier: { ...identifier } } },
      async () => {
        const { prisma } = context.db;
        if (context.viewer.identifierSystem !== null) {
          const target = await findCaseForAccessCheck(prisma, caseId);
          if (target) authorizePatientAccess(context.viewer, target.patient);
        }
        return linkCase({ prisma, caseId, identifier });
      },
      (result) => ({ patientIds: [result.case.patient.id], imageIds: [result.case.id], details: { status: result.status } }),
    );
  }

  @Mutation(() => Case, { description: 'Removes the link of an identifier to a case. Roles: admin.' })
  unlinkCase(@Ctx() context: RequestContext, @Arg('identifier', () => IdentifierInput) identifier: IdentifierInput) {
    return audited(
      context,
      { operation: 'unlink', identifierSystems: systems(identifier), details: { identifier: { ...identifier } } },
      () => unlinkCase({ prisma: context.db.prisma, identifier }),
      (found) => ({ patientIds: [found.patient.id], imageIds: [found.id] }),
    );
  }

  @Mutation(() => Case, { description: "Records a grading of a case's photograph (source EHR for an ehr-service credential, CLINICIAN otherwise); it becomes the reference grade when it is the latest grading by date (today by default). Roles: clinician, ehr-service, admin." })
  recordGrading(@Ctx() context: RequestContext, @Arg('input', () => RecordGradingInput) input: RecordGradingInput) {
    return audited(
      context,
      { operation: 'write-grading', details: { caseId: input.caseId, drGrade: input.drGrade } },
      async () => {
        const { prisma } = context.db;
        if (context.viewer.identifierSystem !== null) {
          const target = await findCaseForAccessCheck(prisma, input.caseId);
          if (target) authorizePatientAccess(context.viewer, target.patient);
        }
        return recordGrading({ prisma, caseId: input.caseId, grading: input, source: context.viewer.role === 'ehr-service' ? 'EHR' : 'CLINICIAN' });
      },
      (found) => ({ patientIds: [found.patient.id], imageIds: [found.id] }),
    );
  }
}

/** The case's patient for a bound credential's check; null when the id is malformed or unknown (the service reports it). */
async function findCaseForAccessCheck(prisma: RequestContext['db']['prisma'], caseId: string) {
  if (!isUuid(caseId)) return null;
  return (await loadCases(prisma, [caseId])).get(caseId) ?? null;
}
