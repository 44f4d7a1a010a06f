// Saving an uploaded photograph as a case through the API's ingestCase mutation: reading the save form and
// telling the person what happened in the words of the API's error codes. Server-side only.
import 'server-only';
import { requestGraphql } from './api-request';
import type { IngestCaseInput, IngestDiagnosisInput, IngestPatientInput, IngestTreatmentInput, SaveUploadedCaseMutation, SaveUploadedCaseMutationVariables } from './generated/graphql';
import { config } from './config';
import { ANTI_VEGF_AGENTS, LATERALITIES, RECORD_ROWS, type SaveCaseState } from './save-case-fields';
import { EYES, SEXES, TREATMENT_TYPES } from './search-filters';

export type { SaveCaseState };

export const INGEST_CASE_MUTATION = /* GraphQL */ `
  mutation SaveUploadedCase($input: IngestCaseInput!) {
    ingestCase(input: $input) {
      status
      case { id patient { mrn } }
    }
  }
`;

const text = (form: FormData, name: string) => {
  const value = form.get(name);
  return typeof value === 'string' ? value.trim() : '';
};
const oneOf = <T extends string>(allowed: readonly T[], value: string): T | undefined => allowed.find((candidate) => candidate === value);

/** The form as ingestCase input, or the first thing a person must fix (checked again, fully, by the API). */
export function readSaveCaseForm(form: FormData, grader: string): { input: IngestCaseInput } | { problem: string; field: string } {
  const uploadToken = text(form, 'uploadToken');
  const mrn = text(form, 'mrn');
  const mrnSystem = text(form, 'mrnSystem');
  const visitDate = text(form, 'visitDate');
  const eye = oneOf(EYES, text(form, 'eye'));
  if (!uploadToken) return { problem: 'Choose a photograph first.', field: 'uploadToken' };
  if (!mrn) return { problem: 'Enter the patient’s MRN.', field: 'mrn' };
  if (!mrnSystem) return { problem: 'Enter the MRN’s identifier system.', field: 'mrnSystem' };
  if (!visitDate) return { problem: 'Enter the visit date.', field: 'visitDate' };
  if (!eye) return { problem: 'Choose the eye photographed.', field: 'eye' };
  const patient: IngestPatientInput = { mrn, mrnSystem };
  const birthYear = text(form, 'birthYear');
  if (birthYear) {
    if (!/^\d{4}$/.test(birthYear)) return { problem: 'Birth year must be a four-digit year.', field: 'birthYear' };
    patient.birthYear = Number(birthYear);
  }
  const sex = oneOf(SEXES, text(form, 'sex'));
  if (sex) patient.sex = sex;
  const input: IngestCaseInput = { uploadToken, dataset: config.caseDataset, patient, visitDate, eye };
  const grade = text(form, 'drGrade');
  if (grade) input.grading = { drGrade: Number(grade), grader };
  const diagnoses: IngestDiagnosisInput[] = [];
  const treatments: IngestTreatmentInput[] = [];
  for (let row = 0; row < RECORD_ROWS; row += 1) {
    const code = text(form, `diagnosis${row}Code`);
    const description = text(form, `diagnosis${row}Text`);
    if (code || description) {
      if (!code || !description) return { problem: `Diagnosis ${row + 1}: give both the ICD-10-CM code and its description.`, field: `diagnosis${row}Code` };
      diagnoses.push({ icd10Code: code, text: description, eye: oneOf(LATERALITIES, text(form, `diagnosis${row}Eye`)) ?? eye, date: text(form, `diagnosis${row}Date`) || visitDate });
    }
    const type = oneOf(TREATMENT_TYPES, text(form, `treatment${row}Type`));
    if (type) {
      const agent = oneOf(ANTI_VEGF_AGENTS, text(form, `treatment${row}Agent`));
      treatments.push({ type, ...(agent ? { agent } : {}), eye: oneOf(LATERALITIES, text(form, `treatment${row}Eye`)) ?? eye, date: text(form, `treatment${row}Date`) || visitDate });
    }
  }
  input.diagnoses = diagnoses;
  input.treatments = treatments;
  return { input };
}

/** What a person is told for each of the API's refusals of a save (under the title "The case was not saved"). */
export function describeSaveRefusal(code: string, message: string): string {
  switch (code) {
    case 'NOT_FOUND':
      return 'The uploaded photograph has expired (it is kept for 10 minutes) or was never uploaded here: choose it again, then save.';
    case 'CONFLICT':
      // The API's message names the stored case and says why (another patient or eye).
      return message;
    case 'FORBIDDEN':
      return 'Your role may not save cases.';
    default:
      return message;
  }
}

export async function saveUploadedCase(input: IngestCaseInput, returnTo: string): Promise<SaveCaseState> {
  const variables: SaveUploadedCaseMutationVariables = { input };
  const outcome = await requestGraphql<SaveUploadedCaseMutation>({
    operationName: 'SaveUploadedCase',
    query: INGEST_CASE_MUTATION,
    variables,
    returnTo,
  });
  if (!outcome.ok) {
    const extensions = outcome.extensions ?? {};
    return {
      kind: 'refused',
      code: outcome.code,
      message: describeSaveRefusal(outcome.code, outcome.message),
      field: typeof extensions.field === 'string' ? extensions.field : null,
      conflictCaseId: typeof extensions.caseId === 'string' ? extensions.caseId : null,
    };
  }
  const saved = outcome.data.ingestCase;
  return { kind: 'saved', status: saved.status, caseId: saved.case.id, mrn: saved.case.patient.mrn };
}
