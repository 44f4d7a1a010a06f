// The clinician's reading of a searched, stored photograph (CBR revise) through the API's reviseCase mutation:
// reading the revise form and telling the person what happened in the words of the API's error codes.
// Server-side only.
import 'server-only';
import { requestGraphql } from './api-request';
import type { ReviseCaseInput, ReviseSearchedCaseMutation, ReviseSearchedCaseMutationVariables } from './generated/graphql';
import { isDrGrade } from './grades';
import type { ReviseCaseState } from './revise-case-fields';

export type { ReviseCaseState };

export const REVISE_CASE_MUTATION = /* GraphQL */ `
  mutation ReviseSearchedCase($input: ReviseCaseInput!) {
    reviseCase(input: $input) {
      gradingId
      case { id referenceGrading { drGrade drGradeName maculopathy source grader } }
      suggestion { id status suggestedGrade agrees }
    }
  }
`;

const text = (form: FormData, name: string) => {
  const value = form.get(name);
  return typeof value === 'string' ? value.trim() : '';
};

/** The form as reviseCase input, or the first thing a person must fix (checked again, fully, by the API). */
export function readReviseCaseForm(form: FormData): { input: ReviseCaseInput } | { problem: string; field: string } {
  const caseId = text(form, 'caseId');
  if (!caseId) return { problem: 'Search with a stored photograph first.', field: 'caseId' };
  const grade = text(form, 'drGrade');
  if (grade === '' || !isDrGrade(Number(grade))) return { problem: 'Choose the DR grade, 0 to 4.', field: 'drGrade' };
  const input: ReviseCaseInput = { caseId, drGrade: Number(grade) };
  const maculopathy = text(form, 'maculopathy');
  if (maculopathy === 'yes' || maculopathy === 'no') input.maculopathy = maculopathy === 'yes';
  const suggestionId = text(form, 'suggestionId');
  if (suggestionId) input.suggestionId = suggestionId;
  const code = text(form, 'diagnosisCode');
  const description = text(form, 'diagnosisText');
  if (code || description) {
    if (!code || !description) return { problem: 'Diagnosis: give both the ICD-10-CM code and its description, or neither.', field: code ? 'diagnosisText' : 'diagnosisCode' };
    input.diagnosis = { icd10Code: code, text: description };
  }
  return { input };
}

/** What a person is told for each of the API's refusals of a revision (under "The reading was not recorded"). */
export function describeReviseRefusal(code: string, message: string): string {
  switch (code) {
    case 'NOT_FOUND':
      return `The case or the suggestion no longer exists: search again. (${message})`;
    case 'FORBIDDEN':
      return 'Your role may not grade cases.';
    case 'BAD_USER_INPUT':
      return message;
    default:
      return message;
  }
}

export async function reviseSearchedCase(input: ReviseCaseInput, returnTo: string): Promise<ReviseCaseState> {
  const variables: ReviseSearchedCaseMutationVariables = { input };
  const outcome = await requestGraphql<ReviseSearchedCaseMutation>({ operationName: 'ReviseSearchedCase', query: REVISE_CASE_MUTATION, variables, returnTo });
  if (!outcome.ok) {
    const extensions = outcome.extensions ?? {};
    return { kind: 'refused', code: outcome.code, message: describeReviseRefusal(outcome.code, outcome.message), field: typeof extensions.field === 'string' ? extensions.field : null };
  }
  const revised = outcome.data.reviseCase;
  const grading = revised.case.referenceGrading;
  if (!grading) return { kind: 'refused', code: 'INTERNAL_SERVER_ERROR', message: 'The API recorded the reading but returned no reference grading.', field: null };
  return {
    kind: 'revised',
    caseId: revised.case.id,
    drGrade: grading.drGrade,
    drGradeName: grading.drGradeName,
    maculopathy: grading.maculopathy,
    source: grading.source,
    grader: grading.grader,
    agrees: revised.suggestion?.agrees ?? null,
    suggestedGrade: revised.suggestion?.suggestedGrade ?? null,
  };
}
