import type { Metadata } from 'next';
import './cohort-statistics.css';
import { AccessRefused } from '../../components/access-refused';
import { CohortForm } from '../../components/cohort/cohort-form';
import { CountTableView, DisclosureNote, SummaryTableView } from '../../components/cohort/count-table';
import { GradeChart } from '../../components/cohort/grade-chart';
import { SurvivalSection } from '../../components/cohort/survival-section';
import { PAGES, mayUsePage } from '../../lib/access';
import { cohortQueryString, getCohortStatistics, parseCohortForm, type CohortStatistics, type CountTable } from '../../lib/cohort-statistics';
import { pagePath, requireSession } from '../../lib/session';

export const metadata: Metadata = { title: 'Cohort statistics' };

type CohortStatisticsPageProps = { searchParams: Promise<Record<string, string | string[] | undefined>> };

/** What each refusal of the API means for the person, and what to do about it. */
function describeFailure(code: string, message: string): { title: string; explanation: string } {
  switch (code) {
    case 'COHORT_TOO_SMALL':
      return { title: 'The cohort is too small to show', explanation: `${message} Statistics of very few patients could identify them; widen the filter.` };
    case 'EMPTY_COHORT':
      return { title: 'No eye matches this cohort', explanation: `${message}. Widen the filter: fewer grades, bands or treatments ticked means fewer eyes.` };
    case 'COHORT_OVERLAP':
      return {
        title: 'The cohort is too close to one you asked for recently',
        explanation: `${message} Differencing control refuses a cohort that differs by only a few patients from one of your recent cohorts, because comparing the two would reveal those patients.`,
      };
    case 'BAD_USER_INPUT':
      return { title: 'The API did not accept this filter', explanation: message };
    default:
      return { title: 'The statistics could not be computed', explanation: message };
  }
}

export default async function CohortStatisticsPage({ searchParams }: CohortStatisticsPageProps) {
  const params = await searchParams;
  const returnTo = pagePath(PAGES['cohort-statistics'].href, params);
  const session = await requireSession(returnTo);
  if (!mayUsePage(session.user.role, 'cohort-statistics')) {
    return (
      <>
        <h1>Cohort statistics</h1>
        <AccessRefused session={session} page={PAGES['cohort-statistics']} />
      </>
    );
  }

  const form = parseCohortForm(params);
  const outcome = form.input ? await getCohortStatistics(form.input, { returnTo }) : null;
  if (outcome && !outcome.ok && outcome.code === 'FORBIDDEN') {
    return (
      <>
        <h1>Cohort statistics</h1>
        <AccessRefused session={session} page={PAGES['cohort-statistics']} apiMessage={outcome.message} />
      </>
    );
  }
  const failure = outcome && !outcome.ok ? describeFailure(outcome.code, outcome.message) : null;

  return (
    <>
      <h1>Cohort statistics</h1>
      <p className="lede">Aggregate figures over a cohort of eyes, under disclosure control: never individual cases or patients.</p>
      <div className="cohort-layout">
        <CohortForm values={form.values} />
        <div className="cohort-results">
          {form.problems.length > 0 && (
            <div className="alert" role="alert" data-error-code="INVALID_FILTER">
              <p className="alert-title">The statistics were not computed: the address has values this page does not accept</p>
              <ul>
                {form.problems.map((problem) => (
                  <li key={problem}>{problem}</li>
                ))}
              </ul>
              <p>Correct them in the form and show the statistics again.</p>
            </div>
          )}
          {outcome && !outcome.ok && failure && (
            <div className="alert" role="alert" data-error-code={outcome.code}>
              <p className="alert-title">{failure.title}</p>
              <p>{failure.explanation}</p>
              <p className="alert-code">
                Error code: <code>{outcome.code}</code>
              </p>
            </div>
          )}
          {outcome?.ok && <CohortResults statistics={outcome.data} query={cohortQueryString(form.values)} />}
        </div>
      </div>
    </>
  );
}

const isEyeTable = (table: CountTable) => table.name.includes('per-eye');

