// EHR linking: an EHR finds and links patients and studies by its own identifiers (FHIR Identifier system +
// value), creates or updates patients, and writes back gradings. Policy and audit are the resolver's
// (ehr-link.resolver.ts); these functions check input, keep every change to one transaction and answer
// CONFLICT without changing anything when an identifier already points elsewhere.
import { AppError, badInput, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { DiabetesType, Sex } from '../../generated/prisma/enums.js';
import { requireIdentifierSystem, requireIdentifierValue } from '../../auth/identifiers.js';
import { loadCases } from '../case/case.service.js';
import type { Case, Patient } from '../case/case.type.js';
import { requireGraderName, requireIcdrGrade, requireIntegerInRange, requireUuid } from '../common/validation.js';
import { getPatientsById } from '../patient/patient.service.js';

export type Identifier = { system: string; value: string };

export function requireIdentifier(identifier: Identifier, field: string): Identifier {
  return { system: requireIdentifierSystem(identifier.system, `${field}.system`), value: requireIdentifierValue(identifier.value, `${field}.value`) };
}

const conflict = (message: string, details: Record<string, unknown>) => new AppError('CONFLICT', message, details);

/** A patient by MRN (system + value) or by an external link of theirs; NOT_FOUND when neither exists. */
export async function findPatientByIdentifier({ prisma, identifier }: { prisma: PrismaClient; identifier: Identifier }): Promise<Patient> {
  const { system, value } = requireIdentifier(identifier, 'identifier');
  const byMrn = await prisma.patient.findUnique({ where: { mrnSystem_mrn: { mrnSystem: system, mrn: value } }, select: { id: true } });
  const id = byMrn?.id ?? (await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { patientId: true } }))?.patientId;
  if (!id) throw notFound(`No patient with identifier ${value} in system ${system}`, { field: 'identifier' });
  const [patient] = await getPatientsById(prisma, [id]);
  if (!patient) throw notFound(`No patient with identifier ${value} in system ${system}`, { field: 'identifier' });
  return patient;
}

/** A case by an identifier linked to its photograph: a DICOM Study Instance UID, an accession number, an EHR id. */
export async function findCaseByExternalId({ prisma, identifier }: { prisma: PrismaClient; identifier: Identifier }): Promise<Case> {
  const { system, value } = requireIdentifier(identifier, 'identifier');
  const link = await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { imageId: true } });
  const found = link?.imageId ? (await loadCases(prisma, [link.imageId])).get(link.imageId) : undefined;
  if (!found) throw notFound(`No case with identifier ${value} in system ${system}`, { field: 'identifier' });
  return found;
}

export type Demographics = { birthYear?: number | null; sex?: Sex | null; diabetesType?: DiabetesType | null; diabetesDiagnosisYear?: number | null };
export type UpsertStatus = 'CREATED' | 'UPDATED' | 'UNCHANGED';

function checkDemographics(demographics: Demographics, now: Date): void {
  const year = now.getUTCFullYear();
  const { birthYear, diabetesDiagnosisYear } = demographics;
  if (birthYear != null) requireIntegerInRange(birthYear, 'demographics.birthYear', 1900, year);
  if (diabetesDiagnosisYear != null) {
    requireIntegerInRange(diabetesDiagnosisYear, 'demographics.diabetesDiagnosisYear', 1900, year);
    if (birthYear != null && diabetesDiagnosisYear < birthYear) throw badInput(`demographics.diabetesDiagnosisYear (${diabetesDiagnosisYear}) is before the birth year (${birthYear})`, { field: 'demographics.diabetesDiagnosisYear' });
  }
}

/**
 * Creates the patient with this MRN (identifier system + value) or updates the demographics given; a field left
 * out keeps its stored value. UNCHANGED when nothing differs (nothing is written).
 */
