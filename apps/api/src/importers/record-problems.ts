// The checks every ImportRecord passes before anything is written, in one place: importers run them before they
// yield a record (a failing record becomes a bad row, reported with its line, and the file goes on), and the ingest
// service runs them again for records from anywhere else (the ingestCase mutation, tests), where a failure is
// BAD_USER_INPUT. Pure: no database; the birth year stored on an existing patient is checked inside the write
// transaction (modules/ingest/write-case.ts) with findRecordDateProblems.
import { findDateProblem, findUndatedRecordProblem, todayUtc, type DateCheckContext } from '../modules/common/clinical-dates.js';
import { findIcd10CmProblem } from '../modules/common/icd10-cm.js';
import { rowError, type ImportItem, type ImportRecord } from './import-record.js';

export type RecordCheckOptions = {
  /** YYYY-MM-DD (UTC); defaults to the current date. */
  today?: string;
};

/**
 * The date problems of a record for a patient born in `birthYear` (the record's own, or the stored patient's):
 * visit, grading, diagnosis and treatment dates are real dates, not in the future and not before the birth year.
 */
export function findRecordDateProblems(record: ImportRecord, { today = todayUtc(), birthYear }: RecordCheckOptions & { birthYear: number | null }): string[] {
  // isVisitDateKnown is false for labels without dates (the marker, or --visit-date in its place).
  const context: DateCheckContext = { today, birthYear, isUndatedRecord: !record.isVisitDateKnown };
  const dated: [label: string, date: string][] = [
    ['visit date', record.visitDate],
    ...(record.grading ? [['grading date', record.grading.gradedOn] as [string, string]] : []),
    ...record.diagnoses.map((diagnosis): [string, string] => [`diagnosis ${diagnosis.icd10Code} date`, diagnosis.diagnosedOn]),
    ...record.treatments.map((treatment): [string, string] => [`treatment ${treatment.type} date`, treatment.performedOn]),
  ];
  const problems = [findUndatedRecordProblem(dated.map(([, date]) => date), context), ...dated.map(([label, date]) => findDateProblem(label, date, context))];
  return problems.filter((problem): problem is string => problem !== null);
}

/** Every problem of a record that the database would otherwise reject (or silently accept wrongly). */
export function findRecordProblems(record: ImportRecord, options: RecordCheckOptions = {}): string[] {
  const today = options.today ?? todayUtc();
  const problems: string[] = [];
  if (!record.patient.mrn.trim()) problems.push('patient mrn is empty');
  if (!record.patient.mrnSystem.trim()) problems.push('patient mrnSystem is empty');
  if (!record.dataset.name.trim()) problems.push('dataset name is empty');
  if (record.eye !== 'LEFT' && record.eye !== 'RIGHT') problems.push(`eye must be LEFT or RIGHT, got "${String(record.eye)}"`);
  const grading = record.grading;
  if (grading) {
    if (!Number.isInteger(grading.drGrade) || grading.drGrade < 0 || grading.drGrade > 4) problems.push(`DR grade must be ICDR 0-4, got ${grading.drGrade}`);
    if (grading.macularEdemaRisk !== null && (!Number.isInteger(grading.macularEdemaRisk) || grading.macularEdemaRisk < 0 || grading.macularEdemaRisk > 2)) {
      problems.push(`macular edema risk must be 0-2, got ${grading.macularEdemaRisk}`);
    }
  }
  const birthYear = record.patient.birthYear;
  const isBirthYearPlausible = birthYear === null || (Number.isInteger(birthYear) && birthYear >= 1880 && birthYear <= Number(today.slice(0, 4)));
  if (!isBirthYearPlausible) problems.push(`birth year ${birthYear} is not plausible`);
  problems.push(...findRecordDateProblems(record, { today, birthYear: isBirthYearPlausible ? birthYear : null }));
  for (const diagnosis of record.diagnoses) {
    const problem = findIcd10CmProblem(diagnosis.icd10Code);
    if (problem) problems.push(problem);
  }
  for (const treatment of record.treatments) {
    if (treatment.agent && treatment.type !== 'ANTI_VEGF') problems.push(`an agent is only recorded for ANTI_VEGF, not ${treatment.type}`);
  }
  return problems;
}

/** What an importer yields for a record it built: the record, or a bad row naming every problem. */
export function toCheckedItem(record: ImportRecord, image?: string, options: RecordCheckOptions = {}): ImportItem {
  const problems = findRecordProblems(record, options);
  return problems.length === 0 ? { ok: true, record } : rowError(record.row, problems.join('; '), image);
}
