// Loading cases: a fixed number of queries for any number of cases (never one query per case), so a search
// with k = 100 costs what k = 1 costs: the images, then at once the diagnoses, treatments and photographs (with
// gradings) of all their patients, split per case in memory.
//
// A case is the photograph at its visit: its diagnoses and treatments are those dated on or before the visit date
// (what was known then). Everything dated later, and the gradings of later photographs of the same eye, is its
// followUp, so a search hit never shows a grade-0 photograph beside the PDR it developed years later as if the
// two were seen together.
import { notFound } from '../../errors.js';
import type { Prisma, PrismaClient } from '../../generated/prisma/client.js';
import type { Laterality } from '../../generated/prisma/enums.js';
import { checkPageSize, decodeCursor, toPage, type Page } from '../common/pagination.js';
import { UNDATED_VISIT_DATE } from '../common/clinical-dates.js';
import { ICDR_GRADE_NAMES } from '../common/enums.js';
import { requireUuid } from '../common/validation.js';
import type { Case, Diagnosis, FollowUpGrading, Grading, Patient, Treatment } from './case.type.js';

const toDate = (value: Date) => value.toISOString().slice(0, 10);

/** The patient rows include that every patient view needs (dataset, HbA1c history, external links). */
export const patientInclude = { dataset: true, hba1cReadings: { orderBy: { measuredOn: 'asc' } }, externalLinks: true } satisfies Prisma.PatientInclude;

const caseInclude = {
  visit: true,
  gradings: { orderBy: [{ gradedOn: 'asc' }, { createdAt: 'asc' }] },
  externalLinks: true,
  patient: { include: patientInclude },
} satisfies Prisma.FundusImageInclude;

type LoadedImage = Awaited<ReturnType<typeof findImages>>[number];

function findImages(prisma: PrismaClient, imageIds: string[]) {
  return prisma.fundusImage.findMany({ where: { id: { in: imageIds } }, include: caseInclude });
}

export function toPatient(patient: LoadedImage['patient']): Patient {
  return {
    id: patient.id,
    mrn: patient.mrn,
    mrnSystem: patient.mrnSystem,
    birthYear: patient.birthYear,
    sex: patient.sex,
    diabetesType: patient.diabetesType,
    diabetesDiagnosisYear: patient.diabetesDiagnosisYear,
    dataset: { name: patient.dataset.name, isSynthetic: patient.dataset.isSynthetic },
    isSynthetic: patient.dataset.isSynthetic,
    hba1cReadings: patient.hba1cReadings.map((reading) => ({ date: toDate(reading.measuredOn), percent: Number(reading.percent) })),
    externalLinks: patient.externalLinks.map(({ system, identifier }) => ({ system, identifier })),
  };
}

function toGrading(grading: LoadedImage['gradings'][number]): Grading {
  return {
    id: grading.id,
    drGrade: grading.drGrade,
    drGradeName: ICDR_GRADE_NAMES[grading.drGrade] ?? 'Unknown',
    maculopathy: grading.maculopathy,
    macularEdemaRisk: grading.macularEdemaRisk,
    source: grading.source,
    grader: grading.grader,
    originalScale: grading.originalScale,
    originalValue: grading.originalValue,
    date: toDate(grading.gradedOn),
  };
}

/** The reference grading: the latest grading that a person or a dataset made (model suggestions never count). */
export function pickReferenceGrading<T extends { source: string }>(gradingsOldestFirst: T[]): T | null {
  for (let index = gradingsOldestFirst.length - 1; index >= 0; index -= 1) {
    const grading = gradingsOldestFirst[index]!;
    if (grading.source !== 'MODEL_SUGGESTION') return grading;
  }
  return null;
}

const appliesToEye = (laterality: Laterality, eye: 'LEFT' | 'RIGHT') => laterality === eye || laterality === 'BOTH' || laterality === 'UNSPECIFIED';

type PatientPhotograph = Awaited<ReturnType<typeof findPatientPhotographs>>[number];

/** Every photograph of these patients with its visit date and gradings: the source of later gradings. */
function findPatientPhotographs(prisma: PrismaClient, patientIds: string[]) {
  return prisma.fundusImage.findMany({
    where: { patientId: { in: patientIds } },
    select: { id: true, patientId: true, eye: true, visit: { select: { visitDate: true } }, gradings: { orderBy: [{ gradedOn: 'asc' }, { createdAt: 'asc' }] } },
  });
}

function groupByPatient<T extends { patientId: string }>(rows: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const group = groups.get(row.patientId);
    if (group) group.push(row);
    else groups.set(row.patientId, [row]);
  }
  return groups;
}

