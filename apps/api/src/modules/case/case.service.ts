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

/** A part's columns: the row type's name of each and the SQL that reads it, in the order the JSON arrays hold them. */
type PartColumns<Row> = readonly (readonly [keyof Row & string, Prisma.Sql])[];

const column = <Row>(name: keyof Row & string, expression: string | Prisma.Sql) => [name, typeof expression === 'string' ? Prisma.raw(expression) : expression] as const;

/** A part of a case as one text column: a JSON array of rows, each row an array of `columns` in their order. */
function jsonPart<Row>(columns: PartColumns<Row>, from: Prisma.Sql, orderBy: string): Prisma.Sql {
  return Prisma.sql`(SELECT coalesce(json_agg(json_build_array(${Prisma.join(columns.map(([, expression]) => expression))}) ORDER BY ${Prisma.raw(orderBy)}), '[]')::text ${from})`;
}

/** The rows of a part's column, named by `columns` (null when the part was not loaded). */
function readPart<Row>(columns: PartColumns<Row>, text: string | null): Row[] {
  if (text === null) return [];
  const names = columns.map(([name]) => name);
  const rows: Row[] = [];
  // A plain loop, each row's keys set in one order (one object shape): Object.fromEntries over mapped pairs cost
  // 5% of the API's CPU under the load benchmark.
  for (const values of JSON.parse(text) as unknown[][]) {
    const row: Record<string, unknown> = {};
    for (let index = 0; index < names.length; index += 1) row[names[index]!] = values[index];
    rows.push(row as Row);
  }
  return rows;
}

const GRADING_COLUMNS: PartColumns<PhotographGradingRow> = [
  column('image_id', 'fi2.id'), column('patient_id', 'fi2.patient_id'), column('eye', 'fi2.eye'), column('visit_date', isoDate(Prisma.raw('v2.visit_date'))),
  column('grading_id', 'g.id'), column('dr_grade', 'g.dr_grade'), column('maculopathy', 'g.maculopathy'), column('macular_edema_risk', 'g.macular_edema_risk'),
  column('source', 'g.source'), column('grader', 'g.grader'), column('original_scale', 'g.original_scale'), column('original_value', 'g.original_value'),
  column('graded_on', isoDate(Prisma.raw('g.graded_on'))),
];
const DIAGNOSIS_COLUMNS: PartColumns<DiagnosisRow> = [
  column('id', 'id'), column('patient_id', 'patient_id'), column('icd10_code', 'icd10_code'), column('text', 'text'), column('eye', 'eye'),
  column('diagnosed_on', isoDate(Prisma.raw('diagnosed_on'))),
];
const TREATMENT_COLUMNS: PartColumns<TreatmentRow> = [
  column('id', 'id'), column('patient_id', 'patient_id'), column('type', 'type'), column('agent', 'agent'), column('eye', 'eye'),
  column('performed_on', isoDate(Prisma.raw('performed_on'))), column('notes', 'notes'),
];
const HBA1C_COLUMNS: PartColumns<Hba1cRow> = [column('patient_id', 'patient_id'), column('measured_on', isoDate(Prisma.raw('measured_on'))), column('percent', 'percent::float8')];
const LINK_COLUMNS: PartColumns<LinkRow> = [column('patient_id', 'patient_id'), column('system', 'system'), column('identifier', 'identifier')];

/** A case's row: its own columns, and each part of it as a JSON array (null when the part was not asked for). */
type LoadedCaseRow = CaseRow & { gradings: string; diagnoses: string | null; treatments: string | null; hba1c: string | null; links: string | null };

/**
 * Loads cases by photograph id; ids without a photograph are absent from the map. One statement for any number of
 * cases, a row a case: the photograph with visit, patient and dataset, and beside them, each as one JSON array, the
 * photograph's gradings (with followUpGradings, every photograph of the patient with its gradings: the case's own
 * and its follow-up) and the patient's diagnoses, treatments, HbA1c readings and external links, each only when
 * `parts` asks for it. The patient's parts repeat on each of the patient's cases and are read once; the split into
 * a case's own records and its follow-up is made here.
 *
 * Written in SQL because the search path loads a page of cases every request: as Prisma includes they were 13
 * statements a load and most of the API's CPU per search (bench/README.md, "Statements per search by case"). One
 * statement rather than one a part, because each statement costs the API a round trip on a pool connection of its
 * own; and the parts as compact arrays found through each case's indexes, because building them for the page as
 * a whole cost PostgreSQL more than the separate statements did (bench/README.md, "One statement for a page of
 * cases").
 */
