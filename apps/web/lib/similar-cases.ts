// Similar-case search: reading the GET form, and the one GraphQL operation behind it. Types mirror the
// committed schema.graphql at the repository root; test/web/search-page.test.mjs runs this query against it.
import { requestGraphql } from './api-request';
import { isDrGrade, type DrGrade } from './grades';

export const K_MIN = 1;
export const K_MAX = 100;
export const K_DEFAULT = 10;

export const EYES = ['LEFT', 'RIGHT'] as const;
export type Eye = (typeof EYES)[number];

export interface CaseFiltersInput {
  drGrades?: DrGrade[];
  eye?: Eye;
}

export interface SimilarCasesInput {
  imageId: string;
  k: number;
  filters?: CaseFiltersInput;
}

export interface SimilarCaseHit {
  rank: number;
  similarity: number;
  case: {
    id: string;
    isSynthetic: boolean;
    image: { id: string; eye: Eye };
    patient: { mrn: string; sex: string; birthYear: number | null };
    referenceGrading: { drGrade: number; maculopathy: boolean | null } | null;
    diagnoses: { id: string; code: string; text: string }[];
    // date: LocalDate (YYYY-MM-DD); eye: Laterality (LEFT | RIGHT | BOTH | UNSPECIFIED), unlike the photograph's Eye.
    treatments: { id: string; type: string; agent: string | null; date: string; eye: string }[];
  };
}

export interface SimilarCasesResult {
  modelVersion: string;
  hits: SimilarCaseHit[];
}

export type SearchOutcome =
  | { ok: true; result: SimilarCasesResult }
  | { ok: false; message: string; code: string };

export const SIMILAR_CASES_QUERY = /* GraphQL */ `
  query Similar($input: SimilarCasesInput!) {
    similarCases(input: $input) {
      modelVersion
      hits {
        rank
        similarity
        case {
          id
          isSynthetic
          image { id eye }
          patient { mrn sex birthYear }
          referenceGrading { drGrade maculopathy }
          diagnoses { id code text }
          treatments { id type agent date eye }
        }
      }
    }
  }
`;

type SearchParams = Record<string, string | string[] | undefined>;

/** What the form shows: exactly what was submitted, so a rejected value can be corrected in place. */
export interface SearchFormValues {
  imageId: string;
  k: string;
  grades: number[];
  eye: string;
}

export interface ParsedSearchForm {
  submitted: boolean;
  values: SearchFormValues;
  /** Set only when the submitted form is valid. */
  input: SimilarCasesInput | null;
  problems: string[];
}

function allValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function firstValue(value: string | string[] | undefined): string {
  return allValues(value)[0] ?? '';
}

export function parseSearchForm(params: SearchParams): ParsedSearchForm {
  const submitted = params.imageId !== undefined;
  const values: SearchFormValues = {
    imageId: firstValue(params.imageId).trim(),
    k: firstValue(params.k).trim() || String(K_DEFAULT),
    grades: [...new Set(allValues(params.grade).map(Number).filter(isDrGrade))].sort((a, b) => a - b),
    eye: firstValue(params.eye),
  };
  if (!submitted) return { submitted, values, input: null, problems: [] };

  const problems: string[] = [];
  if (values.imageId === '') problems.push('Enter the image id of the case to compare against.');
  const k = Number(values.k);
  if (!Number.isInteger(k) || k < K_MIN || k > K_MAX) {
    problems.push(`Number of cases must be a whole number from ${K_MIN} to ${K_MAX}.`);
  }
  const eye = EYES.find((candidate) => candidate === values.eye);
  if (values.eye !== '' && eye === undefined) problems.push('Eye must be left, right or either.');
  if (problems.length > 0) return { submitted, values, input: null, problems };

  const filters: CaseFiltersInput = {};
  if (values.grades.length > 0) filters.drGrades = values.grades as DrGrade[];
  if (eye !== undefined) filters.eye = eye;
  const input: SimilarCasesInput = { imageId: values.imageId, k };
  if (Object.keys(filters).length > 0) input.filters = filters;
  return { submitted, values, input, problems };
}

/** Runs on the server only; failures come back as an outcome, never as a thrown error (lib/api-request.ts). */
export async function searchSimilarCases(input: SimilarCasesInput, { returnTo }: { returnTo: string }): Promise<SearchOutcome> {
  const outcome = await requestGraphql<{ similarCases?: SimilarCasesResult | null }>({
    operationName: 'Similar',
    query: SIMILAR_CASES_QUERY,
    variables: { input },
    returnTo,
  });
  if (!outcome.ok) return outcome;
  const result = outcome.data.similarCases;
  if (!result) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no search result.' };
  return { ok: true, result };
}
