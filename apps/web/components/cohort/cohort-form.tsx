import { DR_GRADES } from '../../lib/grades';
import { formatEnum, formatTreatmentType } from '../../lib/labels';
import {
  AGE_BANDS,
  AGE_BAND_LABELS,
  DIABETES_TYPES,
  EVENT_LABELS,
  HBA1C_BANDS,
  HBA1C_BAND_LABELS,
  K_MAX,
  NO_EVENT,
  SEXES,
  STRATUM_LABELS,
  SURVIVAL_STRATA,
  TREATMENT_TYPES,
  WORSENING_EVENTS,
  type CohortFormValues,
} from '../../lib/cohort-statistics';

function CheckboxGroup({
  legend,
  name,
  options,
  checked,
  labelOf,
}: {
  legend: string;
  name: string;
  options: readonly string[];
  checked: string[];
  labelOf: (value: string) => string;
}) {
  return (
    <fieldset className="checkbox-group">
      <legend>{legend}</legend>
      {options.map((option) => (
        <label key={option} className="checkbox">
          <input type="checkbox" name={name} value={option} defaultChecked={checked.includes(option)} />
          <span>{labelOf(option)}</span>
        </label>
      ))}
    </fieldset>
  );
}

/** The cohort builder: a plain GET form, so every cohort is a URL that can be bookmarked and works without scripts. */
export function CohortForm({ values }: { values: CohortFormValues }) {
  return (
    <form className="cohort-form" method="get" action="/cohort-statistics" aria-label="Cohort builder">
      <p className="hint cohort-form-hint">Leave a group empty to include everyone.</p>
      <fieldset className="checkbox-group">
        <legend>DR grade (ICDR)</legend>
        {DR_GRADES.map(({ grade, name }) => (
          <label key={grade} className="checkbox">
            <input type="checkbox" name="grade" value={grade} defaultChecked={values.grades.includes(String(grade))} />
            <span>
              {grade} – {name}
            </span>
          </label>
        ))}
        <label className="stacked" htmlFor="gradeAt">
          Grade at
        </label>
        <select id="gradeAt" name="gradeAt" defaultValue={values.gradeAt}>
          <option value="">Baseline (first graded visit)</option>
          <option value="ANY_VISIT">Any visit</option>
        </select>
      </fieldset>
      <div className="field-column">
        <div className="field">
          <label htmlFor="eye">Eye</label>
          <select id="eye" name="eye" defaultValue={values.eye}>
            <option value="">Either eye</option>
            <option value="LEFT">Left</option>
            <option value="RIGHT">Right</option>
          </select>
        </div>
        <CheckboxGroup legend="Sex" name="sex" options={SEXES} checked={values.sexes} labelOf={formatEnum} />
      </div>
      <CheckboxGroup legend="Age at baseline" name="age" options={AGE_BANDS} checked={values.ageBands} labelOf={(band) => AGE_BAND_LABELS[band] ?? band} />
      <CheckboxGroup legend="Diabetes type" name="diabetes" options={DIABETES_TYPES} checked={values.diabetesTypes} labelOf={formatEnum} />
      <CheckboxGroup legend="HbA1c at baseline" name="hba1c" options={HBA1C_BANDS} checked={values.hba1cBands} labelOf={(band) => HBA1C_BAND_LABELS[band] ?? band} />
      <CheckboxGroup legend="Treatment received" name="treatment" options={TREATMENT_TYPES} checked={values.treatments} labelOf={formatTreatmentType} />
      <fieldset className="checkbox-group">
        <legend>Time to worsening</legend>
        <label className="stacked" htmlFor="event">
          Event
        </label>
        <select id="event" name="event" defaultValue={values.event}>
          {WORSENING_EVENTS.map((event) => (
            <option key={event} value={event}>
              {EVENT_LABELS[event]}
            </option>
          ))}
          <option value={NO_EVENT}>No time-to-worsening analysis</option>
        </select>
        <label className="stacked" htmlFor="stratum">
          One curve per
        </label>
        <select id="stratum" name="stratum" defaultValue={values.stratum}>
          <option value="">Whole cohort (one curve)</option>
          {SURVIVAL_STRATA.map((stratum) => (
            <option key={stratum} value={stratum}>
              {STRATUM_LABELS[stratum]}
            </option>
          ))}
        </select>
        <label className="stacked" htmlFor="k">
          Minimum cell size (k)
        </label>
        <input id="k" name="k" type="number" inputMode="numeric" min={2} max={K_MAX} step={1} defaultValue={values.k} aria-describedby="k-hint" />
        <p id="k-hint" className="hint">
          Empty: the deployment’s; a smaller one is not accepted.
        </p>
      </fieldset>
      <div className="actions">
        <button type="submit">Show statistics</button>
      </div>
    </form>
  );
}
