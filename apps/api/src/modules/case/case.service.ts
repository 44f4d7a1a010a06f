// Loading cases: a fixed number of statements for any number of cases (never one query per case), so a search
// with k = 100 costs what k = 1 costs: the photographs, and at once the gradings, diagnoses, treatments, HbA1c
// readings and links of all their patients, split per case in memory (loadCases).
//
// A case is the photograph at its visit: its diagnoses and treatments are those dated on or before the visit date
// (what was known then). Everything dated later, and the gradings of later photographs of the same eye, is its
// followUp, so a search hit never shows a grade-0 photograph beside the PDR it developed years later as if the
// two were seen together.
import { queryRows } from '../../db/driver-rows.js';
import { notFound } from '../../errors.js';
import { Prisma, type PrismaClient } from '../../generated/prisma/client.js';
import type { AntiVegfAgent, DiabetesType, GradeSource, ImageQuality, Laterality, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { checkPageSize, decodeCursor, toPage, type Page } from '../common/pagination.js';
import { UNDATED_VISIT_DATE } from '../common/clinical-dates.js';
import { ICDR_GRADE_NAMES } from '../common/enums.js';
import { requireUuid } from '../common/validation.js';
import type { Case, Diagnosis, FollowUpGrading, Grading, Patient, Treatment } from './case.type.js';

const toDate = (value: Date) => value.toISOString().slice(0, 10);

/** The patient rows include that every patient view needs (dataset, HbA1c history, external links). */
export const patientInclude = { dataset: true, hba1cReadings: { orderBy: { measuredOn: 'asc' } }, externalLinks: true } satisfies Prisma.PatientInclude;

export function toPatient(patient: Prisma.PatientGetPayload<{ include: typeof patientInclude }>): Patient {
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

/** The reference grading: the latest grading that a person or a dataset made (model suggestions never count). */
export function pickReferenceGrading<T extends { source: string }>(gradingsOldestFirst: T[]): T | null {
  for (let index = gradingsOldestFirst.length - 1; index >= 0; index -= 1) {
    const grading = gradingsOldestFirst[index]!;
    if (grading.source !== 'MODEL_SUGGESTION') return grading;
  }
  return null;
}

const appliesToEye = (laterality: Laterality, eye: 'LEFT' | 'RIGHT') => laterality === eye || laterality === 'BOTH' || laterality === 'UNSPECIFIED';

type LaterGradingSource = { imageId: string; eye: string; visitDate: string; gradings: Grading[] };

/** The gradings of the patient's photographs of `eye` taken after `visitDate`, by visit date, oldest first. */
function findLaterGradings(photographs: LaterGradingSource[], eye: 'LEFT' | 'RIGHT', visitDate: string): FollowUpGrading[] {
  return photographs
    .filter((photograph) => photograph.eye === eye && photograph.visitDate > visitDate)
    .sort((a, b) => (a.visitDate < b.visitDate ? -1 : a.visitDate > b.visitDate ? 1 : a.imageId.localeCompare(b.imageId)))
    .flatMap((photograph) =>
      photograph.gradings.map((grading) => ({
        imageId: photograph.imageId,
        visitDate: photograph.visitDate,
        date: grading.date,
        drGrade: grading.drGrade,
        drGradeName: grading.drGradeName,
        maculopathy: grading.maculopathy,
        source: grading.source,
      })),
    );
}

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const group = groups.get(key(row));
    if (group) group.push(row);
    else groups.set(key(row), [row]);
  }
  return groups;
}

type CaseRow = {
  id: string; eye: 'LEFT' | 'RIGHT'; width: number; height: number; quality: ImageQuality; content_hash: string;
  patient_id: string; visit_id: string; visit_date: string;
  mrn: string; mrn_system: string; birth_year: number | null; sex: Sex; diabetes_type: DiabetesType; diabetes_diagnosis_year: number | null;
  dataset_name: string; is_synthetic: boolean;
};
type PhotographGradingRow = {
  image_id: string; patient_id: string; eye: string; visit_date: string;
  grading_id: string | null; dr_grade: number | null; maculopathy: boolean | null; macular_edema_risk: number | null; source: GradeSource | null;
  grader: string | null; original_scale: string | null; original_value: string | null; graded_on: string | null;
};
type DiagnosisRow = { id: string; patient_id: string; icd10_code: string; text: string; eye: Laterality; diagnosed_on: string };
type TreatmentRow = { id: string; patient_id: string; type: TreatmentType; agent: AntiVegfAgent | null; eye: Laterality; performed_on: string; notes: string | null };
type Hba1cRow = { patient_id: string; measured_on: string; percent: number };
type LinkRow = { patient_id: string; system: string; identifier: string };

const isoDate = (column: Prisma.Sql) => Prisma.sql`to_char(${column}, 'YYYY-MM-DD')`;

