// Cohort statistics: reading the cohort builder's GET form, and the one GraphQL operation behind the page and its
// CSV downloads. Result types are generated from schema.graphql (lib/generated/graphql.ts); inputs too.
// test/web/cohort-statistics.test.mjs
// runs this query against the real API.
import { requestGraphql, type ApiOutcome } from './api-request';
import type { CohortStatisticsQuery, CohortStatisticsQueryVariables, CountTableFieldsFragment, GroupSummaryFieldsFragment } from './generated/graphql';
import { DR_GRADES } from './grades';

type SearchParams = Record<string, string | string[] | undefined>;

export const GRADE_TIMINGS = ['BASELINE', 'ANY_VISIT'] as const;
export const EYES = ['LEFT', 'RIGHT'] as const;
export const SEXES = ['FEMALE', 'MALE', 'OTHER', 'UNKNOWN'] as const;
export const AGE_BANDS = ['UNDER_40', 'FROM_40_TO_49', 'FROM_50_TO_59', 'FROM_60_TO_69', 'FROM_70_TO_79', 'AT_LEAST_80'] as const;
export const DIABETES_TYPES = ['TYPE_1', 'TYPE_2', 'GESTATIONAL', 'OTHER', 'UNKNOWN'] as const;
export const HBA1C_BANDS = ['UNDER_7', 'FROM_7_TO_8', 'FROM_8_TO_9', 'AT_LEAST_9'] as const;
export const TREATMENT_TYPES = ['ANTI_VEGF', 'PRP_LASER', 'FOCAL_LASER', 'VITRECTOMY', 'OBSERVATION'] as const;
export const WORSENING_EVENTS = ['ONE_STEP', 'REFERABLE', 'PDR'] as const;
export const SURVIVAL_STRATA = ['BASELINE_GRADE', 'HBA1C_BAND', 'TREATMENT'] as const;
/** The form's "no time-to-worsening analysis" choice; any other event value is a WorseningEvent. */
export const NO_EVENT = 'NONE';
export const DEFAULT_EVENT = 'ONE_STEP';
// The API enforces its own floor (COHORT_MIN_CELL_SIZE); this only keeps the number input sane.
export const K_MAX = 100;

export const AGE_BAND_LABELS: Record<string, string> = {
  UNDER_40: 'Under 40',
  FROM_40_TO_49: '40–49',
  FROM_50_TO_59: '50–59',
  FROM_60_TO_69: '60–69',
  FROM_70_TO_79: '70–79',
  AT_LEAST_80: '80 and over',
};
export const HBA1C_BAND_LABELS: Record<string, string> = {
  UNDER_7: 'Under 7 %',
  FROM_7_TO_8: '7–8 %',
  FROM_8_TO_9: '8–9 %',
  AT_LEAST_9: '9 % and over',
};
export const EVENT_LABELS: Record<string, string> = {
  ONE_STEP: 'One ICDR step worse',
  REFERABLE: 'Referable DR (grade 2 or more)',
  PDR: 'Proliferative DR (grade 4)',
};
export const STRATUM_LABELS: Record<string, string> = {
  BASELINE_GRADE: 'Baseline grade',
  HBA1C_BAND: 'HbA1c band',
  TREATMENT: 'Treatment',
};

export type { CohortFilterInput, WorseningInput } from './generated/graphql';
import type { CohortFilterInput, WorseningInput } from './generated/graphql';

export interface CohortQueryInput {
  filter: CohortFilterInput;
  k?: number;
  timeToWorsening?: WorseningInput;
}

/** What the form shows: exactly what was asked for, so a rejected value can be corrected in place. */
export interface CohortFormValues {
  grades: string[];
  gradeAt: string;
  eye: string;
  sexes: string[];
  ageBands: string[];
  diabetesTypes: string[];
  hba1cBands: string[];
  treatments: string[];
  event: string;
  stratum: string;
  k: string;
}

export interface ParsedCohortForm {
  values: CohortFormValues;
  /** Null when any value was refused; `problems` then says which and why. */
  input: CohortQueryInput | null;
  problems: string[];
}

const listOf = (value: string | string[] | undefined): string[] =>
  (Array.isArray(value) ? value : value === undefined ? [] : [value]).map((item) => item.trim()).filter((item) => item !== '');

const single = (value: string | string[] | undefined): string => listOf(value)[0] ?? '';

const quoteAll = (values: readonly string[]) => values.map((value) => `"${value}"`).join(', ');

/**
 * The form's query-string names and what each accepts. A value outside the list is a problem named to the
 * person, never dropped: a dropped filter would silently widen the cohort.
 */
