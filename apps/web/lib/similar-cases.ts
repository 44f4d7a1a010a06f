// Similar-case search: reading the GET form, and the one GraphQL operation behind it; test/web/search-page.test.mjs
// runs this query against the API.
import { requestGraphql } from './api-request';
import type { CaseFiltersInput, RefineSearchMutation, RefineSearchMutationVariables, RelevanceMarkInput, SimilarCasesInput, SimilarQuery, SimilarQueryVariables, SimilarResultFragment } from './generated/graphql';
import { DR_GRADES, isDrGrade, type DrGrade } from './grades';
import { formatTreatmentType } from './labels';

export const K_MIN = 1;
export const K_MAX = 100;
export const K_DEFAULT = 10;

export { AGE_MAX, AGE_MIN, EYES, SEXES, TREATMENT_TYPES, type Eye, type Sex, type TreatmentType } from './search-filters';
import { EYES, SEXES, TREATMENT_TYPES, AGE_MAX, AGE_MIN, type Eye, type Sex, type TreatmentType } from './search-filters';

// POST /uploads answers tokens of this form; anything else in ?upload= is refused before asking the API.
const UPLOAD_TOKEN_PATTERN = /^upl_[A-Za-z0-9_-]{1,200}$/;

// Result and input types are generated from schema.graphql for SIMILAR_CASES_QUERY (lib/generated/graphql.ts).
export type { CaseFiltersInput, SimilarCasesInput } from './generated/graphql';
export type SimilarCasesResult = SimilarResultFragment;
export type GradeSuggestion = SimilarCasesResult['suggestion'];
export type SimilarCaseHit = SimilarCasesResult['hits'][number];
/** A heat map over the model's cropped, square input, row-major from the top-left. */
export type AttentionMap = NonNullable<SimilarCaseHit['attention']>;

export type SearchOutcome =
  | { ok: true; result: SimilarCasesResult; refinement: { recorded: number; markedSearchId: string } | null }
  | { ok: false; message: string; code: string };

/** One search result as the page shows it; the search and its refinement (relevance feedback) both select it. */
export const SIMILAR_RESULT_FRAGMENT = /* GraphQL */ `
  fragment SimilarResult on SimilarCasesResult {
    modelVersion
    searchId
    query { id patient { mrn } image { id eye } visit { date } referenceGrading { drGrade drGradeName maculopathy source grader } }
    queryAttention { width height values }
    suggestion {
      id
      status
      suggestedGrade
      suggestedGradeName
      confidence
      reason
      gradeProbabilities { grade probability }
      referableProbability
      referable
      voters
      vote { grade share neighbours }
      rule
      calibrationModelVersion
      hitGrades { grade gradeName count }
      ungradedHits
      outcomes {
        hits
        undatedHits
        treatedAfter
        treatments { type hits }
        worsening { years followedUp worsened }
      }
    }
    hits {
      rank
      similarity
      attention { width height values }
      case {
        id
        isSynthetic
        image { id eye }
        patient { mrn sex birthYear }
        referenceGrading { drGrade maculopathy }
        diagnoses { id code text }
        treatments { id type agent date eye }
        followUp { gradings { imageId visitDate drGrade } treatments { id type agent date eye } }
      }
    }
  }
`;

export const SIMILAR_CASES_QUERY = /* GraphQL */ `
  query Similar($input: SimilarCasesInput!) {
    similarCases(input: $input) {
      ...SimilarResult
    }
  }
  ${SIMILAR_RESULT_FRAGMENT}
`;

/** Relevance feedback: the marks on one search's hits, and that search re-run with the refined query. */
export const REFINE_SEARCH_MUTATION = /* GraphQL */ `
  mutation RefineSearch($input: RelevanceFeedbackInput!) {
    submitRelevanceFeedback(input: $input) {
      recorded
      markedSearchId
      refined {
        ...SimilarResult
      }
    }
  }
  ${SIMILAR_RESULT_FRAGMENT}
`;

type SearchParams = Record<string, string | string[] | undefined>;