/**
 * What of a case a caller reads beyond the photograph, its visit, patient and dataset and its own gradings (always
 * loaded). A part left out is an empty list in the loaded case, so leave one out only where nothing reads it: the
 * similar-cases resolver derives the parts from the query's selection (caseParts there), every other caller loads
 * them all.
 */
export type CaseParts = {
  /** followUp.gradings: the gradings of the patient's later photographs of the same eye. */
  followUpGradings: boolean;
  /** diagnoses and followUp.diagnoses. */
  diagnoses: boolean;
  /** treatments and followUp.treatments. */
  treatments: boolean;
  hba1cReadings: boolean;
  externalLinks: boolean;
};

export const ALL_CASE_PARTS: CaseParts = { followUpGradings: true, diagnoses: true, treatments: true, hba1cReadings: true, externalLinks: true };

const none = <T>(): Promise<T[]> => Promise.resolve([]);

/**
 * Loads cases by photograph id; ids without a photograph are absent from the map. At most six statements for any
 * number of cases, sent at once (each names the cases' patients by a subquery, so none waits for another): the
 * photographs with visit, patient and dataset; the photographs' gradings (with followUpGradings, every photograph of
 * those patients with its gradings: the cases' own and their follow-up); the patients' diagnoses, treatments, HbA1c
 * readings and external links, each only when `parts` asks for it. Written in SQL because the search path loads two
 * pages of cases a request: as Prisma includes they were 13 statements a load and most of the API's CPU per search
 * (bench/README.md, "Statements per search by case").
 */
