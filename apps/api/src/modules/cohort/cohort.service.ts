// Researcher cohort statistics (issue 11). The cohort is a set of eyes chosen by the filter from eye_summary (one
// row per eye, kept current by triggers; migration 0004), or recomputed over a visit-date range. Independent
// aggregate queries run in parallel (cohort-queries.ts) and every figure passes disclosure control
// (cohort-disclosure.ts) before it leaves: a cohort under k patients is refused, small cells are suppressed with
// complementary suppression, Kaplan-Meier curves are withheld for strata under k and stop where fewer than k
// remain at risk, and a cohort that differs from one of the researcher's recent cohorts by 1 to k-1 patients is
// refused (differencing). Nothing here returns an identifier or a date.
import { AppError, badInput } from '../../errors.js';
import { Prisma, type PrismaClient } from '../../generated/prisma/client.js';
import { ICDR_GRADE_NAMES } from '../common/enums.js';
import { AGE_BANDS, cohortEyesQuery, validateCohortFilter, type CohortFilter } from './cohort-filter.js';
import { TREATMENT_TYPES, countEyes, countPatients, survivalTimes, type EyeCubeRow, type SurvivalStratum, type WorseningEvent } from './cohort-queries.js';
import { buildCountTable, buildSurvivalCurve, compareStrata, summariseValues } from './cohort-disclosure.js';
import type { CohortStatistics, CountTable, TimeToWorsening } from './cohort.type.js';

export type CohortSettings = { minimumCellSize: number; memoryDays: number };

/**
 * Threshold for counts of eyes: a patient has at most two eyes, so a count of 2k-1 eyes holds at least k
 * patients. Eye tables, the transition matrix and the (per-eye) survival curves are suppressed at this threshold,
 * patient tables at k.
 */
const eyeThreshold = (k: number) => 2 * k - 1;
export const MAX_CELL_SIZE = 100;

const GRADE_COLUMNS = ICDR_GRADE_NAMES.map((name, grade) => `${grade} ${name}`);
type By = 'ALL' | 'AGE_BAND' | 'SEX' | 'DIABETES_TYPE';
const GROUPS: Record<By, { labels: string[]; of: (row: EyeCubeRow) => string }> = {
  ALL: { labels: ['all'], of: () => 'all' },
  AGE_BAND: { labels: [...AGE_BANDS.map((band) => band.label), 'unknown'], of: (row) => AGE_BANDS.find((band) => band.key === row.ageBand)?.label ?? 'unknown' },
  SEX: { labels: ['FEMALE', 'MALE', 'OTHER', 'UNKNOWN'], of: (row) => row.sex },
  DIABETES_TYPE: { labels: ['TYPE_1', 'TYPE_2', 'GESTATIONAL', 'OTHER', 'UNKNOWN'], of: (row) => row.diabetesType },
};

function gradeTables(unit: 'eye' | 'patient', rows: EyeCubeRow[], k: number): CountTable[] {
  const tables: CountTable[] = [];
  for (const timing of ['baseline', 'latest'] as const) {
    for (const by of ['ALL', 'AGE_BAND', 'SEX', 'DIABETES_TYPE'] as const) {
      const { labels, of } = GROUPS[by];
      const present = labels.filter((label) => rows.some((row) => of(row) === label));
      const counts = present.map((label) => GRADE_COLUMNS.map((_, grade) => rows.filter((row) => of(row) === label && (timing === 'baseline' ? row.baseline : row.latest) === grade).reduce((sum, row) => sum + row.count, 0)));
      tables.push(
        buildCountTable({
          name: `grade-per-${unit}-${timing}-by-${by.toLowerCase().replace('_', '-')}`,
          rowTitle: by === 'ALL' ? (unit === 'eye' ? 'eyes' : 'patients') : by.toLowerCase().replace('_', ' '),
          columnTitle: `${timing} ICDR grade${unit === 'patient' ? ' (worse eye)' : ''}`,
          rows: present,
          columns: GRADE_COLUMNS,
          counts,
          k,
        }),
      );
    }
  }
  return tables;
}