/** What the form shows: exactly what was submitted, so a rejected value can be corrected in place. */
export interface SearchFormValues {
  imageId: string;
  /** An upload token from POST /uploads; when set the search is by that photograph, not by imageId. */
  upload: string;
  k: string;
  grades: number[];
  eye: string;
  sex: string;
  ageMin: string;
  ageMax: string;
  treatments: string[];
  /** The hit (case id) shown side by side with the query. */
  compare: string;
  /** Search by region: a rectangle on the model's crop, in percent of its side ('' for the whole photograph). */
  region: { x: string; y: string; width: string; height: string };
  /** Relevance feedback: the searchId the marks were given on (set with marks by the Refine form). */
  search: string;
  /** Marks by case id, `mark:<caseId>=relevant|irrelevant` in the address. */
  marks: RelevanceMarkInput[];
}

/** Relevance marks travel in the address as mark:<caseId>=relevant|irrelevant; '' (unmarked) is left out. */
export const MARK_PREFIX = 'mark:';
export const MARKS_MAX = 100;

export interface ParsedSearchForm {
  submitted: boolean;
  values: SearchFormValues;
  /** Set only when the submitted form is valid. */
  input: SimilarCasesInput | null;
  /** Set when the address carries relevance marks on a search: the page refines that search instead. */
  feedback: { searchId: string; marks: RelevanceMarkInput[] } | null;
  problems: string[];
}

function allValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function firstValue(value: string | string[] | undefined): string {
  return allValues(value)[0] ?? '';
}

/** An age bound as typed: '' is no bound, anything else must be a whole number of years in range. */
function parseAge(text: string, label: string, problems: string[]): number | undefined {
  if (text === '') return undefined;
  const age = Number(text);
  if (!Number.isInteger(age) || age < AGE_MIN || age > AGE_MAX) {
    problems.push(`${label} must be a whole number of years from ${AGE_MIN} to ${AGE_MAX}.`);
    return undefined;
  }
  return age;
}

/** The region inputs (percent of the crop): all four or none; the API checks again that it lies in the crop. */
function parseRegion(region: SearchFormValues['region'], problems: string[]): { x: number; y: number; width: number; height: number } | undefined {
  const texts = [region.x, region.y, region.width, region.height];
  if (texts.every((text) => text === '')) return undefined;
  const numbers = texts.map(Number);
  if (texts.some((text) => text === '') || numbers.some((value) => !Number.isFinite(value) || value < 0 || value > 100)) {
    problems.push('The region needs all four of left, top, width and height, each from 0 to 100 (% of the crop).');
    return undefined;
  }
  const [x, y, width, height] = numbers as [number, number, number, number];
  if (width === 0 || height === 0) problems.push('The region must have a width and a height above 0.');
  else if (x + width > 100 || y + height > 100) problems.push('The region must lie inside the photograph: left + width and top + height at most 100.');
  return { x: x / 100, y: y / 100, width: width / 100, height: height / 100 };
}

