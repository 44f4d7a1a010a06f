// The researcher's cohort filter: validation (stable codes for contradictory or reversed filters) and the query of
// the cohort's eyes, which every aggregate query wraps in a CTE. No identifier ever leaves the database from here.
import { Prisma } from '../../generated/prisma/client.js';
import type { DiabetesType, Eye, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { badInput } from '../../errors.js';

/**
 * Age at baseline in whole years (visit year - birth year), in the bands researchers report. The bounds are
 * applied where the bands are computed, in eye_course_rows (prisma/migrations/0004_eye_summary); here only the
 * keys and the labels tables show.
 */
export const AGE_BANDS = [
  { key: 'UNDER_40', label: '<40' },
  { key: 'FROM_40_TO_49', label: '40-49' },
  { key: 'FROM_50_TO_59', label: '50-59' },
  { key: 'FROM_60_TO_69', label: '60-69' },
  { key: 'FROM_70_TO_79', label: '70-79' },
  { key: 'AT_LEAST_80', label: '80+' },
] as const;
export type AgeBandKey = (typeof AGE_BANDS)[number]['key'];

/** HbA1c (%) at baseline, banded in eye_course_rows: <7, 7-7.9, 8-8.9, >=9. */
export type Hba1cBandKey = 'UNDER_7' | 'FROM_7_TO_8' | 'FROM_8_TO_9' | 'AT_LEAST_9';

export type CohortFilter = {
  drGrades?: number[] | null;
  /** BASELINE: the eye's first graded visit in range has one of drGrades; ANY_VISIT: any graded visit has. */
  gradeAt?: 'BASELINE' | 'ANY_VISIT' | null;
  eye?: Eye | null;
  sexes?: Sex[] | null;
  ageBands?: AgeBandKey[] | null;
  diabetesTypes?: DiabetesType[] | null;
  diabetesDurationMinYears?: number | null;
  diabetesDurationMaxYears?: number | null;
  hba1cBands?: Hba1cBandKey[] | null;
  /** Eyes that received at least one of these (any time in the record). */
  treatments?: TreatmentType[] | null;
  datasets?: string[] | null;
  /** Visits considered; dates are filters only and never appear in any output. */
  visitsFrom?: string | null;
  visitsTo?: string | null;
};

export function validateCohortFilter(filter: CohortFilter, now = new Date()): CohortFilter {
  const grades = filter.drGrades ?? null;
  if (grades) {
    if (grades.length === 0) throw badInput('filter.drGrades is empty: no eye can match; leave it out to include every grade', { field: 'filter.drGrades', reason: 'CONTRADICTORY_FILTERS' });
    for (const grade of grades) if (!Number.isInteger(grade) || grade < 0 || grade > 4) throw badInput(`filter.drGrades: ${grade} is not an ICDR grade 0-4`, { field: 'filter.drGrades' });
  }
  if (filter.gradeAt && !grades) throw badInput('filter.gradeAt needs filter.drGrades', { field: 'filter.gradeAt', reason: 'CONTRADICTORY_FILTERS' });
  for (const [name, list] of Object.entries({ sexes: filter.sexes, ageBands: filter.ageBands, diabetesTypes: filter.diabetesTypes, hba1cBands: filter.hba1cBands, treatments: filter.treatments, datasets: filter.datasets })) {
    if (list && list.length === 0) throw badInput(`filter.${name} is empty: nothing can match; leave it out to include all`, { field: `filter.${name}`, reason: 'CONTRADICTORY_FILTERS' });
  }
  for (const dataset of filter.datasets ?? []) if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(dataset)) throw badInput(`filter.datasets: "${dataset.slice(0, 64)}" is not a dataset name`, { field: 'filter.datasets' });
  const { diabetesDurationMinYears: durationMin, diabetesDurationMaxYears: durationMax } = filter;
  for (const [name, value] of [['diabetesDurationMinYears', durationMin], ['diabetesDurationMaxYears', durationMax]] as const) {
    if (value != null && (!Number.isInteger(value) || value < 0 || value > 120)) throw badInput(`filter.${name} must be a whole number of years 0-120`, { field: `filter.${name}` });
  }
  if (durationMin != null && durationMax != null && durationMin > durationMax) throw badInput(`filter.diabetesDurationMinYears (${durationMin}) is above filter.diabetesDurationMaxYears (${durationMax})`, { field: 'filter.diabetesDurationMinYears', reason: 'REVERSED_RANGE' });
  const today = now.toISOString().slice(0, 10);
  for (const [name, value] of [['visitsFrom', filter.visitsFrom], ['visitsTo', filter.visitsTo]] as const) {
    if (value != null && (!/^\d{4}-\d{2}-\d{2}$/.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`)))) throw badInput(`filter.${name} must be a date YYYY-MM-DD`, { field: `filter.${name}` });
  }
  if (filter.visitsFrom && filter.visitsTo && filter.visitsFrom > filter.visitsTo) throw badInput(`filter.visitsFrom (${filter.visitsFrom}) is after filter.visitsTo (${filter.visitsTo})`, { field: 'filter.visitsFrom', reason: 'REVERSED_RANGE' });
  if (filter.visitsFrom && filter.visitsFrom > today) throw badInput(`filter.visitsFrom (${filter.visitsFrom}) is in the future: no visit can match`, { field: 'filter.visitsFrom', reason: 'CONTRADICTORY_FILTERS' });
  return filter;
}

const inList = <T extends string>(column: string, values: readonly T[] | null | undefined, cast: string) =>
  values && values.length ? Prisma.sql`AND ${Prisma.raw(column)} IN (${Prisma.join(values.map((value) => Prisma.sql`${value}::${Prisma.raw(cast)}`))})` : Prisma.empty;

/**
 * The cohort's eyes as a query: its rows of eye_summary (one per eye; migration 0004), or, with a visit-date
 * filter, the same rows recomputed over the visits in range by eye_course_rows (slower: it reads every visit).
 * Each aggregate query puts it in a CTE named cohort_eye, so they can run in parallel on separate connections.
 */
export function cohortEyesQuery(filter: CohortFilter): Prisma.Sql {
  const dated = Boolean(filter.visitsFrom || filter.visitsTo);
  const source = dated
    ? Prisma.sql`eye_course_rows(NULL, ${filter.visitsFrom ?? null}::date, ${filter.visitsTo ?? null}::date)`
    : Prisma.sql`eye_summary`;
  const grades = filter.drGrades && filter.drGrades.length ? filter.drGrades : null;
  const gradeFilter = grades
    ? filter.gradeAt === 'ANY_VISIT'
      ? Prisma.sql`AND e.grade_mask & ${grades.reduce((mask, grade) => mask | (1 << grade), 0)} <> 0`
      : Prisma.sql`AND e.baseline_grade IN (${Prisma.join(grades)})`
    : Prisma.empty;
  const treatmentColumns: Record<string, string> = { ANTI_VEGF: 'anti_vegf_count', PRP_LASER: 'prp_laser_count', FOCAL_LASER: 'focal_laser_count', VITRECTOMY: 'vitrectomy_count', OBSERVATION: 'observation_count' };
  const treatmentFilter = filter.treatments && filter.treatments.length
    ? Prisma.sql`AND (${Prisma.raw(filter.treatments.map((type) => `e.${treatmentColumns[type]} > 0`).join(' OR '))})`
    : Prisma.empty;
  return Prisma.sql`SELECT e.*, (e.anti_vegf_count + e.prp_laser_count + e.focal_laser_count + e.vitrectomy_count > 0) AS treated
    FROM ${source} e
    WHERE TRUE
      ${filter.eye ? Prisma.sql`AND e.eye = ${filter.eye}::"eye"` : Prisma.empty}
      ${inList('e.sex', filter.sexes, '"sex"')}
      ${inList('e.diabetes_type', filter.diabetesTypes, '"diabetes_type"')}
      ${inList('e.dataset', filter.datasets, 'text')}
      ${inList('e.age_band', filter.ageBands, 'text')}
      ${inList('e.hba1c_band', filter.hba1cBands, 'text')}
      ${filter.diabetesDurationMinYears != null ? Prisma.sql`AND e.diabetes_years >= ${filter.diabetesDurationMinYears}` : Prisma.empty}
      ${filter.diabetesDurationMaxYears != null ? Prisma.sql`AND e.diabetes_years <= ${filter.diabetesDurationMaxYears}` : Prisma.empty}
      ${gradeFilter}
      ${treatmentFilter}`;
}
