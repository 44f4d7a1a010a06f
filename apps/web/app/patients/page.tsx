import type { Metadata } from 'next';
import Link from 'next/link';
import '../../components/case/case-pages.css';
import { AccessRefused } from '../../components/access-refused';
import { PatientSummaryList } from '../../components/case/patient-summary';
import { DiagnosisList, GradingList, TreatmentList } from '../../components/case/records';
import { PAGES, mayUsePage } from '../../lib/access';
import { casePath } from '../../lib/case';
import { describeDrGrade } from '../../lib/grades';
import { formatEnum } from '../../lib/labels';
import { MRN_MAX_LENGTH, buildTimeline, getPatientWithCases, parsePatientForm, type EyeOnDate, type OtherRecords, type PatientFormValues, type PatientRecord } from '../../lib/patient';
import { pagePath, requireSession } from '../../lib/session';

export const metadata: Metadata = { title: 'Patients' };

type PatientsPageProps = { searchParams: Promise<Record<string, string | string[] | undefined>> };

export default async function PatientsPage({ searchParams }: PatientsPageProps) {
  const params = await searchParams;
  const returnTo = pagePath(PAGES.patients.href, params);
  const session = await requireSession(returnTo);
  if (!mayUsePage(session.user.role, 'patients')) {
    return (
      <>
        <h1>Patients</h1>
        <AccessRefused session={session} page={PAGES.patients} />
      </>
    );
  }

  const form = parsePatientForm(params);
  const outcome = form.submitted && !form.problem ? await getPatientWithCases(form.values, { returnTo }) : null;
  if (outcome && !outcome.ok && outcome.code === 'FORBIDDEN') {
    return (
      <>
        <h1>Patients</h1>
        <AccessRefused session={session} page={PAGES.patients} apiMessage={outcome.message} />
      </>
    );
  }

  return (
    <>
      <h1>Patients</h1>
      <PatientForm values={form.values} />
      {form.problem && (
        <div className="alert" role="alert" data-error-code="INVALID_MRN">
          <p className="alert-title">No patient was looked up</p>
          <p>{form.problem}</p>
        </div>
      )}
      {outcome && !outcome.ok && (
        <div className="alert" role="alert" data-error-code={outcome.code}>
          {outcome.code === 'NOT_FOUND' ? (
            <>
              <p className="alert-title">
                There is no patient with MRN <q>{form.values.mrn}</q>
                {form.values.system && (
                  <>
                    {' '}
                    in <code>{form.values.system}</code>
                  </>
                )}
              </p>
              <p>Check the number{form.values.system ? ' and the identifier system' : ''} and try again.</p>
            </>
          ) : (
            <>
              <p className="alert-title">The patient could not be read</p>
              <p>{outcome.message}</p>
              <p className="alert-code">
                Error code: <code>{outcome.code}</code>
              </p>
            </>
          )}
        </div>
      )}
      {outcome?.ok && <PatientView patient={outcome.data} />}
    </>
  );
}

function PatientForm({ values }: { values: PatientFormValues }) {
  return (
    <form className="patient-form" method="get" action="/patients" aria-label="Find a patient">
      <div className="field">
        <label htmlFor="mrn">Medical record number (MRN)</label>
        <input id="mrn" name="mrn" type="text" required maxLength={MRN_MAX_LENGTH} autoComplete="off" spellCheck={false} defaultValue={values.mrn} />
      </div>
      <div className="field">
        <label htmlFor="system">Identifier system (optional)</label>
        <input id="system" name="system" type="text" autoComplete="off" spellCheck={false} defaultValue={values.system} aria-describedby="system-hint" />
        <p id="system-hint" className="hint">
          Leave empty for this deployment&rsquo;s own MRNs.
        </p>
      </div>
      <div className="actions">
        <button type="submit" className="button">
          Find patient
        </button>
      </div>
    </form>
  );
}

function PatientView({ patient }: { patient: PatientRecord }) {
  const rows = buildTimeline(patient.cases);
  return (
    <section aria-labelledby="patient-heading" data-testid="patient">
      <h2 id="patient-heading" className="visually-hidden">
        Patient {patient.mrn}
      </h2>
      <PatientSummaryList patient={patient} />
      <h2 id="timeline-heading">Timeline of both eyes</h2>
      <p className="note">
        {patient.cases.length} photograph{patient.cases.length === 1 ? '' : 's'} on {rows.filter((row) => row.right.photographs.length + row.left.photographs.length > 0).length} visit dates,
        oldest first, with the diagnoses and treatments dated on each day.
        {patient.truncated && ' Only the first photographs are shown: this patient has more than the page reads.'}
      </p>
      {rows.length === 0 ? (
        <p>No photographs or records.</p>
      ) : (
        <ol className="timeline" aria-labelledby="timeline-heading" data-testid="timeline">
          {rows.map((row) => (
            <li key={row.date} className="visit" data-testid="visit" data-date={row.date}>
              <h3>
                <time dateTime={row.date}>{row.date}</time>
              </h3>
              <div className="visit-eyes">
                <EyeColumn title="Right eye (OD)" eye="right" records={row.right} />
                <EyeColumn title="Left eye (OS)" eye="left" records={row.left} />
              </div>
              <OtherRecordsBlock title="Both eyes" testId="both-eyes" records={row.both} />
              <OtherRecordsBlock title="Eye not specified" testId="eye-unspecified" records={row.unspecified} />
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function OtherRecordsBlock({ title, testId, records }: { title: string; testId: string; records: OtherRecords }) {
  if (records.diagnoses.length + records.treatments.length === 0) return null;
  return (
    <section className="visit-eye visit-other" data-testid={testId}>
      <h4>{title}</h4>
      {records.diagnoses.length > 0 && <DiagnosisList diagnoses={records.diagnoses} withDate={false} withEye={false} />}
      {records.treatments.length > 0 && <TreatmentList treatments={records.treatments} withDate={false} withEye={false} />}
    </section>
  );
}

function EyeColumn({ title, eye, records }: { title: string; eye: 'right' | 'left'; records: EyeOnDate }) {
  const empty = records.photographs.length + records.diagnoses.length + records.treatments.length === 0;
  return (
    <section className="visit-eye" data-eye={eye}>
      <h4>{title}</h4>
      {empty && <p className="note">Nothing recorded.</p>}
      {records.photographs.map((photograph) => (
        <div key={photograph.id} className="photograph" data-testid="photograph" data-case-id={photograph.id}>
          <h5>
            <Link href={casePath(photograph.id)}>
              Photograph: {photograph.referenceGrading ? describeDrGrade(photograph.referenceGrading.drGrade) : 'not graded'}
            </Link>
          </h5>
          <p className="note">
            {photograph.image.width} × {photograph.image.height} px, quality {formatEnum(photograph.image.quality).toLowerCase()}
          </p>
          <GradingList gradings={photograph.gradings} />
        </div>
      ))}
      {records.diagnoses.length > 0 && (
        <>
          <h5>Diagnoses</h5>
          <DiagnosisList diagnoses={records.diagnoses} withDate={false} withEye={false} />
        </>
      )}
      {records.treatments.length > 0 && (
        <>
          <h5>Treatments</h5>
          <TreatmentList treatments={records.treatments} withDate={false} withEye={false} />
        </>
      )}
    </section>
  );
}