export function parseSearchForm(params: SearchParams): ParsedSearchForm {
  const upload = firstValue(params.upload).trim();
  const submitted = params.imageId !== undefined || upload !== '';
  const values: SearchFormValues = {
    imageId: firstValue(params.imageId).trim(),
    upload,
    k: firstValue(params.k).trim() || String(K_DEFAULT),
    grades: [...new Set(allValues(params.grade).map(Number).filter(isDrGrade))].sort((a, b) => a - b),
    compare: firstValue(params.compare).trim(),
    search: firstValue(params.search).trim(),
    marks: [],
    region: { x: firstValue(params.regionX).trim(), y: firstValue(params.regionY).trim(), width: firstValue(params.regionWidth).trim(), height: firstValue(params.regionHeight).trim() },
    eye: firstValue(params.eye),
    sex: firstValue(params.sex),
    ageMin: firstValue(params.ageMin).trim(),
    ageMax: firstValue(params.ageMax).trim(),
    treatments: TREATMENT_TYPES.filter((type) => allValues(params.treatment).includes(type)),
  };
  if (!submitted) return { submitted, values, input: null, feedback: null, problems: [] };

  const problems: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    if (!name.startsWith(MARK_PREFIX)) continue;
    const caseId = name.slice(MARK_PREFIX.length);
    const mark = firstValue(value);
    if (mark === '') continue;
    if (caseId === '' || (mark !== 'relevant' && mark !== 'irrelevant')) {
      problems.push(`Relevance mark "${name}=${mark}" is not one this site makes: marks are relevant or irrelevant.`);
      continue;
    }
    values.marks.push({ caseId, relevant: mark === 'relevant' });
  }
  if (values.marks.length > MARKS_MAX) problems.push(`At most ${MARKS_MAX} relevance marks at a time.`);
  if (values.marks.length > 0 && values.search === '') problems.push('The relevance marks in the address name no search: mark the hits again and choose Refine.');
  // A value the form never offers (grade=7 typed into the address) is reported, not dropped: dropping it would
  // search wider than asked.
  const badGrades = allValues(params.grade).filter((value) => !isDrGrade(Number(value)) || value.trim() === '');
  if (badGrades.length > 0) problems.push(`DR grade ${badGrades.map((value) => `"${value}"`).join(', ')} is not an ICDR grade: grades are 0, 1, 2, 3 and 4.`);
  const badTreatments = allValues(params.treatment).filter((value) => !(TREATMENT_TYPES as readonly string[]).includes(value));
  if (badTreatments.length > 0) problems.push(`Treatment ${badTreatments.map((value) => `"${value}"`).join(', ')} is not one of ${TREATMENT_TYPES.join(', ')}.`);
  if (upload !== '' && !UPLOAD_TOKEN_PATTERN.test(upload)) {
    problems.push('The photograph reference in the address is not one this site made: choose the photograph again.');
  }
  if (upload === '' && values.imageId === '') problems.push('Enter the image id of the case to compare against, or choose a photograph.');
  const k = Number(values.k);
  if (!Number.isInteger(k) || k < K_MIN || k > K_MAX) {
    problems.push(`Number of cases must be a whole number from ${K_MIN} to ${K_MAX}.`);
  }
  const eye = EYES.find((candidate) => candidate === values.eye);
  if (values.eye !== '' && eye === undefined) problems.push('Eye must be left, right or either.');
  const sex = SEXES.find((candidate) => candidate === values.sex);
  if (values.sex !== '' && sex === undefined) problems.push('Sex must be female, male, other, unknown or any.');
  const ageMin = parseAge(values.ageMin, 'Youngest age', problems);
  const ageMax = parseAge(values.ageMax, 'Oldest age', problems);
  if (ageMin !== undefined && ageMax !== undefined && ageMin > ageMax) problems.push('Youngest age must not be above oldest age.');
  const region = parseRegion(values.region, problems);
  if (problems.length > 0) return { submitted, values, input: null, feedback: null, problems };

  const filters: CaseFiltersInput = {};
  if (values.grades.length > 0) filters.drGrades = values.grades as DrGrade[];
  if (eye !== undefined) filters.eye = eye;
  if (sex !== undefined) filters.sex = sex;
  if (ageMin !== undefined) filters.ageMin = ageMin;
  if (ageMax !== undefined) filters.ageMax = ageMax;
  if (values.treatments.length > 0) filters.treatmentTypes = values.treatments as TreatmentType[];
  const input: SimilarCasesInput = upload !== '' ? { uploadToken: upload, k } : { imageId: values.imageId, k };
  if (Object.keys(filters).length > 0) input.filters = filters;
  if (region) input.region = region;
  const feedback = values.marks.length > 0 ? { searchId: values.search, marks: values.marks } : null;
  return { submitted, values, input, feedback, problems };
}

/** Runs on the server only; failures come back as an outcome, never as a thrown error (lib/api-request.ts). */
export async function searchSimilarCases(input: SimilarCasesInput, { returnTo }: { returnTo: string }): Promise<SearchOutcome> {
  const variables: SimilarQueryVariables = { input };
  const outcome = await requestGraphql<SimilarQuery>({
    operationName: 'Similar',
    query: SIMILAR_CASES_QUERY,
    variables,
    returnTo,
  });
  if (!outcome.ok) return outcome;
  const result = outcome.data.similarCases;
  if (!result) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no search result.' };
  return { ok: true, result, refinement: null };
}

