// One case (a photograph with its records and what followed), and the record types the patient and case pages
// share. test/web/case-pages.test.mjs reads the pages against the API.
import { requestGraphql, type ApiOutcome } from './api-request';
import type { CaseDetailQuery, CaseDetailQueryVariables, DiagnosisFieldsFragment, GradingFieldsFragment, PatientFieldsFragment, TreatmentFieldsFragment } from './generated/graphql';

// Result types are generated from schema.graphql for these documents (lib/generated/graphql.ts, apps/web/codegen.mjs).
export type { Eye } from './generated/graphql';
export type GradingRecord = GradingFieldsFragment;
export type DiagnosisRecord = DiagnosisFieldsFragment;
export type TreatmentRecord = TreatmentFieldsFragment;
export type PatientSummary = PatientFieldsFragment;
export type CaseDetail = NonNullable<CaseDetailQuery['case']>;
export type FollowUpGradingRecord = CaseDetail['followUp']['gradings'][number];

// Fragments shared by the case and patient documents (graphql-codegen resolves them by name).
export const RECORD_FRAGMENTS = /* GraphQL */ `
  fragment PatientFields on Patient {
    id mrn mrnSystem birthYear sex diabetesType diabetesDiagnosisYear
    dataset { name isSynthetic }
    isSynthetic
  }
  fragment GradingFields on Grading { id drGrade drGradeName maculopathy source grader date }
  fragment DiagnosisFields on Diagnosis { id code text eye date }
  fragment TreatmentFields on Treatment { id type agent eye date notes }
`;

export const CASE_QUERY = /* GraphQL */ `
  query CaseDetail($id: ID!) {
    case(id: $id) {
      id
      isSynthetic
      image { id eye width height quality }
      patient { ...PatientFields }
      visit { id date }
      ageAtVisit
      referenceGrading { ...GradingFields }
      gradings { ...GradingFields }
      diagnoses { ...DiagnosisFields }
      treatments { ...TreatmentFields }
      followUp {
        gradings { imageId visitDate date drGrade drGradeName maculopathy source }
        diagnoses { ...DiagnosisFields }
        treatments { ...TreatmentFields }
      }
    }
  }
  ${RECORD_FRAGMENTS}
`;

/** The patient page's address for a patient: MRNs are unique only within their system, so both go in it. */
export function patientPath(patient: { mrn: string; mrnSystem: string }): string {
  return `/patients?${new URLSearchParams({ mrn: patient.mrn, system: patient.mrnSystem })}`;
}

export { casePath } from './paths';

/** The existing search page's parameter for the query photograph is `imageId` (app/search/page.tsx). */
export const similarCasesPath = (id: string) => `/search?${new URLSearchParams({ imageId: id })}`;

/** Runs on the server only; NOT_FOUND, BAD_USER_INPUT (a malformed id) and FORBIDDEN come back as outcomes. */
export async function getCase(id: string, { returnTo }: { returnTo: string }): Promise<ApiOutcome<CaseDetail>> {
  const variables: CaseDetailQueryVariables = { id };
  const outcome = await requestGraphql<CaseDetailQuery>({ operationName: 'CaseDetail', query: CASE_QUERY, variables, returnTo });
  if (!outcome.ok) return outcome;
  if (!outcome.data.case) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no case.' };
  return { ok: true, data: outcome.data.case };
}
