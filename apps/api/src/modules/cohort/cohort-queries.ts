// Aggregates over the cohort's eyes (cohort-filter.ts): each query scans them once and returns counts by group
// (a "cube"), never rows of patients; the tables researchers see are marginals of these cubes, summed in
// TypeScript. The queries are independent, so the service runs them in parallel.
import { Prisma } from '../../generated/prisma/client.js';

type Tx = { $queryRaw<T>(query: Prisma.Sql): Promise<T> };
const withCohort = (cohort: Prisma.Sql, query: Prisma.Sql) => Prisma.sql`WITH cohort_eye AS (${cohort}) ${query}`;

/**
 * Eyes by baseline grade, latest grade, age band, sex and diabetes type (a few hundred groups at most), with the
 * treatments given to them per type (a both-eyes treatment counts once per cohort eye) and how many are undated.
 */
export type EyeCubeRow = { baseline: number; latest: number; ageBand: string | null; sex: string; diabetesType: string; count: number };
export type EyeCube = { groups: EyeCubeRow[]; treatmentsGiven: Record<(typeof TREATMENT_TYPES)[number], number>; undatedEyes: number };

export async function countEyes(tx: Tx, cohort: Prisma.Sql): Promise<EyeCube> {
  const rows = await tx.$queryRaw<({ baseline: number; latest: number; age_band: string | null; sex: string; diabetes_type: string; count: number; undated: number } & Record<string, number>)[]>(withCohort(cohort, Prisma.sql`
    SELECT baseline_grade AS baseline, latest_grade AS latest, age_band, sex::text AS sex, diabetes_type::text AS diabetes_type, count(*)::int AS count,
           count(*) FILTER (WHERE undated)::int AS undated,
           sum(anti_vegf_count)::int AS "ANTI_VEGF", sum(prp_laser_count)::int AS "PRP_LASER", sum(focal_laser_count)::int AS "FOCAL_LASER",
           sum(vitrectomy_count)::int AS "VITRECTOMY", sum(observation_count)::int AS "OBSERVATION"
    FROM cohort_eye GROUP BY 1, 2, 3, 4, 5`));
  const treatmentsGiven = Object.fromEntries(TREATMENT_TYPES.map((type) => [type, rows.reduce((sum, row) => sum + Number(row[type] ?? 0), 0)])) as EyeCube['treatmentsGiven'];
  return {
    groups: rows.map((row) => ({ baseline: row.baseline, latest: row.latest, ageBand: row.age_band, sex: row.sex, diabetesType: row.diabetes_type, count: row.count })),
    treatmentsGiven,
    undatedEyes: rows.reduce((sum, row) => sum + row.undated, 0),
  };
}

/**
 * Patients (the worse of their cohort eyes) in three small cubes from one pass: by worse baseline and latest
 * grade, age band at the first visit, sex, diabetes type and treatments received; by worse baseline grade and
 * baseline HbA1c (0.1 % steps: quartiles come out exact); and anti-VEGF injections per follow-up year (0.01
 * steps) among patients followed a year or more with at least one injection.
 */
export type PatientCubeRow = EyeCubeRow & { treatedTypes: string[] };
export type PatientCubes = { patients: PatientCubeRow[]; hba1c: { grade: number; hba1c: number; count: number }[]; injectionRates: { rate: number; count: number }[] };

