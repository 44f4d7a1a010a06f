// The monitoring page's figures as the API gives them: the counts of one period, the table of every month (the
// chart's accessible equivalent) and the 5 x 5 confusion matrix. Nothing is derived here but the formatting of
// the agreement rate, so every number on the page is one of the API's.
import Link from 'next/link';
import { DR_GRADES } from '../../lib/grades';
import { formatAgreementRate, type AgreementPeriod } from '../../lib/suggestion-monitoring';

export function PeriodCounts({ period, testId }: { period: AgreementPeriod; testId: string }) {
  const items: [string, string, string][] = [
    ['revised', 'Revised', String(period.revised)],
    ['compared', 'Compared (a grade was suggested)', String(period.compared)],
    ['agreed', 'Agreed', String(period.agreed)],
    ['agreement-rate', 'Agreement rate', formatAgreementRate(period.agreementRate)],
    ['abstained', 'Abstained', String(period.abstained)],
  ];
  return (
    <dl className="monitoring-counts" data-testid={testId} data-period={period.period}>
      {items.map(([key, label, value]) => (
        <div key={key}>
          <dt>{label}</dt>
          <dd data-field={key} data-value={key === 'agreement-rate' ? String(period.agreementRate) : undefined}>
            {value}
          </dd>
        </div>
      ))}
    </dl>
  );
}

export function MonthsTable({ months, monthHref }: { months: AgreementPeriod[]; monthHref: (month: string) => string }) {
  return (
    <div className="table-scroll" role="region" aria-labelledby="months-caption" tabIndex={0}>
      <table className="hits monitoring-months" data-testid="months-table">
        <caption id="months-caption">Agreement by month of the revision, oldest first</caption>
        <thead>
          <tr>
            <th scope="col">Month</th>
            <th scope="col" className="numeric">Revised</th>
            <th scope="col" className="numeric">Compared</th>
            <th scope="col" className="numeric">Agreed</th>
            <th scope="col" className="numeric">Agreement rate</th>
            <th scope="col" className="numeric">Abstained</th>
          </tr>
        </thead>
        <tbody>
          {months.map((month) => (
            <tr key={month.period} data-period={month.period}>
              <th scope="row">
                <Link href={monthHref(month.period)} aria-label={`Confusion matrix of ${month.period}`}>
                  {month.period}
                </Link>
              </th>
              <td className="numeric">{month.revised}</td>
              <td className="numeric">{month.compared}</td>
              <td className="numeric">{month.agreed}</td>
              <td className="numeric">{formatAgreementRate(month.agreementRate)}</td>
              <td className="numeric">{month.abstained}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** confusion[suggested][clinician], as the API orders it: rows are the suggested grade, columns the clinician's. */
export function ConfusionMatrix({ period, caption, testId }: { period: AgreementPeriod; caption: string; testId: string }) {
  const captionId = `${testId}-caption`;
  return (
    <div className="table-scroll" role="region" aria-labelledby={captionId} tabIndex={0}>
      <table className="hits confusion-matrix" data-testid={testId} data-period={period.period}>
        <caption id={captionId}>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Suggested \ clinician</th>
            {DR_GRADES.map(({ grade, name }) => (
              <th key={grade} scope="col" className="numeric">
                {grade} – {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {DR_GRADES.map(({ grade, name }) => (
            <tr key={grade}>
              <th scope="row">
                {grade} – {name}
              </th>
              {DR_GRADES.map((column) => (
                <td key={column.grade} className={column.grade === grade ? 'numeric agreed-cell' : 'numeric'}>
                  {period.confusion[grade]?.[column.grade] ?? 0}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