export async function loadCases(prisma: PrismaClient, imageIds: string[], parts: CaseParts = ALL_CASE_PARTS): Promise<Map<string, Case>> {
  const unique = [...new Set(imageIds)].map((id) => requireUuid(id, 'id'));
  if (unique.length === 0) return new Map();
  const skipped = Prisma.sql`NULL::text`;
  const rows = await queryRows<LoadedCaseRow>(prisma, Prisma.sql`
    SELECT fi.id::text AS id, fi.eye::text AS eye, fi.width, fi.height, fi.quality::text AS quality, fi.content_hash,
           fi.patient_id::text AS patient_id, v.id::text AS visit_id, ${isoDate(Prisma.sql`v.visit_date`)} AS visit_date,
           p.mrn, p.mrn_system, p.birth_year, p.sex::text AS sex, p.diabetes_type::text AS diabetes_type, p.diabetes_diagnosis_year,
           d.name AS dataset_name, d.is_synthetic,
           ${jsonPart(GRADING_COLUMNS, Prisma.sql`FROM fundus_image fi2 JOIN visit v2 ON v2.id = fi2.visit_id LEFT JOIN grading g ON g.image_id = fi2.id
             WHERE ${parts.followUpGradings ? Prisma.sql`fi2.patient_id = fi.patient_id` : Prisma.sql`fi2.id = fi.id`}`, 'fi2.id, g.graded_on, g.created_at, g.id')} AS gradings,
           ${parts.diagnoses ? jsonPart(DIAGNOSIS_COLUMNS, Prisma.sql`FROM diagnosis WHERE patient_id = fi.patient_id`, 'diagnosed_on, id') : skipped} AS diagnoses,
           ${parts.treatments ? jsonPart(TREATMENT_COLUMNS, Prisma.sql`FROM treatment WHERE patient_id = fi.patient_id`, 'performed_on, id') : skipped} AS treatments,
           ${parts.hba1cReadings ? jsonPart(HBA1C_COLUMNS, Prisma.sql`FROM hba1c_reading WHERE patient_id = fi.patient_id`, 'measured_on, id') : skipped} AS hba1c,
           ${parts.externalLinks ? jsonPart(LINK_COLUMNS, Prisma.sql`FROM external_link WHERE patient_id = fi.patient_id`, 'created_at, id') : skipped} AS links
    FROM fundus_image fi JOIN visit v ON v.id = fi.visit_id JOIN patient p ON p.id = fi.patient_id JOIN dataset d ON d.id = p.dataset_id
    WHERE fi.id = ANY(${unique}::uuid[])`);
  // Each patient's parts once (they repeat on every case of the patient); without followUpGradings the gradings
  // are each case's own, so every row's are read.
  const caseRows: CaseRow[] = rows;
  const photographRows: PhotographGradingRow[] = [];
  const diagnosisRows: DiagnosisRow[] = [];
  const treatmentRows: TreatmentRow[] = [];
  const hba1cRows: Hba1cRow[] = [];
  const linkRows: LinkRow[] = [];
  const patientsRead = new Set<string>();
  for (const row of rows) {
    const firstOfPatient = !patientsRead.has(row.patient_id);
    patientsRead.add(row.patient_id);
    if (firstOfPatient || !parts.followUpGradings) photographRows.push(...readPart(GRADING_COLUMNS, row.gradings));
    if (!firstOfPatient) continue;
    diagnosisRows.push(...readPart(DIAGNOSIS_COLUMNS, row.diagnoses));
    treatmentRows.push(...readPart(TREATMENT_COLUMNS, row.treatments));
    hba1cRows.push(...readPart(HBA1C_COLUMNS, row.hba1c));
    linkRows.push(...readPart(LINK_COLUMNS, row.links));
  }
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
