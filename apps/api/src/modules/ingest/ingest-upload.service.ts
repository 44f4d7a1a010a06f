// ingestCase: an uploaded photograph plus what the clinician entered becomes an ImportRecord and goes through the
// same ingestCase service as every importer (one transaction, idempotent by content hash). The record's checks
// (codes, dates, grades) run there, before the duplicate check, so a repeated save with bad input is still refused.
// The photograph already stored for another patient or eye is CONFLICT, with the stored case's id in `caseId`.
import { AppError, badInput, notFound } from '../../errors.js';
import type { Embedder } from '../../embedding/embedder.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { AntiVegfAgent, DiabetesType, Eye, Laterality, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import type { ImportRecord } from '../../importers/import-record.js';
import { loadCases } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';
import { requireEmbedder } from '../upload/upload.service.js';
import type { OwnUploads } from '../upload/upload.store.js';
import { requireIdentifierSystem, requireIdentifierValue } from '../../auth/identifiers.js';
import { requireGraderName } from '../common/validation.js';
import { requireIdentifier } from '../ehr-link/ehr-link.service.js';
import { linkUploadSuggestions } from '../revise/revise.service.js';
import { ingestCase } from './ingest.service.js';

export type IngestUploadInput = {
  uploadToken: string;
  dataset: string;
  patient: { mrn: string; mrnSystem: string; birthYear?: number | null; sex?: Sex | null; diabetesType?: DiabetesType | null };
  visitDate: string;
  eye: Eye;
  grading?: { drGrade: number; maculopathy?: boolean | null; macularEdemaRisk?: number | null; grader?: string | null } | null;
  diagnoses: { icd10Code: string; text: string; eye: Laterality; date: string }[];
  treatments: { type: TreatmentType; agent?: AntiVegfAgent | null; eye: Laterality; date: string; notes?: string | null }[];
  studyIdentifiers?: { system: string; value: string }[];
};

/** CONFLICT when one of the identifiers already points to a photograph other than these bytes' (nothing written). */
async function checkStudyIdentifiers(prisma: PrismaClient, identifiers: { system: string; value: string }[], contentHash: string): Promise<void> {
  for (const { system, value } of identifiers) {
    const link = await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { imageId: true, patientId: true, image: { select: { contentHash: true } } } });
    if (link && link.image?.contentHash !== contentHash) {
      throw new AppError('CONFLICT', `The identifier ${value} in system ${system} already points to ${link.imageId ? `case ${link.imageId}` : `patient ${link.patientId}`}`, {
        field: 'studyIdentifiers',
        linkedCaseId: link.imageId,
        linkedPatientId: link.patientId,
      });
    }
  }
}

export async function ingestUploadedCase({
  prisma,
  embedder,
  uploads,
  input,
}: {
  prisma: PrismaClient;
  embedder: Embedder | null;
  uploads: OwnUploads;
  input: IngestUploadInput;
}): Promise<{ status: 'ADDED' | 'DUPLICATE'; case: Case }> {
  const model = requireEmbedder(embedder);
  const upload = await uploads.getWithBytes(input.uploadToken);
  if (!upload) throw notFound('The upload token is unknown or expired; upload the photograph again', { field: 'uploadToken' });
  const birthYear = input.patient.birthYear;
  if (birthYear != null && (!Number.isInteger(birthYear) || birthYear < 1900 || birthYear > new Date().getUTCFullYear())) {
    throw badInput(`patient.birthYear must be a year from 1900 to this year, got ${birthYear}`, { field: 'patient.birthYear' });
  }
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(input.dataset)) throw badInput('dataset must be 1-63 lower-case letters, digits or dashes', { field: 'dataset' });
  // The patient's MRN is a FHIR Identifier like any other: the same checks as upsertPatient's.
  const mrnSystem = requireIdentifierSystem(input.patient.mrnSystem, 'patient.mrnSystem');
  const mrn = requireIdentifierValue(input.patient.mrn.trim(), 'patient.mrn');
  const grader = requireGraderName(input.grading?.grader, 'grading.grader');
  const studyIdentifiers = (input.studyIdentifiers ?? []).map((identifier, index) => requireIdentifier(identifier, `studyIdentifiers[${index}]`));
  await checkStudyIdentifiers(prisma, studyIdentifiers, upload.contentHash);
  const record: ImportRecord = {
    row: 1,
    dataset: { name: input.dataset, description: null, isSynthetic: false },
    patient: {
      mrn,
      mrnSystem,
      isPerImagePatient: false,
      birthYear: input.patient.birthYear ?? null,
      sex: input.patient.sex ?? null,
      diabetesType: input.patient.diabetesType ?? null,
    },
    visitDate: input.visitDate,
    isVisitDateKnown: true,
    eye: input.eye,
    isEyeAssumed: false,
    image: { kind: 'bytes', bytes: upload.bytes, name: `upload ${upload.contentHash.slice(0, 12)}`, mimeType: upload.mimeType },
    quality: 'UNKNOWN',
    grading: input.grading
      ? {
          drGrade: input.grading.drGrade,
          maculopathy: input.grading.maculopathy ?? null,
          macularEdemaRisk: input.grading.macularEdemaRisk ?? null,
          source: 'CLINICIAN',
          grader,
          originalScale: null,
          originalValue: null,
          gradedOn: input.visitDate,
        }
      : null,
    diagnoses: input.diagnoses.map((diagnosis) => ({ icd10Code: diagnosis.icd10Code, text: diagnosis.text, eye: diagnosis.eye, diagnosedOn: diagnosis.date })),
    treatments: input.treatments.map((treatment) => ({ type: treatment.type, agent: treatment.agent ?? null, eye: treatment.eye, performedOn: treatment.date, notes: treatment.notes ?? null })),
    externalLinks: studyIdentifiers.map(({ system, value }) => ({ system, identifier: value, target: 'image' as const })),
  };
  const result = await ingestCase({ prisma, embedder: model, record });
  if (result.status === 'rejected') throw badInput(`The photograph was rejected: ${result.message}`, { reason: result.code });
  if (result.status === 'conflict') throw new AppError('CONFLICT', result.message, { caseId: result.imageId, field: 'uploadToken' });
  // Retain: the suggestions shown for this upload now belong to the stored case (and its grading revises them).
  await linkUploadSuggestions({ prisma, contentHash: upload.contentHash, subject: upload.owner, imageId: result.imageId });
  const stored = (await loadCases(prisma, [result.imageId])).get(result.imageId);
  if (!stored) throw new AppError('INTERNAL_SERVER_ERROR', `Case ${result.imageId} vanished after ingestion`);
  return { status: result.status === 'added' ? 'ADDED' : 'DUPLICATE', case: stored };
}
