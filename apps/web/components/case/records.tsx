import { describeDrGrade } from '../../lib/grades';
import { formatDate, formatEnum, formatLaterality, formatTreatmentType } from '../../lib/labels';
import type { DiagnosisRecord, GradingRecord, TreatmentRecord } from '../../lib/case';

const formatSource = (source: string) => (source === 'MODEL_SUGGESTION' ? 'Model suggestion (not a reference)' : formatEnum(source));

/** Every grading of one photograph: grade, who graded it (source, grader) and when. */
export function GradingList({ gradings }: { gradings: readonly GradingRecord[] }) {
  if (gradings.length === 0) return <p className="note">No gradings.</p>;
  return (
    <ul className="record-list" data-testid="gradings">
      {gradings.map((grading) => (
        <li key={grading.id}>
          <span className="record-main">{describeDrGrade(grading.drGrade)}</span>
          {grading.maculopathy && ', maculopathy'} · {formatSource(grading.source)}
          {grading.grader && <> by {grading.grader}</>} · <time dateTime={grading.date}>{formatDate(grading.date)}</time>
        </li>
      ))}
    </ul>
  );
}

/** `withDate` and `withEye` off where the row or column already says them (the patient timeline). */
export function DiagnosisList({ diagnoses, withDate = true, withEye = true }: { diagnoses: readonly DiagnosisRecord[]; withDate?: boolean; withEye?: boolean }) {
  return (
    <ul className="record-list" data-testid="diagnoses">
      {diagnoses.map((diagnosis) => {
        const eye = withEye ? formatLaterality(diagnosis.eye) : null;
        return (
          <li key={diagnosis.id}>
            <code>{diagnosis.code}</code> {diagnosis.text}
            {eye && <> ({eye})</>}
            {withDate && (
              <>
                {' '}
                · <time dateTime={diagnosis.date}>{formatDate(diagnosis.date)}</time>
              </>
            )}
          </li>
        );
      })}
    </ul>
  );
}

export function TreatmentList({ treatments, withDate = true, withEye = true }: { treatments: readonly TreatmentRecord[]; withDate?: boolean; withEye?: boolean }) {
  return (
    <ul className="record-list" data-testid="treatments">
      {treatments.map((treatment) => {
        const eye = withEye ? formatLaterality(treatment.eye) : null;
        return (
          <li key={treatment.id}>
            <span className="record-main">{formatTreatmentType(treatment.type)}</span>
            {treatment.agent && <> ({formatEnum(treatment.agent)})</>}
            {eye && <>, {eye}</>}
            {withDate && (
              <>
                {' '}
                · <time dateTime={treatment.date}>{formatDate(treatment.date)}</time>
              </>
            )}
            {treatment.notes && <span className="note"> — {treatment.notes}</span>}
          </li>
        );
      })}
    </ul>
  );
}
