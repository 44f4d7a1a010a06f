'use client';
// CBR revise: the clinician confirms or corrects the grade, maculopathy and (optionally) a diagnosis of the stored
// query photograph, through the API's reviseCase. It becomes the case's reference grading (source clinician) and
// is compared with the suggestion shown. The answer is shown in place; the form keeps what was chosen.
import { startTransition, useActionState, useId } from 'react';
import { reviseCaseAction } from '../../app/search/actions';
import { DR_GRADES } from '../../lib/grades';
import { casePath } from '../../lib/paths';
import { formatEnum } from '../../lib/labels';
import type { ReviseCaseState } from '../../lib/revise-case-fields';

function Outcome({ state }: { state: ReviseCaseState }) {
  if (state.kind === 'idle') return null;
  if (state.kind === 'revised') {
    return (
      <div className="notice" role="status" data-testid="revise-outcome">
        Recorded: <a href={casePath(state.caseId)}>case <code>{state.caseId}</code></a> now has grade{' '}
        <strong>
          {state.drGrade} – {state.drGradeName}
        </strong>
        {state.maculopathy !== null && <>, {state.maculopathy ? 'maculopathy' : 'no maculopathy'}</>} ({formatEnum(state.source).toLowerCase()}
        {state.grader && <> {state.grader}</>}).{' '}
        {state.agrees === null ? 'No suggestion to compare with.' : state.agrees ? 'Agrees with the suggestion.' : `Differs from the suggested grade ${state.suggestedGrade}.`}
      </div>
    );
  }
  return (
    <div className="alert" role="alert" data-testid="revise-outcome" data-error-code={state.code}>
      <p className="alert-title">The reading was not recorded</p>
      <p>{state.message}</p>
      <p className="alert-code">
        Error code: <code>{state.code}</code>
        {state.field && (
          <>
            {' '}
            (field <code>{state.field}</code>)
          </>
        )}
      </p>
    </div>
  );
}

export function ReviseCaseForm({
  caseId,
  suggestionId,
  suggestedGrade,
  current,
  returnTo,
}: {
  caseId: string;
  suggestionId: string;
  suggestedGrade: number | null;
  current: { drGrade: number; maculopathy: boolean | null; source: string; grader: string | null } | null;
  returnTo: string;
}) {
  const [state, formAction, pending] = useActionState(reviseCaseAction, { kind: 'idle' } as ReviseCaseState);
  const id = useId();
  const invalid = (field: string) => (state.kind === 'refused' && state.field !== null && state.field.endsWith(field) ? true : undefined);
  const initialGrade = suggestedGrade ?? current?.drGrade ?? null;
  return (
    <section className="revise-case" aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>Your reading of the query photograph</h2>
      <p className="hint">
        Confirm or correct the suggestion. Recorded as a clinician grading by you, it becomes the case&apos;s reference
        grade.{' '}
        {current ? (
          <>
            Now: grade {current.drGrade} ({formatEnum(current.source).toLowerCase()}
            {current.grader && <> {current.grader}</>}).
          </>
        ) : (
          'Not graded yet.'
        )}
      </p>
      <form
        className="search-form"
        aria-label="Confirm or correct the grade"
        onSubmit={(event) => {
          event.preventDefault();
          const data = new FormData(event.currentTarget);
          startTransition(() => formAction(data));
        }}
      >
        <input type="hidden" name="caseId" value={caseId} />
        <input type="hidden" name="suggestionId" value={suggestionId} />
        <input type="hidden" name="returnTo" value={returnTo} />
        <div className="field">
          <label htmlFor={`${id}-grade`}>DR grade</label>
          <select id={`${id}-grade`} name="drGrade" required defaultValue={initialGrade === null ? '' : String(initialGrade)} aria-invalid={invalid('drGrade')}>
            <option value="">Choose a grade</option>
            {DR_GRADES.map(({ grade, name }) => (
              <option key={grade} value={grade}>
                {grade} – {name}
                {grade === suggestedGrade ? ' (suggested)' : ''}
              </option>
            ))}
          </select>
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-maculopathy`}>Maculopathy</label>
          <select id={`${id}-maculopathy`} name="maculopathy" defaultValue={current?.maculopathy === true ? 'yes' : current?.maculopathy === false ? 'no' : ''}>
            <option value="">Not assessed</option>
            <option value="yes">Present</option>
            <option value="no">Absent</option>
          </select>
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-code`}>Diagnosis code (optional)</label>
          <input id={`${id}-code`} name="diagnosisCode" type="text" autoComplete="off" spellCheck={false} placeholder="E11.3291" aria-invalid={invalid('icd10Code') ?? invalid('diagnosisCode')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-text`}>Diagnosis description</label>
          <input id={`${id}-text`} name="diagnosisText" type="text" autoComplete="off" aria-invalid={invalid('diagnosisText') ?? invalid('text')} />
        </div>
        <div className="actions">
          <button type="submit" disabled={pending}>
            {pending ? 'Recording…' : 'Record my reading'}
          </button>
        </div>
      </form>
      <div aria-live="polite">
        <Outcome state={state} />
      </div>
    </section>
  );
}
