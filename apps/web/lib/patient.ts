// A patient by MRN with every photograph of theirs, and the visit-by-visit timeline of both eyes the patient
// page draws from it. Result types are generated from schema.graphql (lib/generated/graphql.ts).
import { requestGraphql, type ApiOutcome } from './api-request';
import type { PatientTimelineQuery, PatientTimelineQueryVariables } from './generated/graphql';
import {
  RECORD_FRAGMENTS,
  type DiagnosisRecord,
  type Eye,
  type GradingRecord,
  type PatientSummary,
  type TreatmentRecord,
} from './case';

/** The API's largest page of a patient's cases; more pages are fetched up to MAX_CASE_PAGES. */
export const CASES_PAGE_SIZE = 100;
const MAX_CASE_PAGES = 10;
export const MRN_MAX_LENGTH = 128;

export type PatientCase = NonNullable<PatientTimelineQuery['patient']>['cases']['nodes'][number];

export interface PatientRecord extends PatientSummary {
  cases: PatientCase[];
  /** True when the patient has more photographs than MAX_CASE_PAGES pages hold. */
  truncated: boolean;
}

const PATIENT_QUERY = /* GraphQL */ `
  query PatientTimeline($mrn: String!, $system: String, $first: Int!, $after: String) {
    patient(mrn: $mrn, system: $system) {
      ...PatientFields
      cases(first: $first, after: $after) {
        nodes {
          id
          image { eye width height quality }
          visit { date }
          referenceGrading { drGrade drGradeName }
          gradings { ...GradingFields }
          diagnoses { ...DiagnosisFields }
          treatments { ...TreatmentFields }
          followUp { diagnoses { ...DiagnosisFields } treatments { ...TreatmentFields } }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
  ${RECORD_FRAGMENTS}
`;

type PatientPage = NonNullable<PatientTimelineQuery['patient']>;

export interface PatientFormValues {
  mrn: string;
  system: string;
}

const firstValue = (value: string | string[] | undefined) => (Array.isArray(value) ? (value[0] ?? '') : (value ?? ''));

export function parsePatientForm(params: Record<string, string | string[] | undefined>): { values: PatientFormValues; submitted: boolean; problem: string | null } {
  const values = { mrn: firstValue(params.mrn).trim(), system: firstValue(params.system).trim() };
  const submitted = params.mrn !== undefined;
  let problem: string | null = null;
  if (submitted && values.mrn === '') problem = 'Enter the medical record number (MRN) of the patient.';
  else if (values.mrn.length > MRN_MAX_LENGTH) problem = `An MRN has at most ${MRN_MAX_LENGTH} characters.`;
  return { values, submitted, problem };
}

/** Runs on the server only; every page of the patient's cases, failures as outcomes (lib/api-request.ts). */
export async function getPatientWithCases({ mrn, system }: PatientFormValues, { returnTo }: { returnTo: string }): Promise<ApiOutcome<PatientRecord>> {
  const cases: PatientCase[] = [];
  let after: string | null = null;
  for (let pageNumber = 0; pageNumber < MAX_CASE_PAGES; pageNumber += 1) {
    const variables: PatientTimelineQueryVariables = { mrn, system: system || null, first: CASES_PAGE_SIZE, after };
    const outcome: ApiOutcome<PatientTimelineQuery> = await requestGraphql<PatientTimelineQuery>({
      operationName: 'PatientTimeline',
      query: PATIENT_QUERY,
      variables,
      returnTo,
    });
    if (!outcome.ok) return outcome;
    const patient: PatientPage | null | undefined = outcome.data.patient;
    if (!patient) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no patient.' };
    cases.push(...patient.cases.nodes);
    const nextCursor: string | null = patient.cases.pageInfo.hasNextPage ? patient.cases.pageInfo.endCursor : null;
    if (!nextCursor || pageNumber === MAX_CASE_PAGES - 1) {
      const { cases: _page, ...summary } = patient;
      return { ok: true, data: { ...summary, cases, truncated: nextCursor !== null } };
    }
    after = nextCursor;
  }
  return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The patient could not be read.' };
}

export interface EyeOnDate {
  photographs: PatientCase[];
  diagnoses: DiagnosisRecord[];
  treatments: TreatmentRecord[];
}

export interface OtherRecords {
  diagnoses: DiagnosisRecord[];
  treatments: TreatmentRecord[];
}

export interface TimelineRow {
  /** LocalDate, YYYY-MM-DD. */
  date: string;
  right: EyeOnDate;
  left: EyeOnDate;
  /** Records of both eyes, once rather than under each eye. */
  both: OtherRecords;
  /** Records whose eye is UNSPECIFIED (or a laterality newer than this page). */
  unspecified: OtherRecords;
}

const emptyEye = (): EyeOnDate => ({ photographs: [], diagnoses: [], treatments: [] });

/**
 * One row per date on which anything happened: a photograph of either eye, a diagnosis or a treatment, oldest
 * first. Each case carries the records known at its visit and the later ones (followUp), so every record of
 * the patient's photographed eyes is in some case; they are de-duplicated by id and placed on their own date.
 */
export function buildTimeline(cases: readonly PatientCase[]): TimelineRow[] {
  const rows = new Map<string, TimelineRow>();
  const rowFor = (date: string) => {
    let row = rows.get(date);
    if (!row) {
      row = { date, right: emptyEye(), left: emptyEye(), both: { diagnoses: [], treatments: [] }, unspecified: { diagnoses: [], treatments: [] } };
      rows.set(date, row);
    }
    return row;
  };
  const diagnoses = new Map<string, DiagnosisRecord>();
  const treatments = new Map<string, TreatmentRecord>();
  for (const photograph of cases) {
    const row = rowFor(photograph.visit.date);
    (photograph.image.eye === 'RIGHT' ? row.right : row.left).photographs.push(photograph);
    for (const diagnosis of [...photograph.diagnoses, ...photograph.followUp.diagnoses]) diagnoses.set(diagnosis.id, diagnosis);
    for (const treatment of [...photograph.treatments, ...photograph.followUp.treatments]) treatments.set(treatment.id, treatment);
  }
  const place = <T extends { eye: string; date: string }>(record: T, pick: (eye: OtherRecords) => T[]) => {
    const row = rowFor(record.date);
    const target = { RIGHT: row.right, LEFT: row.left, BOTH: row.both }[record.eye] ?? row.unspecified;
    pick(target).push(record);
  };
  for (const diagnosis of diagnoses.values()) place(diagnosis, (eye) => eye.diagnoses);
  for (const treatment of treatments.values()) place(treatment, (eye) => eye.treatments);
  return [...rows.values()].sort((a, b) => a.date.localeCompare(b.date));
}