function checkEnumList(problems: string[], label: string, values: string[], allowed: readonly string[]): string[] {
  const unknown = values.filter((value) => !allowed.includes(value));
  if (unknown.length > 0) problems.push(`${label}: ${quoteAll(unknown)} is not one of ${allowed.join(', ')}.`);
  return [...new Set(values.filter((value) => allowed.includes(value)))];
}

function checkEnum<T extends string>(problems: string[], label: string, value: string, allowed: readonly T[]): T | undefined {
  if (value === '') return undefined;
  const found = allowed.find((candidate) => candidate === value);
  if (found !== undefined) return found;
  problems.push(`${label}: "${value}" is not one of ${allowed.join(', ')}.`);
  return undefined;
}

export function parseCohortForm(params: SearchParams): ParsedCohortForm {
  const values: CohortFormValues = {
    grades: listOf(params.grade),
    gradeAt: single(params.gradeAt),
    eye: single(params.eye),
    sexes: listOf(params.sex),
    ageBands: listOf(params.age),
    diabetesTypes: listOf(params.diabetes),
    hba1cBands: listOf(params.hba1c),
    treatments: listOf(params.treatment),
    event: single(params.event) || DEFAULT_EVENT,
    stratum: single(params.stratum),
    k: single(params.k),
  };
  const problems: string[] = [];

  const gradeNames = DR_GRADES.map(({ grade }) => String(grade));
  const badGrades = values.grades.filter((grade) => !gradeNames.includes(grade));
  if (badGrades.length > 0) problems.push(`DR grade: ${quoteAll(badGrades)} is not an ICDR grade; grades are 0, 1, 2, 3 and 4.`);
  const drGrades = [...new Set(values.grades.filter((grade) => gradeNames.includes(grade)).map(Number))].sort();

  const filter: CohortFilterInput = {};
  if (drGrades.length > 0) filter.drGrades = drGrades;
  const gradeAt = checkEnum(problems, 'Grade at', values.gradeAt, GRADE_TIMINGS);
  if (gradeAt) filter.gradeAt = gradeAt;
  const eye = checkEnum(problems, 'Eye', values.eye, EYES);
  if (eye) filter.eye = eye;
  const lists: [keyof CohortFilterInput, string, string[], readonly string[]][] = [
    ['sexes', 'Sex', values.sexes, SEXES],
    ['ageBands', 'Age band', values.ageBands, AGE_BANDS],
    ['diabetesTypes', 'Diabetes type', values.diabetesTypes, DIABETES_TYPES],
    ['hba1cBands', 'HbA1c band', values.hba1cBands, HBA1C_BANDS],
    ['treatments', 'Treatment received', values.treatments, TREATMENT_TYPES],
  ];
  for (const [field, label, submitted, allowed] of lists) {
    const accepted = checkEnumList(problems, label, submitted, allowed);
    if (accepted.length > 0) (filter[field] as string[]) = accepted;
  }

  let timeToWorsening: WorseningInput | undefined;
  if (values.event !== NO_EVENT) {
    const event = checkEnum(problems, 'Worsening event', values.event, WORSENING_EVENTS);
    const stratifyBy = checkEnum(problems, 'Stratify by', values.stratum, SURVIVAL_STRATA);
    if (event) timeToWorsening = stratifyBy ? { event, stratifyBy } : { event };
  } else if (values.stratum !== '') {
    problems.push('Stratify by: a stratum needs a worsening event; choose one or leave the stratum empty.');
  }

  let k: number | undefined;
  if (values.k !== '') {
    if (!/^\d+$/.test(values.k) || Number(values.k) < 2 || Number(values.k) > K_MAX) {
      problems.push(`Minimum cell size: "${values.k}" is not a whole number from 2 to ${K_MAX}.`);
    } else {
      k = Number(values.k);
    }
  }

  if (problems.length > 0) return { values, input: null, problems };
  const input: CohortQueryInput = { filter };
  if (k !== undefined) input.k = k;
  if (timeToWorsening) input.timeToWorsening = timeToWorsening;
  return { values, input, problems };
}

/** The query string that asks for the same cohort (for CSV links), from the values the form accepted. */
export function cohortQueryString(values: CohortFormValues): URLSearchParams {
  const query = new URLSearchParams();
  for (const grade of values.grades) query.append('grade', grade);
  if (values.gradeAt) query.set('gradeAt', values.gradeAt);
  if (values.eye) query.set('eye', values.eye);
  for (const sex of values.sexes) query.append('sex', sex);
  for (const age of values.ageBands) query.append('age', age);
  for (const type of values.diabetesTypes) query.append('diabetes', type);
  for (const band of values.hba1cBands) query.append('hba1c', band);
  for (const treatment of values.treatments) query.append('treatment', treatment);
  query.set('event', values.event);
  if (values.stratum) query.set('stratum', values.stratum);
  if (values.k) query.set('k', values.k);
  return query;
}

