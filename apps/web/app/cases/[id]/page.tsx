import type { Metadata } from 'next';
import Link from 'next/link';
import { notFound } from 'next/navigation';
import '../../../components/case/case-pages.css';
import { AccessRefused } from '../../../components/access-refused';
import { PatientSummaryList } from '../../../components/case/patient-summary';
import { DiagnosisList, GradingList, TreatmentList } from '../../../components/case/records';
import { PAGES, mayUsePage } from '../../../lib/access';
import { casePath, getCase, patientPath, similarCasesPath, type CaseDetail } from '../../../lib/case';
import { describeDrGrade } from '../../../lib/grades';
import { formatDate, formatEnum, formatLaterality, NONE } from '../../../lib/labels';
import { requireSession } from '../../../lib/session';

export const metadata: Metadata = { title: 'Case' };

type CasePageProps = { params: Promise<{ id: string }> };

export default async function CasePage({ params }: CasePageProps) {
  const { id: rawId } = await params;
  const id = decodeURIComponent(rawId);
  const returnTo = casePath(id);
  const session = await requireSession(returnTo);
  // A case is a patient's record: the same roles as the patient page.
  if (!mayUsePage(session.user.role, 'patients')) {
    return (
      <>
        <h1>Case</h1>
        <AccessRefused session={session} page={PAGES.patients} />
      </>
    );
  }

  const outcome = await getCase(id, { returnTo });
  if (!outcome.ok) {
    if (outcome.code === 'NOT_FOUND') notFound();
    if (outcome.code === 'FORBIDDEN') {
      return (
        <>
          <h1>Case</h1>
          <AccessRefused session={session} page={PAGES.patients} apiMessage={outcome.message} />
        </>
      );
    }
    const malformed = outcome.code === 'BAD_USER_INPUT';
    return (
      <>
        <h1>Case</h1>
        <div className="alert" role="alert" data-error-code={outcome.code}>
          <p className="alert-title">{malformed ? <>“{id}” is not a case id</> : 'The case could not be read'}</p>
          <p>{malformed ? 'A case id is the photograph’s id, a UUID such as 0b6e5a4c-2f1d-4c7e-9a3b-5d8f7e6c1a20. Check the link or address.' : outcome.message}</p>
          {!malformed && (
            <p className="alert-code">
              Error code: <code>{outcome.code}</code>
            </p>
          )}
        </div>
        <p>
          <Link href={PAGES.patients.href}>Find a patient by MRN</Link>
        </p>
      </>
    );
  }
  return <CaseView found={outcome.data} />;
}

function CaseView({ found }: { found: CaseDetail }) {
  const eye = formatLaterality(found.image.eye);
  const { followUp } = found;
  const nothingLater = followUp.gradings.length + followUp.diagnoses.length + followUp.treatments.length === 0;
  return (
    <>
      <h1>
        Case: {eye} on <time dateTime={found.visit.date}>{found.visit.date}</time>{' '}
        {found.isSynthetic && (
          <span className="badge" title="A generated demo or test case, never a real person">
            Synthetic
          </span>
        )}
      </h1>
      <p className="note">
        Case id <code data-testid="case-id">{found.id}</code>
      </p>
      <p className="case-links">
        <Link href={patientPath(found.patient)} data-testid="patient-link">
          Patient {found.patient.mrn}: all visits
        </Link>
        <Link href={similarCasesPath(found.id)}>Search similar cases</Link>
      </p>
      <PatientSummaryList patient={found.patient} />
      <div className="case-sections">
        <section className="case-section" aria-labelledby="photograph-heading">
          <h2 id="photograph-heading">Photograph</h2>
          <dl className="plain">
            <dt>Eye</dt>
            <dd>{formatEnum(found.image.eye)}</dd>
            <dt>Size</dt>
            <dd>
              {found.image.width} × {found.image.height} px
            </dd>
            <dt>Quality</dt>
            <dd>{formatEnum(found.image.quality)}</dd>
            <dt>Age at the visit</dt>
            <dd>{found.ageAtVisit ?? NONE}</dd>
          </dl>
        </section>
        <section className="case-section" aria-labelledby="reference-heading" data-testid="reference-grading">
          <h2 id="reference-heading">Reference grading</h2>
          {found.referenceGrading ? (
            <p>
              <span className="record-main">{describeDrGrade(found.referenceGrading.drGrade)}</span>
              {found.referenceGrading.maculopathy && ', maculopathy'} · {formatEnum(found.referenceGrading.source)}
              {found.referenceGrading.grader && <> by {found.referenceGrading.grader}</>} · {formatDate(found.referenceGrading.date)}
            </p>
          ) : (
            <p className="note">Not graded by a person yet.</p>
          )}
          <h3>All gradings, oldest first</h3>
          <GradingList gradings={found.gradings} />
        </section>
        <section className="case-section" aria-labelledby="known-heading">
          <h2 id="known-heading">Known at the visit</h2>
          <h3>Diagnoses</h3>
          {found.diagnoses.length > 0 ? <DiagnosisList diagnoses={found.diagnoses} /> : <p className="note">None recorded.</p>}
          <h3>Treatments</h3>
          {found.treatments.length > 0 ? <TreatmentList treatments={found.treatments} /> : <p className="note">None recorded.</p>}
        </section>
        <section className="case-section" aria-labelledby="follow-up-heading" data-testid="follow-up">
          <h2 id="follow-up-heading">What happened next</h2>
          {nothingLater && <p className="note">Nothing recorded after this visit.</p>}
          {followUp.gradings.length > 0 && (
            <>
              <h3>Later photographs of this eye</h3>
              <ul className="record-list" data-testid="follow-up-gradings">
                {followUp.gradings.map((grading) => (
                  <li key={`${grading.imageId}-${grading.date}-${grading.source}`}>
                    <Link href={casePath(grading.imageId)}>
                      <time dateTime={grading.visitDate}>{grading.visitDate}</time>
                    </Link>
                    : <span className="record-main">{describeDrGrade(grading.drGrade)}</span>
                    {grading.maculopathy && ', maculopathy'} · {formatEnum(grading.source)}, graded {formatDate(grading.date)}
                  </li>
                ))}
              </ul>
            </>
          )}
          {followUp.diagnoses.length > 0 && (
            <>
              <h3>Later diagnoses</h3>
              <DiagnosisList diagnoses={followUp.diagnoses} />
            </>
          )}
          {followUp.treatments.length > 0 && (
            <>
              <h3>Later treatments</h3>
              <TreatmentList treatments={followUp.treatments} />
            </>
          )}
        </section>
      </div>
    </>
  );
}
