import { formatEnum, NONE } from '../../lib/labels';
import type { PatientSummary } from '../../lib/case';

/** The patient's identifying header: MRN and its system, demographics, dataset, and the synthetic mark. */
export function PatientSummaryList({ patient }: { patient: PatientSummary }) {
  return (
    <dl className="patient-summary" data-testid="patient-summary">
      <div>
        <dt>MRN</dt>
        <dd data-testid="patient-mrn">{patient.mrn}</dd>
      </div>
      <div>
        <dt>Identifier system</dt>
        <dd>
          <code>{patient.mrnSystem}</code>
        </dd>
      </div>
      <div>
        <dt>Birth year</dt>
        <dd>{patient.birthYear ?? NONE}</dd>
      </div>
      <div>
        <dt>Sex</dt>
        <dd>{formatEnum(patient.sex)}</dd>
      </div>
      <div>
        <dt>Diabetes</dt>
        <dd>
          {formatEnum(patient.diabetesType)}
          {patient.diabetesDiagnosisYear !== null && <>, since {patient.diabetesDiagnosisYear}</>}
        </dd>
      </div>
      <div>
        <dt>Dataset</dt>
        <dd>
          {patient.dataset.name}{' '}
          {(patient.isSynthetic || patient.dataset.isSynthetic) && (
            <span className="badge" data-testid="synthetic-mark" title="A generated demo or test patient, never a real person">
              Synthetic
            </span>
          )}
        </dd>
      </div>
    </dl>
  );
}
