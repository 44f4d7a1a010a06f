'use client';
// Save the uploaded photograph as a case with its records (patient by MRN, visit, eye, grade, diagnoses,
// treatments), through the API's ingestCase. The answer (saved, duplicate, or the API's refusal) is shown in
// place; the form keeps what was typed.
import { startTransition, useActionState, useId } from 'react';
import { saveCaseAction } from '../../app/search/actions';
import { DR_GRADES } from '../../lib/grades';
import { casePath } from '../../lib/paths';
import { formatEnum, formatTreatmentType } from '../../lib/labels';
import { ANTI_VEGF_AGENTS, LATERALITIES, RECORD_ROWS, type SaveCaseState } from '../../lib/save-case-fields';
import { SEXES, TREATMENT_TYPES } from '../../lib/search-filters';

function Outcome({ state }: { state: SaveCaseState }) {
  if (state.kind === 'idle') return null;
  if (state.kind === 'saved') {
    return (
      <div className="notice" role="status" data-testid="save-outcome" data-status={state.status}>
        {state.status === 'ADDED' ? (
          <>
            Saved as <a href={casePath(state.caseId)}>case <code>{state.caseId}</code></a> for patient <code>{state.mrn}</code>.
          </>
        ) : (
          <>
            Already stored for this patient and eye as <a href={casePath(state.caseId)}>case <code>{state.caseId}</code></a>: nothing
            was written.
          </>
        )}
      </div>
    );
  }
  return (
    <div className="alert" role="alert" data-testid="save-outcome" data-error-code={state.code}>
      <p className="alert-title">The case was not saved</p>
      <p>{state.message}</p>
      {state.conflictCaseId && (
        <p>
          The stored photograph: <a href={casePath(state.conflictCaseId)}>case <code>{state.conflictCaseId}</code></a>
        </p>
      )}
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

function LateralitySelect({ id, name, label }: { id: string; name: string; label: string }) {
  return (
    <div className="field field-narrow">
      <label htmlFor={id}>{label}</label>
      <select id={id} name={name} defaultValue="">
        <option value="">The photographed eye</option>
        {LATERALITIES.map((eye) => (
          <option key={eye} value={eye}>
            {formatEnum(eye)}
          </option>
        ))}
      </select>
    </div>
  );
}

export function SaveCaseForm({ uploadToken, returnTo, mrnSystem, today }: { uploadToken: string; returnTo: string; mrnSystem: string; today: string }) {
  const [state, formAction, pending] = useActionState(saveCaseAction, { kind: 'idle' } as SaveCaseState);
  const id = useId();
  const invalid = (field: string) => (state.kind === 'refused' && state.field !== null && state.field.endsWith(field) ? true : undefined);
  return (
    <section className="save-case" aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>Save this photograph as a case</h2>
      <p className="hint">
        Files the photograph with its records. A patient already stored under this MRN and system gets the new
        photograph; nothing is written when the API refuses.
      </p>
      <form
        className="search-form"
        aria-label="Save the photograph as a case"
        onSubmit={(event) => {
          // Not action={...}: React resets a form after its action runs, and a refused save must keep what was typed.
          event.preventDefault();
          const data = new FormData(event.currentTarget);
          startTransition(() => formAction(data));
        }}
      >
        <input type="hidden" name="uploadToken" value={uploadToken} />
        <input type="hidden" name="returnTo" value={returnTo} />
        <div className="field">
          <label htmlFor={`${id}-mrn`}>Patient MRN</label>
          <input id={`${id}-mrn`} type="text" name="mrn" required autoComplete="off" spellCheck={false} aria-invalid={invalid('mrn')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-system`}>MRN system</label>
          <input id={`${id}-system`} type="text" name="mrnSystem" required defaultValue={mrnSystem} spellCheck={false} aria-invalid={invalid('mrnSystem')} />
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-birth`}>Birth year</label>
          <input id={`${id}-birth`} type="text" name="birthYear" inputMode="numeric" pattern="[0-9]{4}" aria-invalid={invalid('birthYear')} />
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-sex`}>Sex</label>
          <select id={`${id}-sex`} name="sex" defaultValue="">
            <option value="">Not given</option>
            {SEXES.map((sex) => (
              <option key={sex} value={sex}>
                {formatEnum(sex)}
              </option>
            ))}
          </select>
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-visit`}>Visit date</label>
          <input id={`${id}-visit`} name="visitDate" type="date" required max={today} defaultValue={today} aria-invalid={invalid('visitDate')} />
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-eye`}>Eye photographed</label>
          <select id={`${id}-eye`} name="eye" required defaultValue="">
            <option value="" disabled>
              Choose
            </option>
            <option value="LEFT">Left</option>
            <option value="RIGHT">Right</option>
          </select>
        </div>
        <div className="field field-narrow">
          <label htmlFor={`${id}-grade`}>DR grade (ICDR)</label>
          <select id={`${id}-grade`} name="drGrade" defaultValue="" aria-invalid={invalid('drGrade')}>
            <option value="">Not graded</option>
            {DR_GRADES.map(({ grade, name }) => (
              <option key={grade} value={grade}>
                {grade} – {name}
              </option>
            ))}
          </select>
        </div>
        {Array.from({ length: RECORD_ROWS }, (_, row) => (
          <fieldset key={`diagnosis${row}`} className="record-row field-wide">
            <legend>Diagnosis {row + 1} (optional)</legend>
            <div className="field field-narrow">
              <label htmlFor={`${id}-d${row}-code`}>ICD-10-CM code</label>
              <input id={`${id}-d${row}-code`} type="text" name={`diagnosis${row}Code`} spellCheck={false} aria-invalid={invalid(`diagnoses[${row}].icd10Code`)} />
            </div>
            <div className="field">
              <label htmlFor={`${id}-d${row}-text`}>Description</label>
              <input id={`${id}-d${row}-text`} type="text" name={`diagnosis${row}Text`} />
            </div>
            <LateralitySelect id={`${id}-d${row}-eye`} name={`diagnosis${row}Eye`} label="Eye" />
            <div className="field field-narrow">
              <label htmlFor={`${id}-d${row}-date`}>Date</label>
              <input id={`${id}-d${row}-date`} name={`diagnosis${row}Date`} type="date" max={today} />
            </div>
          </fieldset>
        ))}
        {Array.from({ length: RECORD_ROWS }, (_, row) => (
          <fieldset key={`treatment${row}`} className="record-row field-wide">
            <legend>Treatment {row + 1} (optional)</legend>
            <div className="field field-narrow">
              <label htmlFor={`${id}-t${row}-type`}>Treatment</label>
              <select id={`${id}-t${row}-type`} name={`treatment${row}Type`} defaultValue="">
                <option value="">None</option>
                {TREATMENT_TYPES.map((type) => (
                  <option key={type} value={type}>
                    {formatTreatmentType(type)}
                  </option>
                ))}
              </select>
            </div>
            <div className="field field-narrow">
              <label htmlFor={`${id}-t${row}-agent`}>Agent (anti-VEGF)</label>
              <select id={`${id}-t${row}-agent`} name={`treatment${row}Agent`} defaultValue="">
                <option value="">Not given</option>
                {ANTI_VEGF_AGENTS.map((agent) => (
                  <option key={agent} value={agent}>
                    {formatEnum(agent)}
                  </option>
                ))}
              </select>
            </div>
            <LateralitySelect id={`${id}-t${row}-eye`} name={`treatment${row}Eye`} label="Eye" />
            <div className="field field-narrow">
              <label htmlFor={`${id}-t${row}-date`}>Date</label>
              <input id={`${id}-t${row}-date`} name={`treatment${row}Date`} type="date" max={today} />
            </div>
          </fieldset>
        ))}
        <div className="actions">
          <button type="submit" disabled={pending}>
            {pending ? 'Saving…' : 'Save case'}
          </button>
        </div>
      </form>
      <Outcome state={state} />
    </section>
  );
}
