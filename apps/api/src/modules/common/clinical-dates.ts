// Plausibility of the dates in a clinical record (visit, grading, diagnosis, treatment): a real calendar date,
// not after today (UTC: the server's clock zone must not decide whether a date is "in the future"), not before the
// patient's birth year where one is known, and not before 1900.
//
// Labels without dates get UNDATED_VISIT_DATE, a marker rather than a date (import-record.ts says why it is fixed).
// It is accepted only on records marked undated, and only while the patient's birth year is unknown: with a
// birth year, 1900-01-01 would read as a visit before birth and give a negative age at the visit, so such a record
// is refused with the way out (give the date, `--visit-date`). A record marked as dated may not use the marker.

/** Visit date of labels that carry none; never a real examination date. */
export const UNDATED_VISIT_DATE = '1900-01-01';

export function isIsoDate(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`)) && new Date(`${value}T00:00:00Z`).toISOString().startsWith(value);
}

/** Today's date in UTC, YYYY-MM-DD. */
export function todayUtc(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

export type DateCheckContext = {
  /** YYYY-MM-DD; later dates are in the future. */
  today: string;
  /** The patient's, when known. */
  birthYear: number | null;
  /** True on an undated record: UNDATED_VISIT_DATE is then the marker it stands for, not a date. */
  isUndatedRecord: boolean;
};

/** Why `date` (described by `label`, e.g. "visit date") is not plausible, or null. */
export function findDateProblem(label: string, date: string, { today, birthYear, isUndatedRecord }: DateCheckContext): string | null {
  if (!isIsoDate(date)) return `${label} "${date}" is not YYYY-MM-DD`;
  if (date > today) return `${label} ${date} is in the future (today is ${today}, UTC)`;
  if (date === UNDATED_VISIT_DATE) {
    if (!isUndatedRecord) return `${label} ${date} is the placeholder for undated labels, not a date; give the real date`;
    // A marker with a known birth year is one problem of the whole record (findUndatedRecordProblem), not one per date.
    return null;
  }
  if (date < UNDATED_VISIT_DATE) return `${label} ${date} is before 1900`;
  if (birthYear !== null && Number(date.slice(0, 4)) < birthYear) return `${label} ${date} is before the patient's birth year ${birthYear}`;
  return null;
}

/** The problem of an undated record whose dates include the marker while the patient's birth year is known, or null. */
export function findUndatedRecordProblem(dates: readonly string[], { birthYear, isUndatedRecord }: Pick<DateCheckContext, 'birthYear' | 'isUndatedRecord'>): string | null {
  if (!isUndatedRecord || birthYear === null || !dates.includes(UNDATED_VISIT_DATE)) return null;
  return (
    `the visit date is unknown (undated labels get ${UNDATED_VISIT_DATE}) but the patient's birth year ${birthYear} is known, ` +
    `so the placeholder would read as a visit before birth; give the visit date (--visit-date)`
  );
}