export async function countPatients(tx: Tx, cohort: Prisma.Sql): Promise<PatientCubes> {
  const rows = await tx.$queryRaw<{ g_main: number; g_hba1c: number; baseline: number | null; latest: number | null; age_band: string | null; sex: string | null; diabetes_type: string | null; treated: number | null; hba1c: string | null; rate: string | null; count: number }[]>(withCohort(cohort, Prisma.sql`
    , per_patient AS (
      SELECT max(baseline_grade) AS baseline, max(latest_grade) AS latest,
             -- Age band at the first visit is the youngest band among the eyes (ages only grow); HbA1c at the first
             -- visit is stored on every eye row of the patient (eye_summary.patient_baseline_hba1c).
             (ARRAY['UNDER_40', 'FROM_40_TO_49', 'FROM_50_TO_59', 'FROM_60_TO_69', 'FROM_70_TO_79', 'AT_LEAST_80'])[min(CASE age_band
                WHEN 'UNDER_40' THEN 1 WHEN 'FROM_40_TO_49' THEN 2 WHEN 'FROM_50_TO_59' THEN 3 WHEN 'FROM_60_TO_69' THEN 4 WHEN 'FROM_70_TO_79' THEN 5 WHEN 'AT_LEAST_80' THEN 6 END)] AS age_band,
             min(sex::text) AS sex, min(diabetes_type::text) AS diabetes_type,
             min(patient_baseline_hba1c)::text AS hba1c,
             CASE WHEN bool_and(NOT undated) AND max(last_date) - min(baseline_date) >= 365 AND sum(anti_vegf_in_follow_up) > 0
                  THEN round(sum(anti_vegf_in_follow_up) / ((max(last_date) - min(baseline_date)) / 365.25), 2) END AS rate,
             (CASE WHEN sum(anti_vegf_count) > 0 THEN 1 ELSE 0 END) | (CASE WHEN sum(prp_laser_count) > 0 THEN 2 ELSE 0 END)
               | (CASE WHEN sum(focal_laser_count) > 0 THEN 4 ELSE 0 END) | (CASE WHEN sum(vitrectomy_count) > 0 THEN 8 ELSE 0 END)
               | (CASE WHEN sum(observation_count) > 0 THEN 16 ELSE 0 END) AS treated
      FROM cohort_eye GROUP BY patient_id)
    SELECT grouping(latest)::int AS g_main, grouping(hba1c)::int AS g_hba1c, baseline, latest, age_band, sex, diabetes_type, treated,
           hba1c, rate::text AS rate, count(*)::int AS count
    FROM per_patient
    GROUP BY GROUPING SETS ((baseline, latest, age_band, sex, diabetes_type, treated), (baseline, hba1c), (rate))`));
  const cubes: PatientCubes = { patients: [], hba1c: [], injectionRates: [] };
  for (const row of rows) {
    if (row.g_main === 0) {
      cubes.patients.push({
        baseline: row.baseline!,
        latest: row.latest!,
        ageBand: row.age_band,
        sex: row.sex!,
        diabetesType: row.diabetes_type!,
        treatedTypes: TREATMENT_TYPES.filter((_, index) => ((row.treated ?? 0) & (1 << index)) !== 0),
        count: row.count,
      });
    } else if (row.g_hba1c === 0) {
      if (row.hba1c !== null) cubes.hba1c.push({ grade: row.baseline!, hba1c: Number(row.hba1c), count: row.count });
    } else if (row.rate !== null) {
      cubes.injectionRates.push({ rate: Number(row.rate), count: row.count });
    }
  }
  return cubes;
}

export const TREATMENT_TYPES = ['ANTI_VEGF', 'PRP_LASER', 'FOCAL_LASER', 'VITRECTOMY', 'OBSERVATION'] as const;

export type WorseningEvent = 'ONE_STEP' | 'REFERABLE' | 'PDR';
export type SurvivalStratum = 'BASELINE_GRADE' | 'HBA1C_BAND' | 'TREATMENT';

const EVENT_COLUMN: Record<WorseningEvent, { date: string; eligible: string }> = {
  ONE_STEP: { date: 'one_step_date', eligible: 'baseline_grade < 4' },
  REFERABLE: { date: 'referable_date', eligible: 'baseline_grade < 2' },
  PDR: { date: 'pdr_date', eligible: 'baseline_grade < 4' },
};
const STRATUM_COLUMN: Record<SurvivalStratum, string> = {
  BASELINE_GRADE: 'baseline_grade::text',
  HBA1C_BAND: "coalesce(hba1c_band, 'UNKNOWN')",
  TREATMENT: "CASE WHEN treated THEN 'TREATED' ELSE 'UNTREATED' END",
};

/**
 * Time to worsening per eligible dated eye, from its first visit in range to the first visit meeting the event,
 * censored at its last visit: grouped by (stratum, days, event), so a million eyes come back as a few thousand rows.
 */
export async function survivalTimes(tx: Tx, cohort: Prisma.Sql, event: WorseningEvent, stratum: SurvivalStratum | null): Promise<{ stratum: string; days: number; event: boolean; count: number }[]> {
  const column = EVENT_COLUMN[event];
  return tx.$queryRaw(withCohort(cohort, Prisma.sql`
    SELECT ${Prisma.raw(stratum ? STRATUM_COLUMN[stratum] : "'ALL'")} AS stratum,
           (coalesce(${Prisma.raw(column.date)}, last_date) - baseline_date)::int AS days,
           (${Prisma.raw(column.date)} IS NOT NULL) AS event, count(*)::int AS count
    FROM cohort_eye WHERE NOT undated AND ${Prisma.raw(column.eligible)}
    GROUP BY 1, 2, 3 ORDER BY 1, 2`));
}