// Result types generated from schema.graphql for COHORT_STATISTICS_QUERY (lib/generated/graphql.ts).
export type CountTable = CountTableFieldsFragment;
export type GroupSummary = GroupSummaryFieldsFragment;
export type CohortStatistics = CohortStatisticsQuery['cohortStatistics'];
export type TimeToWorsening = NonNullable<CohortStatistics['timeToWorsening']>;
export type SurvivalCurve = TimeToWorsening['curves'][number];

const COHORT_FRAGMENTS = /* GraphQL */ `
  fragment CountTableFields on CountTable { name rowTitle columnTitle rows columns cells rowTotals columnTotals total suppressedCells csv }
  fragment GroupSummaryFields on GroupSummary { group n median lowerQuartile upperQuartile withheld }
`;

export const COHORT_STATISTICS_QUERY = /* GraphQL */ `
  query CohortStatistics($filter: CohortFilterInput!, $k: Int, $timeToWorsening: WorseningInput) {
    cohortStatistics(filter: $filter, k: $k, timeToWorsening: $timeToWorsening) {
      minimumCellSize
      patients
      eyes
      gradeDistributions { ...CountTableFields }
      transitionMatrix { ...CountTableFields }
      treatments {
        counts { ...CountTableFields }
        injectionsPerPatientYear { ...GroupSummaryFields }
      }
      hba1cByGrade { ...GroupSummaryFields }
      timeToWorsening {
        event
        stratifiedBy
        curves {
          stratum withheld eyes events
          steps { time survival lower upper }
          censorTimes
          numbersAtRisk { time atRisk }
          truncatedAt medianYears
        }
        logRank { chiSquare degreesOfFreedom pValue strata }
        undatedEyesExcluded
      }
    }
  }
  ${COHORT_FRAGMENTS}
`;

export async function getCohortStatistics(
  input: CohortQueryInput,
  { returnTo }: { returnTo: string },
): Promise<ApiOutcome<CohortStatistics>> {
  const outcome = await requestGraphql<CohortStatisticsQuery>({
    operationName: 'CohortStatistics',
    query: COHORT_STATISTICS_QUERY,
    variables: { filter: input.filter, k: input.k ?? null, timeToWorsening: input.timeToWorsening ?? null } satisfies CohortStatisticsQueryVariables,
    returnTo,
  });
  return outcome.ok ? { ok: true, data: outcome.data.cohortStatistics } : outcome;
}

const capitalise = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** A caption from the API's table name (grade-per-eye-baseline-by-age-band) and its titles. */
export function describeCountTable(table: CountTable): string {
  if (table.name === 'transition-matrix') return 'Eyes by baseline grade (rows) and latest grade (columns)';
  if (table.name === 'treatments') return 'Treatments: patients treated and treatments given, by type';
  const unit = table.name.includes('per-patient') ? 'Patients' : 'Eyes';
  const by = table.rowTitle === 'eyes' || table.rowTitle === 'patients' ? '' : ` and ${table.rowTitle}`;
  return table.columnTitle ? `${unit} by ${table.columnTitle}${by}` : capitalise(table.name.replaceAll('-', ' '));
}

/** Every downloadable table of a result, by a stable id for its CSV link. */
export interface DownloadableTable {
  id: string;
  title: string;
  csv: string;
}

const csvField = (value: string | number | null, missing: string) => {
  const text = value === null ? missing : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

/** Summaries have no csv field in the API; written here the way the API writes count tables. */
export function summariesToCsv(summaries: GroupSummary[]): string {
  const header = 'group,n,median,lower_quartile,upper_quartile';
  const lines = summaries.map((summary) =>
    [summary.group, summary.n, summary.median, summary.lowerQuartile, summary.upperQuartile]
      .map((value) => csvField(value, summary.withheld ? 'withheld' : ''))
      .join(','),
  );
  return [header, ...lines].join('\n') + '\n';
}

export function listDownloadableTables(statistics: CohortStatistics): DownloadableTable[] {
  return [
    ...[...statistics.gradeDistributions, statistics.transitionMatrix, statistics.treatments.counts].map((table) => ({
      id: table.name,
      title: describeCountTable(table),
      csv: table.csv,
    })),
    { id: 'hba1c-by-grade', title: 'Baseline HbA1c by grade', csv: summariesToCsv(statistics.hba1cByGrade) },
    {
      id: 'injections-per-patient-year',
      title: 'Anti-VEGF injections per patient-year',
      csv: summariesToCsv([statistics.treatments.injectionsPerPatientYear]),
    },
  ];
}