function GradeChartFor({ tables, unit }: { tables: CountTable[]; unit: string }) {
  const baseline = tables.find((table) => table.name.includes('baseline') && table.name.endsWith('by-all'));
  const latest = tables.find((table) => table.name.includes('latest') && table.name.endsWith('by-all'));
  const bars = [
    ...(baseline ? [{ label: 'Baseline', counts: baseline.cells?.[0] ?? [] }] : []),
    ...(latest ? [{ label: 'Latest', counts: latest.cells?.[0] ?? [] }] : []),
  ];
  const grades = (baseline ?? latest)?.columns ?? [];
  return bars.length > 0 ? <GradeChart grades={grades} bars={bars} unit={unit} /> : null;
}

function CohortResults({ statistics, query }: { statistics: CohortStatistics; query: URLSearchParams }) {
  const k = statistics.minimumCellSize;
  const eyeTables = statistics.gradeDistributions.filter(isEyeTable);
  const patientTables = statistics.gradeDistributions.filter((table) => !isEyeTable(table));
  return (
    <div className="results" data-testid="cohort-results">
      <section aria-labelledby="cohort-heading" className="results-section">
        <h2 id="cohort-heading">The cohort</h2>
        <dl className="cohort-size">
          <div>
            <dt>Patients</dt>
            <dd data-testid="cohort-patients">{statistics.patients}</dd>
          </div>
          <div>
            <dt>Eyes</dt>
            <dd data-testid="cohort-eyes">{statistics.eyes}</dd>
          </div>
          <div>
            <dt>Minimum cell size (k)</dt>
            <dd data-testid="cohort-k">{k}</dd>
          </div>
        </dl>
        <DisclosureNote k={k} />
        <nav aria-label="Sections of the results" className="results-contents">
          <ul>
            <li><a href="#eye-grades-heading">Grades per eye</a></li>
            <li><a href="#patient-grades-heading">Grades per patient</a></li>
            <li><a href="#transition-heading">Baseline to latest</a></li>
            <li><a href="#treatment-heading">Treatments</a></li>
            <li><a href="#hba1c-heading">HbA1c by grade</a></li>
            {statistics.timeToWorsening && <li><a href="#survival-heading">Time to worsening</a></li>}
          </ul>
        </nav>
      </section>

      <section aria-labelledby="eye-grades-heading" className="results-section">
        <h2 id="eye-grades-heading">Grade distribution per eye</h2>
        <GradeChartFor tables={eyeTables} unit="eyes" />
        {eyeTables.map((table) => (
          <CountTableView key={table.name} table={table} query={query} />
        ))}
      </section>

      <section aria-labelledby="patient-grades-heading" className="results-section">
        <h2 id="patient-grades-heading">Grade distribution per patient (worse eye)</h2>
        {patientTables.map((table) => (
          <CountTableView key={table.name} table={table} query={query} />
        ))}
      </section>

      <section aria-labelledby="transition-heading" className="results-section">
        <h2 id="transition-heading">From baseline to latest grade</h2>
        <CountTableView table={statistics.transitionMatrix} query={query} />
      </section>

      <section aria-labelledby="treatment-heading" className="results-section">
        <h2 id="treatment-heading">Treatments</h2>
        <CountTableView table={statistics.treatments.counts} query={query} />
        <SummaryTableView
          id="injections-per-patient-year"
          caption="Anti-VEGF injections per patient-year, among injected patients followed a year or more"
          groupTitle="Group"
          summaries={[statistics.treatments.injectionsPerPatientYear]}
          query={query}
        />
      </section>

      <section aria-labelledby="hba1c-heading" className="results-section">
        <h2 id="hba1c-heading">HbA1c by grade</h2>
        <SummaryTableView
          id="hba1c-by-grade"
          caption="Baseline HbA1c (%) by the worse eye’s baseline grade"
          groupTitle="Baseline grade (worse eye)"
          summaries={statistics.hba1cByGrade}
          query={query}
        />
      </section>

      {statistics.timeToWorsening && <SurvivalSection survival={statistics.timeToWorsening} k={k} />}
    </div>
  );
}