/**
 * Stores the marks on a search and shows that search re-run with the refined query. A second mark on the same
 * hit of the same search replaces the first, so reloading the refined address records nothing twice.
 */
export async function refineSimilarCases(feedback: { searchId: string; marks: RelevanceMarkInput[] }, { returnTo }: { returnTo: string }): Promise<SearchOutcome> {
  const variables: RefineSearchMutationVariables = { input: feedback };
  const outcome = await requestGraphql<RefineSearchMutation>({ operationName: 'RefineSearch', query: REFINE_SEARCH_MUTATION, variables, returnTo });
  if (!outcome.ok) return outcome;
  const answer = outcome.data.submitRelevanceFeedback;
  if (!answer) return { ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'The API returned no refined search.' };
  return { ok: true, result: answer.refined, refinement: { recorded: answer.recorded, markedSearchId: answer.markedSearchId } };
}

export interface FacetCount {
  key: string;
  label: string;
  count: number;
  /** The filter value this facet stands for; null for "not graded" / "none". */
  value: string | null;
}

/** How many hits have each reference grade, and each treatment type (at the time of the photograph). */
export function countFacets(hits: SimilarCaseHit[]): { grades: FacetCount[]; treatments: FacetCount[] } {
  const grades: FacetCount[] = DR_GRADES.map(({ grade, name }) => ({
    key: String(grade),
    label: `${grade} – ${name}`,
    value: String(grade),
    count: hits.filter((hit) => hit.case.referenceGrading?.drGrade === grade).length,
  }));
  const ungraded = hits.filter((hit) => !hit.case.referenceGrading).length;
  if (ungraded > 0) grades.push({ key: 'none', label: 'Not graded', value: null, count: ungraded });
  const treatments: FacetCount[] = TREATMENT_TYPES.map((type) => ({
    key: type,
    label: formatTreatmentType(type),
    value: type,
    count: hits.filter((hit) => hit.case.treatments.some((treatment) => treatment.type === type)).length,
  }));
  treatments.push({ key: 'none', label: 'No treatment', value: null, count: hits.filter((hit) => hit.case.treatments.length === 0).length });
  return { grades, treatments };
}

export interface TreatmentSummary {
  key: string;
  type: string;
  agent: string | null;
  eye: string | null;
  count: number;
  first: string;
  last: string;
}

/** Treatments grouped by type, agent and eye, oldest first: a patient seen for years has dozens of observation visits. */
export function summariseTreatments(treatments: readonly { type: string; agent?: string | null; eye?: string | null; date: string }[]): TreatmentSummary[] {
  const groups = new Map<string, TreatmentSummary>();
  for (const treatment of [...treatments].sort((a, b) => a.date.localeCompare(b.date))) {
    const key = `${treatment.type}:${treatment.agent ?? ''}:${treatment.eye ?? ''}`;
    const group = groups.get(key);
    if (group) {
      group.count += 1;
      group.last = treatment.date;
    } else groups.set(key, { key, type: treatment.type, agent: treatment.agent ?? null, eye: treatment.eye ?? null, count: 1, first: treatment.date, last: treatment.date });
  }
  return [...groups.values()];
}

/** Later grades of the eye as changes only: the first later grade, then each visit where it differs. */
export function summariseGradeCourse(gradings: readonly { drGrade: number; visitDate: string }[]): { drGrade: number; visitDate: string }[] {
  const changes: { drGrade: number; visitDate: string }[] = [];
  for (const grading of [...gradings].sort((a, b) => a.visitDate.localeCompare(b.visitDate))) {
    if (changes.at(-1)?.drGrade !== grading.drGrade) changes.push({ drGrade: grading.drGrade, visitDate: grading.visitDate });
  }
  return changes;
}