export async function upsertPatient({
  prisma,
  identifier,
  demographics,
  dataset,
  now = new Date(),
}: {
  prisma: PrismaClient;
  identifier: Identifier;
  demographics: Demographics;
  dataset: string;
  now?: Date;
}): Promise<{ status: UpsertStatus; patient: Patient }> {
  const { system, value } = requireIdentifier(identifier, 'identifier');
  checkDemographics(demographics, now);
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(dataset)) throw badInput('dataset must be 1-63 lower-case letters, digits or dashes', { field: 'dataset' });
  const linked = await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { patientId: true, imageId: true } });
  if (linked) throw conflict(`The identifier ${value} in system ${system} is already linked to another record; it cannot also be a patient's MRN`, { field: 'identifier', linkedPatientId: linked.patientId, linkedCaseId: linked.imageId });
  // Only the fields given: a field left out (or null) keeps the stored value.
  const changes: { birthYear?: number; sex?: Sex; diabetesType?: DiabetesType; diabetesDiagnosisYear?: number } = {};
  if (demographics.birthYear != null) changes.birthYear = demographics.birthYear;
  if (demographics.sex != null) changes.sex = demographics.sex;
  if (demographics.diabetesType != null) changes.diabetesType = demographics.diabetesType;
  if (demographics.diabetesDiagnosisYear != null) changes.diabetesDiagnosisYear = demographics.diabetesDiagnosisYear;
  const status = await prisma.$transaction(async (tx) => {
    const existing = await tx.patient.findUnique({ where: { mrnSystem_mrn: { mrnSystem: system, mrn: value } } });
    if (!existing) {
      const datasetRow = await tx.dataset.upsert({ where: { name: dataset }, create: { name: dataset }, update: {}, select: { id: true } });
      await tx.patient.create({ data: { mrnSystem: system, mrn: value, datasetId: datasetRow.id, ...changes } });
      return 'CREATED' as const;
    }
    const merged = { ...existing, ...changes };
    if (merged.birthYear != null && merged.diabetesDiagnosisYear != null && merged.diabetesDiagnosisYear < merged.birthYear) {
      throw badInput(`demographics.diabetesDiagnosisYear (${merged.diabetesDiagnosisYear}) would be before the birth year (${merged.birthYear})`, { field: 'demographics' });
    }
    const differs = (Object.keys(changes) as (keyof typeof changes)[]).some((key) => existing[key] !== changes[key]);
    if (!differs) return 'UNCHANGED' as const;
    await tx.patient.update({ where: { id: existing.id }, data: changes });
    return 'UPDATED' as const;
  });
  return { status, patient: await findPatientByIdentifier({ prisma, identifier: { system, value } }) };
}

export type LinkStatus = 'LINKED' | 'UNCHANGED';

/** Links an identifier to a case's photograph. The same link twice is UNCHANGED; one pointing elsewhere is CONFLICT. */
export async function linkCase({ prisma, caseId, identifier }: { prisma: PrismaClient; caseId: string; identifier: Identifier }): Promise<{ status: LinkStatus; case: Case }> {
  const id = requireUuid(caseId, 'caseId');
  const { system, value } = requireIdentifier(identifier, 'identifier');
  const target = (await loadCases(prisma, [id])).get(id);
  if (!target) throw notFound(`No case with id ${id}`, { field: 'caseId' });
  const existing = await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { imageId: true, patientId: true } });
  if (existing) {
    if (existing.imageId === id) return { status: 'UNCHANGED', case: target };
    throw conflict(`The identifier ${value} in system ${system} already points to ${existing.imageId ? `case ${existing.imageId}` : `patient ${existing.patientId}`}; unlink it first`, {
      field: 'identifier',
      linkedCaseId: existing.imageId,
      linkedPatientId: existing.patientId,
    });
  }
  const mrnClash = await prisma.patient.findUnique({ where: { mrnSystem_mrn: { mrnSystem: system, mrn: value } }, select: { id: true } });
  if (mrnClash) throw conflict(`The identifier ${value} in system ${system} is patient ${mrnClash.id}'s MRN`, { field: 'identifier', linkedPatientId: mrnClash.id });
  try {
    await prisma.externalLink.create({ data: { system, identifier: value, imageId: id } });
  } catch (error) {
    // A concurrent link of the same identifier won the unique key: answer as if we had come second.
    if ((error as { code?: string }).code === 'P2002') return linkCase({ prisma, caseId, identifier });
    throw error;
  }
  return { status: 'LINKED', case: (await loadCases(prisma, [id])).get(id)! };
}