/** Expands (value, count) pairs to one value per patient, for quartiles. */
const expand = (pairs: { value: number; count: number }[]) => pairs.flatMap(({ value, count }) => Array.from({ length: count }, () => value));

/**
 * Differencing control, in its own transaction: refused when this researcher asked, within memoryDays, for a
 * cohort 1 to k-1 patients away; else remembered (once per distinct cohort).
 */
async function checkAndRememberCohort(prisma: PrismaClient, cohort: Prisma.Sql, subject: string, k: number, memoryDays: number): Promise<number> {
  return prisma.$transaction(async (tx) => {
    await tx.$executeRaw`CREATE TEMP TABLE cohort_patient ON COMMIT DROP AS WITH cohort_eye AS (${cohort}) SELECT DISTINCT patient_id FROM cohort_eye`;
    const [summary] = await tx.$queryRaw<{ patients: number; fingerprint: string | null }[]>`
      SELECT count(*)::int AS patients, sum(hashtextextended(patient_id::text, 7318))::text AS fingerprint FROM cohort_patient`;
    const patients = summary?.patients ?? 0;
    if (patients === 0) throw new AppError('EMPTY_COHORT', 'No eye matches this filter', { reason: 'EMPTY_COHORT' });
    if (patients < k) throw new AppError('COHORT_TOO_SMALL', `The cohort has fewer than ${k} patients; statistics of so few could identify them. Widen the filter.`, { minimumCellSize: k });
    const fingerprint = summary!.fingerprint!;
    // Serialises one researcher's requests, so two parallel close cohorts cannot both pass before either is kept.
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`cohort:${subject}`}))`;
    // |A Δ B| >= ||A| - |B||: only remembered cohorts of nearly the same size can be within k; a repeat of the
    // same cohort (same size and fingerprint) needs no comparison at all.
    const near = await tx.$queryRaw<{ difference: number }[]>`
      SELECT CASE WHEN rc.patient_count = ${patients} AND rc.fingerprint = ${fingerprint} THEN 0 ELSE
             ((SELECT count(*) FROM (SELECT patient_id FROM cohort_patient EXCEPT SELECT unnest(rc.patient_ids)) a)
            + (SELECT count(*) FROM (SELECT unnest(rc.patient_ids) EXCEPT SELECT patient_id FROM cohort_patient) b)) END::int AS difference
      FROM researcher_cohort rc
      WHERE rc.subject = ${subject} AND rc.created_at > now() - make_interval(days => ${memoryDays}) AND abs(rc.patient_count - ${patients}) < ${k}`;
    if (near.some((row) => row.difference > 0 && row.difference < k)) {
      throw new AppError('COHORT_OVERLAP', `This cohort differs from one you asked for recently by fewer than ${k} patients; comparing the two could reveal individuals. Widen or change the filter.`, { reason: 'DIFFERENCING', minimumCellSize: k });
    }
    if (!near.some((row) => row.difference === 0)) {
      await tx.$executeRaw`DELETE FROM researcher_cohort WHERE subject = ${subject} AND created_at <= now() - make_interval(days => ${memoryDays})`;
      await tx.$executeRaw`INSERT INTO researcher_cohort (subject, patient_count, fingerprint, patient_ids) SELECT ${subject}, count(*)::int, ${fingerprint}, array_agg(patient_id ORDER BY patient_id) FROM cohort_patient`;
    }
    return patients;
  });
}

async function timeToWorsening(prisma: PrismaClient, cohort: Prisma.Sql, event: WorseningEvent, stratum: SurvivalStratum | null, k: number): Promise<Omit<TimeToWorsening, 'undatedEyesExcluded'>> {
  const rows = await survivalTimes(prisma, cohort, event, stratum);
  const strata = new Map<string, { time: number; event: boolean }[]>();
  for (const row of rows) {
    const list = strata.get(row.stratum) ?? [];
    for (let index = 0; index < row.count; index += 1) list.push({ time: row.days / 365.25, event: row.event });
    strata.set(row.stratum, list);
  }
  const names = [...strata.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const curves = names.map((name) => buildSurvivalCurve(name, strata.get(name)!, k));
  const shown = curves.filter((curve) => !curve.withheld).map((curve) => curve.stratum);
  return {
    event: event as TimeToWorsening['event'],
    stratifiedBy: stratum as TimeToWorsening['stratifiedBy'],
    curves,
    logRank: stratum && shown.length >= 2 ? compareStrata(shown, shown.map((name) => strata.get(name)!)) : null,
  };
}

export async function computeCohortStatistics({
  prisma,
  subject,
  filter,
  k: requestedK,
  worsening,
  settings,
}: {
  prisma: PrismaClient;
  subject: string;
  filter: CohortFilter;
  k?: number | null;
  worsening?: { event: WorseningEvent; stratifyBy?: SurvivalStratum | null } | null;
  settings: CohortSettings;
}): Promise<CohortStatistics> {
  const k = requestedK ?? settings.minimumCellSize;
  if (!Number.isInteger(k) || k < settings.minimumCellSize || k > MAX_CELL_SIZE) {
    throw badInput(`k must be a whole number from ${settings.minimumCellSize} (this deployment's minimum) to ${MAX_CELL_SIZE}`, { field: 'k' });
  }
  validateCohortFilter(filter);
  const cohort = cohortEyesQuery(filter);
  // The size and differencing checks decide whether anything is shown; the aggregates run alongside and are
  // dropped when the checks refuse.
  // allSettled: a refusal must not leave the other queries running after the request has been answered.
  const settled = await Promise.allSettled([
    checkAndRememberCohort(prisma, cohort, subject, k, settings.memoryDays),
    countEyes(prisma, cohort),
    countPatients(prisma, cohort),
    worsening ? timeToWorsening(prisma, cohort, worsening.event, worsening.stratifyBy ?? null, eyeThreshold(k)) : Promise.resolve(null),
  ] as const);
  const failed = settled.find((outcome) => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  const [patientCount, eyeCube, patients, survival] = settled.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as [
    number,
    Awaited<ReturnType<typeof countEyes>>,
    Awaited<ReturnType<typeof countPatients>>,
    Awaited<ReturnType<typeof timeToWorsening>> | null,
  ];
  const eyes = eyeCube.groups;
  const eyeCount = eyes.reduce((sum, row) => sum + row.count, 0);
  const transitions = GRADE_COLUMNS.map((_, baseline) => GRADE_COLUMNS.map((__, latest) => eyes.filter((row) => row.baseline === baseline && row.latest === latest).reduce((sum, row) => sum + row.count, 0)));
  return {
    minimumCellSize: k,
    patients: patientCount,
    eyes: eyeCount,
    gradeDistributions: [...gradeTables('eye', eyes, eyeThreshold(k)), ...gradeTables('patient', patients.patients, k)],
    transitionMatrix: buildCountTable({ name: 'transition-matrix', rowTitle: 'baseline ICDR grade', columnTitle: 'latest ICDR grade', rows: GRADE_COLUMNS, columns: GRADE_COLUMNS, counts: transitions, k: eyeThreshold(k) }),
    treatments: {
      counts: buildCountTable({
        name: 'treatments',
        rowTitle: 'treatment',
        columnTitle: 'count',
        rows: [...TREATMENT_TYPES],
        columns: ['patients treated', 'treatments of cohort eyes'],
        counts: TREATMENT_TYPES.map((type) => [patients.patients.filter((row) => row.treatedTypes.includes(type)).reduce((sum, row) => sum + row.count, 0), eyeCube.treatmentsGiven[type]]),
        k,
        peopleColumns: [0],
      }),
      injectionsPerPatientYear: summariseValues('anti-VEGF injections per patient-year', expand(patients.injectionRates.map(({ rate, count }) => ({ value: rate, count }))), k, 0.1),
    },
    hba1cByGrade: GRADE_COLUMNS.map((label, grade) => summariseValues(label, expand(patients.hba1c.filter((row) => row.grade === grade).map(({ hba1c, count }) => ({ value: hba1c, count }))), k, 0.1)),
    timeToWorsening: survival ? { ...survival, undatedEyesExcluded: eyeCube.undatedEyes } : null,
  };
}
