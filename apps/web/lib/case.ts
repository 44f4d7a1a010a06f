// One case (a photograph with its records and what followed), and the record types the patient and case pages
// share. Types mirror the committed schema.graphql; test/web/case-pages.test.mjs reads the pages against the API.
import { requestGraphql, type ApiOutcome } from './api-request';

export type Eye = 'LEFT' | 'RIGHT';

export interface GradingRecord {
  id: string;
  drGrade: number;
  drGradeName: string;
  maculopathy: boolean | null;
  source: string;
  grader: string | null;
  /** LocalDate, YYYY-MM-DD. */
  date: string;
}

export interface DiagnosisRecord {
  id: string;
  code: string;
  text: string;
  /** Laterality: LEFT | RIGHT | BOTH | UNSPECIFIED. */
  eye: string;
  date: string;
}

export interface TreatmentRecord {
  id: string;
  type: string;
  agent: string | null;
  eye: string;
  date: string;
  notes: string | null;
}

export interface FollowUpGradingRecord {
  imageId: string;
  visitDate: string;
  date: string;
  drGrade: number;
  drGradeName: string;
  maculopathy: boolean | null;
  source: string;
}

export interface PatientSummary {
  id: string;
  mrn: string;
  mrnSystem: string;
  birthYear: number | null;
  sex: string;
  diabetesType: string;
  diabetesDiagnosisYear: number | null;
  dataset: { name: string; isSynthetic: boolean };
  isSynthetic: boolean;
}

export interface CaseDetail {
  id: string;
  isSynthetic: boolean;
  image: { id: string; eye: Eye; width: number; height: number; quality: string };
  patient: PatientSummary;
  visit: { id: string; date: string };
  ageAtVisit: number | null;
  referenceGrading: GradingRecord | null;
  gradings: GradingRecord[];
  diagnoses: DiagnosisRecord[];
  treatments: TreatmentRecord[];
  followUp: { gradings: FollowUpGradingRecord[]; diagnoses: DiagnosisRecord[]; treatments: TreatmentRecord[] };
}

export const PATIENT_FIELDS = /* GraphQL */ `
  id mrn mrnSystem birthYear sex diabetesType diabetesDiagnosisYear
  dataset { name isSynthetic }
  isSynthetic
`;
export const GRADING_FIELDS = 'id drGrade drGradeName maculopathy source grader date';
export const DIAGNOSIS_FIELDS = 'id code text eye date';
export const TREATMENT_FIELDS = 'id type agent eye date notes';

export const CASE_QUERY = /* GraphQL */ `
  query CaseDetail($id: ID!) {
    case(id: $id) {
      id
      isSynthetic
      image { id eye width height quality }
      patient { ${PATIENT_FIELDS} }
      visit { id date }
      ageAtVisit
      referenceGrading { ${GRADING_FIELDS} }
      gradings { ${GRADING_FIELDS} }
      diagnoses { ${DIAGNOSIS_FIELDS} }
      treatments { ${TREATMENT_FIELDS} }
      followUp {
        gradings { imageId visitDate date drGrade drGradeName maculopathy source }
        diagnoses { ${DIAGNOSIS_FIELDS} }
        treatments { ${TREATMENT_FIELDS} }
      }
    }
  }
`;

/** The patient page's address for a patient: MRNs are unique only within their system, so both go in it. */
export function patientPath(patient: { mrn: string; mrnSystem: string }): string {
  return `/patients?${new URLSearchParams({ mrn: patient.mrn, system: patient.mrnSystem })}`;
}

export const casePath = (id: string) => `/cases/${encodeURIComponent(id)}`;

/** The existing search page's parameter for the query photograph is `imageId` (app/search/page.tsx). */
export const similarCasesPath = (id: string) => `/search?${new URLSearchParams({ imageId: id })}`;

/** Runs on the server only; NOT_FOUND, BAD_USER_INPUT (a malformed id) and FORBIDDEN come back as outcomes. */
export async function getCase(id: string, { returnTo }: { returnTo: string }): Promise<ApiOutcome<CaseDetail>> {
  const outcome = await requestGraphql<{ case?: CaseDetail | null }>({ operationName: 'CaseDetail', query: CASE_QUERY, variables: { id }, returnTo });
  if (!outcome.ok) return outcome;
  if (!outcome.data.case) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no case.' };
  return { ok: true, data: outcome.data.case };
}
