import type { Metadata } from 'next';
import './monitoring.css';
import { AccessRefused } from '../../components/access-refused';
import { AgreementChart } from '../../components/monitoring/agreement-chart';
import { ConfusionMatrix, MonthsTable, PeriodCounts } from '../../components/monitoring/agreement-tables';
import { PAGES, mayUsePage } from '../../lib/access';
import { getSuggestionMonitoring, parseMonitoringForm, type MonitoringFormValues, type SuggestionMonitoring } from '../../lib/suggestion-monitoring';
import { pagePath, requireSession } from '../../lib/session';

export const metadata: Metadata = { title: 'Suggestion monitoring' };

type MonitoringPageProps = { searchParams: Promise<Record<string, string | string[] | undefined>> };

const PAGE = PAGES.monitoring;

/** The page's address with the range kept and the month changed (null: no month). */
function monitoringHref(values: MonitoringFormValues, month: string | null): string {
  const query = new URLSearchParams();
  if (values.from) query.set('from', values.from);
  if (values.to) query.set('to', values.to);
  if (month) query.set('month', month);
  const text = query.toString();
  return text ? `${PAGE.href}?${text}` : PAGE.href;
}

function describeRange({ from, to }: MonitoringFormValues): string {
  if (from && to) return `from ${from} to ${to}`;
  if (from) return `from ${from} on`;
  if (to) return `up to ${to}`;
  return 'all time';
}

export default async function MonitoringPage({ searchParams }: MonitoringPageProps) {
  const params = await searchParams;
  const returnTo = pagePath(PAGE.href, params);
  const session = await requireSession(returnTo);
  if (!mayUsePage(session.user.role, 'monitoring')) {
    // The API answers FORBIDDEN to this role (POLICY 'read-suggestion-monitoring'); test/web/monitoring.test.mjs
    // checks that the two agree, so no request is sent only to be refused.
    return (
      <>
        <h1>Suggestion monitoring</h1>
        <AccessRefused session={session} page={PAGE} code="FORBIDDEN" />
      </>
    );
  }

  const form = parseMonitoringForm(params);
  const outcome = form.input ? await getSuggestionMonitoring(form.input, { returnTo }) : null;
  if (outcome && !outcome.ok && outcome.code === 'FORBIDDEN') {
    return (
      <>
        <h1>Suggestion monitoring</h1>
        <AccessRefused session={session} page={PAGE} apiMessage={outcome.message} code={outcome.code} />
      </>
    );
  }

  return (
    <>
      <h1>Suggestion monitoring</h1>
      <p className="lead">
        How often clinicians agreed with the grade the search suggested, from the readings they recorded (revise). Each revision counts in the month it was
        recorded; abstentions had no grade to compare.
      </p>
      <form className="monitoring-form" method="get" action={PAGE.href} aria-label="Date range">
        <div className="field">
          <label htmlFor="from">From (inclusive)</label>
          <input id="from" name="from" type="date" defaultValue={form.values.from} />
        </div>
        <div className="field">
          <label htmlFor="to">To (inclusive)</label>
          <input id="to" name="to" type="date" defaultValue={form.values.to} />
        </div>
        <div className="actions">
          <button type="submit">Show</button>
        </div>
      </form>
      {form.problems.length > 0 && (
        <div className="alert" role="alert" data-error-code="INVALID_FILTER">
          <p className="alert-title">Nothing was asked of the API: the address has values this page does not accept</p>
          <ul>
            {form.problems.map((problem) => (
              <li key={problem}>{problem}</li>
            ))}
          </ul>
          <p>Correct them in the form and show the figures again.</p>
        </div>
      )}
      {outcome && !outcome.ok && (
        <div className="alert" role="alert" data-error-code={outcome.code}>
          <p className="alert-title">The monitoring figures could not be loaded</p>
          <p>{outcome.message}</p>
          <p className="alert-code">
            Error code: <code>{outcome.code}</code>
          </p>
        </div>
      )}
      {outcome?.ok && <MonitoringResults monitoring={outcome.data} values={form.values} month={form.month} />}
    </>
  );
}

function MonitoringResults({ monitoring, values, month }: { monitoring: SuggestionMonitoring; values: MonitoringFormValues; month: string | null }) {
  const range = describeRange(values);
  const { overall, months } = monitoring;
  if (overall.revised === 0) {
    return (
      <p className="notice" data-testid="monitoring-empty">
        {values.from || values.to
          ? `No revisions ${range}: no clinician recorded a reading of a photograph for which a grade was suggested in this range.`
          : 'No revisions yet: no clinician has recorded a reading of a photograph for which a grade was suggested. The figures appear here after the first one.'}
      </p>
    );
  }
  const chosenMonth = month ?? months[months.length - 1]?.period ?? null;
  const chosen = months.find((candidate) => candidate.period === chosenMonth) ?? null;
  return (
    <div className="results" data-testid="monitoring-results">
      <section aria-labelledby="overall-heading" className="results-section monitoring-section">
        <h2 id="overall-heading">All revisions, {range}</h2>
        <PeriodCounts period={overall} testId="overall-counts" />
      </section>

      <section aria-labelledby="trend-heading" className="results-section monitoring-section">
        <h2 id="trend-heading">Agreement over time</h2>
        <AgreementChart points={months.map(({ period, agreementRate, compared }) => ({ period, agreementRate, compared }))} />
        <MonthsTable months={months} monthHref={(period) => monitoringHref(values, period)} />
      </section>

      <section aria-labelledby="confusion-heading" className="results-section monitoring-section">
        <h2 id="confusion-heading">Suggested grade against the clinician’s grade</h2>
        <ConfusionMatrix period={overall} caption={`Confusion matrix, ${range}: suggested grade (rows) by the clinician’s grade (columns)`} testId="confusion-overall" />
        <form className="monitoring-form month-form" method="get" action={PAGE.href} aria-label="Month of the confusion matrix">
          {values.from && <input type="hidden" name="from" value={values.from} />}
          {values.to && <input type="hidden" name="to" value={values.to} />}
          <div className="field">
            <label htmlFor="month">Month</label>
            <select id="month" name="month" defaultValue={chosenMonth ?? ''}>
              {months.map(({ period }) => (
                <option key={period} value={period}>
                  {period}
                </option>
              ))}
            </select>
          </div>
          <div className="actions">
            <button type="submit">Show this month</button>
          </div>
        </form>
        {chosen ? (
          <>
            <h3 id="month-heading">{chosen.period}</h3>
            <PeriodCounts period={chosen} testId="month-counts" />
            <ConfusionMatrix period={chosen} caption={`Confusion matrix, ${chosen.period}: suggested grade (rows) by the clinician’s grade (columns)`} testId="confusion-month" />
          </>
        ) : (
          <p className="notice" data-testid="month-empty">
            {`No revisions in ${chosenMonth}${range === 'all time' ? '' : ` (${range})`}.`}
          </p>
        )}
      </section>
    </div>
  );
}