/** The gradings of the patient's photographs of `eye` taken after `visitDate`, by visit date, oldest first. */
function findLaterGradings(photographs: PatientPhotograph[], eye: 'LEFT' | 'RIGHT', visitDate: string): FollowUpGrading[] {
  return photographs
    .filter((photograph) => photograph.eye === eye && toDate(photograph.visit.visitDate) > visitDate)
    .sort((a, b) => a.visit.visitDate.getTime() - b.visit.visitDate.getTime() || a.id.localeCompare(b.id))
    .flatMap((photograph) =>
      photograph.gradings.map((grading) => ({
        imageId: photograph.id,
        visitDate: toDate(photograph.visit.visitDate),
        date: toDate(grading.gradedOn),
        drGrade: grading.drGrade,
        drGradeName: ICDR_GRADE_NAMES[grading.drGrade] ?? 'Unknown',
        maculopathy: grading.maculopathy,
        source: grading.source,
      })),
    );
}

/** Loads cases by photograph id; ids without a photograph are absent from the map. */
export async function loadCases(prisma: PrismaClient, imageIds: string[]): Promise<Map<string, Case>> {
  const unique = [...new Set(imageIds)];
  if (unique.length === 0) return new Map();
  const images = await findImages(prisma, unique);
  const patientIds = [...new Set(images.map((image) => image.patientId))];
  const [diagnosisRows, treatmentRows, photographRows] = await Promise.all([
    prisma.diagnosis.findMany({ where: { patientId: { in: patientIds } }, orderBy: [{ diagnosedOn: 'asc' }, { id: 'asc' }] }),
    prisma.treatment.findMany({ where: { patientId: { in: patientIds } }, orderBy: [{ performedOn: 'asc' }, { id: 'asc' }] }),
    findPatientPhotographs(prisma, patientIds),
  ]);
  const diagnosesByPatient = groupByPatient(diagnosisRows);
  const treatmentsByPatient = groupByPatient(treatmentRows);
  const photographsByPatient = groupByPatient(photographRows);
  const cases = new Map<string, Case>();
  for (const image of images) {
    const gradings = image.gradings.map(toGrading);
    const patient = toPatient(image.patient);
    const visitDate = toDate(image.visit.visitDate);
    const visitYear = image.visit.visitDate.getUTCFullYear();
    // ISO dates compare as strings; the visit date itself belongs to the visit.
    const diagnoses = (diagnosesByPatient.get(image.patientId) ?? [])
      .filter((diagnosis) => appliesToEye(diagnosis.eye, image.eye))
      .map((diagnosis): Diagnosis => ({ id: diagnosis.id, code: diagnosis.icd10Code, text: diagnosis.text, eye: diagnosis.eye, date: toDate(diagnosis.diagnosedOn) }));
    const treatments = (treatmentsByPatient.get(image.patientId) ?? [])
      .filter((treatment) => appliesToEye(treatment.eye, image.eye))
      .map((treatment): Treatment => ({ id: treatment.id, type: treatment.type, agent: treatment.agent, eye: treatment.eye, date: toDate(treatment.performedOn), notes: treatment.notes }));
    cases.set(image.id, {
      id: image.id,
      isSynthetic: patient.isSynthetic,
      image: { id: image.id, eye: image.eye, width: image.width, height: image.height, quality: image.quality, contentHash: image.contentHash },
      patient,
      visit: { id: image.visit.id, date: visitDate },
      // The undated placeholder is no date to count an age from.
      ageAtVisit: patient.birthYear === null || visitDate === UNDATED_VISIT_DATE ? null : visitYear - patient.birthYear,
      referenceGrading: pickReferenceGrading(gradings),
      gradings,
      diagnoses: diagnoses.filter((diagnosis) => diagnosis.date <= visitDate),
      treatments: treatments.filter((treatment) => treatment.date <= visitDate),
      followUp: {
        gradings: findLaterGradings(photographsByPatient.get(image.patientId) ?? [], image.eye, visitDate),
        diagnoses: diagnoses.filter((diagnosis) => diagnosis.date > visitDate),
        treatments: treatments.filter((treatment) => treatment.date > visitDate),
      },
    });
  }
  return cases;
}

export async function getCaseOrThrow({ prisma, caseId }: { prisma: PrismaClient; caseId: string }): Promise<Case> {
  const id = requireUuid(caseId, 'id');
  const found = (await loadCases(prisma, [id])).get(id);
  if (!found) throw notFound(`No case with id ${id}`, { field: 'id' });
  return found;
}

/** A patient's cases in the order they were recorded, Relay-paginated. */
export async function listPatientCases({ prisma, patientId, first, after }: { prisma: PrismaClient; patientId: string; first: number; after?: string | null }): Promise<Page<Case>> {
  const take = checkPageSize(first);
  const cursorId = after ? decodeCursor(after) : undefined;
  const rows = await prisma.fundusImage.findMany({
    where: { patientId },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    select: { id: true },
    take: take + 1,
    ...(cursorId ? { cursor: { id: cursorId }, skip: 1 } : {}),
  });
  const page = toPage(rows, take);
  const cases = await loadCases(prisma, page.nodes.map((row) => row.id));
  return { nodes: page.nodes.map((row) => cases.get(row.id)!).filter(Boolean), pageInfo: page.pageInfo };
}