/** Removes a case's link (admins only, by policy). NOT_FOUND when the identifier links no case. */
export async function unlinkCase({ prisma, identifier }: { prisma: PrismaClient; identifier: Identifier }): Promise<Case> {
  const { system, value } = requireIdentifier(identifier, 'identifier');
  const existing = await prisma.externalLink.findUnique({ where: { system_identifier: { system, identifier: value } }, select: { id: true, imageId: true } });
  if (!existing?.imageId) throw notFound(`No case is linked to identifier ${value} in system ${system}`, { field: 'identifier' });
  await prisma.externalLink.delete({ where: { id: existing.id } });
  return (await loadCases(prisma, [existing.imageId])).get(existing.imageId)!;
}

export type GradingInput = { drGrade: number; maculopathy?: boolean | null; macularEdemaRisk?: number | null; grader?: string | null; gradedOn?: string | null };

/**
 * Records a grading of a case's photograph by a person or an EHR (source EHR or CLINICIAN); it becomes the
 * reference grade (fundus_image.dr_grade) in the same transaction. Its date is today unless given, and may not
 * lie in the future or before the photograph's visit.
 */
export async function recordGrading({
  prisma,
  caseId,
  grading,
  source,
  now = new Date(),
}: {
  prisma: PrismaClient;
  caseId: string;
  grading: GradingInput;
  source: 'EHR' | 'CLINICIAN';
  now?: Date;
}): Promise<Case> {
  const id = requireUuid(caseId, 'caseId');
  const drGrade = requireIcdrGrade(grading.drGrade, 'grading.drGrade');
  if (grading.macularEdemaRisk != null) requireIntegerInRange(grading.macularEdemaRisk, 'grading.macularEdemaRisk', 0, 2);
  const grader = requireGraderName(grading.grader, 'grading.grader');
  const today = now.toISOString().slice(0, 10);
  const gradedOn = grading.gradedOn ?? today;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(gradedOn) || Number.isNaN(Date.parse(`${gradedOn}T00:00:00Z`))) throw badInput(`grading.gradedOn must be a date YYYY-MM-DD, got "${gradedOn}"`, { field: 'grading.gradedOn' });
  if (gradedOn > today) throw badInput(`grading.gradedOn ${gradedOn} is in the future`, { field: 'grading.gradedOn' });
  const image = await prisma.fundusImage.findUnique({ where: { id }, select: { id: true, visit: { select: { visitDate: true } } } });
  if (!image) throw notFound(`No case with id ${id}`, { field: 'caseId' });
  const visitDate = image.visit.visitDate.toISOString().slice(0, 10);
  if (gradedOn < visitDate) throw badInput(`grading.gradedOn ${gradedOn} is before the photograph was taken (${visitDate})`, { field: 'grading.gradedOn' });
  await prisma.$transaction(async (tx) => {
    await tx.grading.create({
      data: { imageId: id, drGrade, maculopathy: grading.maculopathy ?? null, macularEdemaRisk: grading.macularEdemaRisk ?? null, source, grader, gradedOn: new Date(`${gradedOn}T00:00:00Z`) },
    });
    // The reference grade is the latest grading not made by a model (case.service.ts pickReferenceGrading).
    await tx.$executeRaw`UPDATE fundus_image SET dr_grade = (
      SELECT g.dr_grade FROM grading g WHERE g.image_id = ${id}::uuid AND g.source <> 'MODEL_SUGGESTION'
      ORDER BY g.graded_on DESC, g.created_at DESC LIMIT 1) WHERE id = ${id}::uuid`;
  });
  return (await loadCases(prisma, [id])).get(id)!;
}