export async function loadCases(prisma: PrismaClient, imageIds: string[], parts: CaseParts = ALL_CASE_PARTS): Promise<Map<string, Case>> {
  const unique = [...new Set(imageIds)].map((id) => requireUuid(id, 'id'));
  if (unique.length === 0) return new Map();
  // One array parameter, not an IN list as long as the ids: the statement's text (and its prepared statement,
  // db/statement-names.ts) is the same for any number of cases.
  const ids = Prisma.sql`${unique}::uuid[]`;
  const patients = Prisma.sql`(SELECT patient_id FROM fundus_image WHERE id = ANY(${ids}))`;
  const [caseRows, photographRows, diagnosisRows, treatmentRows, hba1cRows, linkRows] = await Promise.all([
    queryRows<CaseRow>(prisma, Prisma.sql`
      SELECT fi.id::text AS id, fi.eye::text AS eye, fi.width, fi.height, fi.quality::text AS quality, fi.content_hash,
             fi.patient_id::text AS patient_id, v.id::text AS visit_id, ${isoDate(Prisma.sql`v.visit_date`)} AS visit_date,
             p.mrn, p.mrn_system, p.birth_year, p.sex::text AS sex, p.diabetes_type::text AS diabetes_type, p.diabetes_diagnosis_year,
             d.name AS dataset_name, d.is_synthetic
      FROM fundus_image fi JOIN visit v ON v.id = fi.visit_id JOIN patient p ON p.id = fi.patient_id JOIN dataset d ON d.id = p.dataset_id
      WHERE fi.id = ANY(${ids})`),
    queryRows<PhotographGradingRow>(prisma, Prisma.sql`
      SELECT fi.id::text AS image_id, fi.patient_id::text AS patient_id, fi.eye::text AS eye, ${isoDate(Prisma.sql`v.visit_date`)} AS visit_date,
             g.id::text AS grading_id, g.dr_grade, g.maculopathy, g.macular_edema_risk, g.source::text AS source, g.grader,
             g.original_scale, g.original_value, ${isoDate(Prisma.sql`g.graded_on`)} AS graded_on
      FROM fundus_image fi JOIN visit v ON v.id = fi.visit_id LEFT JOIN grading g ON g.image_id = fi.id
      WHERE ${parts.followUpGradings ? Prisma.sql`fi.patient_id IN ${patients}` : Prisma.sql`fi.id = ANY(${ids})`}
      ORDER BY g.graded_on, g.created_at`),
    parts.diagnoses ? queryRows<DiagnosisRow>(prisma, Prisma.sql`
      SELECT id::text AS id, patient_id::text AS patient_id, icd10_code, text, eye::text AS eye, ${isoDate(Prisma.sql`diagnosed_on`)} AS diagnosed_on
      FROM diagnosis WHERE patient_id IN ${patients} ORDER BY diagnosis.diagnosed_on, diagnosis.id`) : none<DiagnosisRow>(),
    parts.treatments ? queryRows<TreatmentRow>(prisma, Prisma.sql`
      SELECT id::text AS id, patient_id::text AS patient_id, type::text AS type, agent::text AS agent, eye::text AS eye,
             ${isoDate(Prisma.sql`performed_on`)} AS performed_on, notes
      FROM treatment WHERE patient_id IN ${patients} ORDER BY treatment.performed_on, treatment.id`) : none<TreatmentRow>(),
    parts.hba1cReadings ? queryRows<Hba1cRow>(prisma, Prisma.sql`
      SELECT patient_id::text AS patient_id, ${isoDate(Prisma.sql`measured_on`)} AS measured_on, percent::float8 AS percent
      FROM hba1c_reading WHERE patient_id IN ${patients} ORDER BY hba1c_reading.measured_on, hba1c_reading.id`) : none<Hba1cRow>(),
    parts.externalLinks ? queryRows<LinkRow>(prisma, Prisma.sql`
      SELECT patient_id::text AS patient_id, system, identifier FROM external_link
      WHERE patient_id IN ${patients} ORDER BY external_link.created_at, external_link.id`) : none<LinkRow>(),
  ]);
  const photographs = new Map<string, LaterGradingSource & { patientId: string }>();
  for (const row of photographRows) {
    let photograph = photographs.get(row.image_id);
    if (!photograph) photographs.set(row.image_id, (photograph = { imageId: row.image_id, patientId: row.patient_id, eye: row.eye, visitDate: row.visit_date, gradings: [] }));
    if (row.grading_id === null) continue;
    photograph.gradings.push({
      id: row.grading_id,
      drGrade: row.dr_grade!,
      drGradeName: ICDR_GRADE_NAMES[row.dr_grade!] ?? 'Unknown',
      maculopathy: row.maculopathy,
      macularEdemaRisk: row.macular_edema_risk,
      source: row.source!,
      grader: row.grader,
      originalScale: row.original_scale,
      originalValue: row.original_value,
      date: row.graded_on!,
    });
  }
  const photographsByPatient = groupBy([...photographs.values()], (photograph) => photograph.patientId);
  const diagnosesByPatient = groupBy(diagnosisRows, (row) => row.patient_id);
  const treatmentsByPatient = groupBy(treatmentRows, (row) => row.patient_id);
  const hba1cByPatient = groupBy(hba1cRows, (row) => row.patient_id);
  const linksByPatient = groupBy(linkRows, (row) => row.patient_id);
  const cases = new Map<string, Case>();
  for (const row of caseRows) {
    const gradings = photographs.get(row.id)?.gradings ?? [];
    const isSynthetic = row.is_synthetic;
    const patient: Patient = {
      id: row.patient_id,
      mrn: row.mrn,
      mrnSystem: row.mrn_system,
      birthYear: row.birth_year,
      sex: row.sex,
      diabetesType: row.diabetes_type,
      diabetesDiagnosisYear: row.diabetes_diagnosis_year,
      dataset: { name: row.dataset_name, isSynthetic },
      isSynthetic,
      hba1cReadings: (hba1cByPatient.get(row.patient_id) ?? []).map((reading) => ({ date: reading.measured_on, percent: Number(reading.percent) })),
      externalLinks: (linksByPatient.get(row.patient_id) ?? []).map(({ system, identifier }) => ({ system, identifier })),
    };
    const visitDate = row.visit_date;
    // ISO dates compare as strings; the visit date itself belongs to the visit.
    const diagnoses = (diagnosesByPatient.get(row.patient_id) ?? [])
      .filter((diagnosis) => appliesToEye(diagnosis.eye, row.eye))
      .map((diagnosis): Diagnosis => ({ id: diagnosis.id, code: diagnosis.icd10_code, text: diagnosis.text, eye: diagnosis.eye, date: diagnosis.diagnosed_on }));
    const treatments = (treatmentsByPatient.get(row.patient_id) ?? [])
      .filter((treatment) => appliesToEye(treatment.eye, row.eye))
      .map((treatment): Treatment => ({ id: treatment.id, type: treatment.type, agent: treatment.agent, eye: treatment.eye, date: treatment.performed_on, notes: treatment.notes }));
    cases.set(row.id, {
      id: row.id,
      isSynthetic,
      image: { id: row.id, eye: row.eye, width: row.width, height: row.height, quality: row.quality, contentHash: row.content_hash },
      patient,
      visit: { id: row.visit_id, date: visitDate },
      // The undated placeholder is no date to count an age from.
      ageAtVisit: patient.birthYear === null || visitDate === UNDATED_VISIT_DATE ? null : Number(visitDate.slice(0, 4)) - patient.birthYear,
      referenceGrading: pickReferenceGrading(gradings),
      gradings,
      diagnoses: diagnoses.filter((diagnosis) => diagnosis.date <= visitDate),
      treatments: treatments.filter((treatment) => treatment.date <= visitDate),
      followUp: {
        // Without the part only the loaded cases' own photographs are here, a partial list: none, as documented.
        gradings: parts.followUpGradings ? findLaterGradings(photographsByPatient.get(row.patient_id) ?? [], row.eye, visitDate) : [],
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
