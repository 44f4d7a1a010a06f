import { EVENT_LABELS, HBA1C_BAND_LABELS, STRATUM_LABELS, type TimeToWorsening } from '../../lib/cohort-statistics';
import { SurvivalChart } from './survival-chart';

export function describeStratum(stratifiedBy: string | null, stratum: string): string {
  if (!stratifiedBy) return stratum.toLowerCase() === 'all' ? 'All eyes' : stratum;
  const value = stratifiedBy === 'HBA1C_BAND' ? (HBA1C_BAND_LABELS[stratum] ?? stratum) : stratum;
  return `${STRATUM_LABELS[stratifiedBy] ?? stratifiedBy} ${value}`;
}

const formatYears = (value: number | null) => (value === null ? 'not reached' : `${value.toFixed(1)} years`);

export function SurvivalSection({ survival, k }: { survival: TimeToWorsening; k: number }) {
  const eventLabel = EVENT_LABELS[survival.event] ?? survival.event;
  const shown = survival.curves.filter((curve) => !curve.withheld);
  const withheld = survival.curves.filter((curve) => curve.withheld);
  const labels = shown.map((curve) => describeStratum(survival.stratifiedBy, curve.stratum));
  const years = [...new Set(shown.flatMap((curve) => curve.numbersAtRisk.map((count) => count.time)))].sort((a, b) => a - b);
  return (
    <section aria-labelledby="survival-heading" className="results-section">
      <h2 id="survival-heading">Time to worsening: {eventLabel}</h2>
      <p className="hint">
        Kaplan-Meier estimate from each eye’s first eligible visit, censored at its last; shaded: log-log 95% interval; “+”:
        censored eyes. A curve stops where fewer than {k} eyes would remain at risk.
        {survival.undatedEyesExcluded > 0 && ` ${survival.undatedEyesExcluded} eyes without dated visits are left out.`}
      </p>
      {shown.length > 0 ? (
        <SurvivalChart curves={shown} labels={labels} eventLabel={eventLabel} />
      ) : (
        <p>No curve can be shown: every stratum is under the disclosure threshold.</p>
      )}
      {withheld.length > 0 && (
        <p className="withheld-strata" data-testid="withheld-strata">
          Withheld (fewer than {2 * k - 1} eyes): {withheld.map((curve) => describeStratum(survival.stratifiedBy, curve.stratum)).join(', ')}.
        </p>
      )}
      {shown.length > 0 && (
        <div className="table-scroll" role="region" aria-labelledby="at-risk-caption" tabIndex={0}>
          <table className="at-risk" data-table="numbers-at-risk">
            <caption id="at-risk-caption">Numbers at risk (eyes) at each year</caption>
            <thead>
              <tr>
                <th scope="col">Stratum</th>
                {years.map((year) => (
                  <th key={year} scope="col">
                    {year} y
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((curve, index) => (
                <tr key={curve.stratum}>
                  <th scope="row">{labels[index]}</th>
                  {years.map((year) => {
                    const count = curve.numbersAtRisk.find((entry) => entry.time === year)?.atRisk;
                    const hidden = count !== undefined && !/^\d+$/.test(count);
                    return (
                      <td key={year}>{count === undefined ? '—' : hidden ? <span className="suppressed">{count}</span> : count}</td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {shown.length > 0 && (
        <div className="table-scroll" role="region" aria-labelledby="curve-summary-caption" tabIndex={0}>
          <table data-table="curve-summary">
            <caption id="curve-summary-caption">Eyes, events and median time to the event</caption>
            <thead>
              <tr>
                <th scope="col">Stratum</th>
                <th scope="col">Eyes</th>
                <th scope="col">Events</th>
                <th scope="col">Median</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((curve, index) => (
                <tr key={curve.stratum}>
                  <th scope="row">{labels[index]}</th>
                  <td>{curve.eyes ?? '—'}</td>
                  <td>{curve.events ?? '—'}</td>
                  <td>{formatYears(curve.medianYears)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {survival.logRank && (
        <p data-testid="log-rank">
          Log-rank test across {survival.logRank.strata.map((stratum) => describeStratum(survival.stratifiedBy, stratum)).join(', ')}: χ² ={' '}
          {survival.logRank.chiSquare.toFixed(2)} on {survival.logRank.degreesOfFreedom} degrees of freedom, p ={' '}
          {survival.logRank.pValue < 0.001 ? '< 0.001' : survival.logRank.pValue.toFixed(3)}.
        </p>
      )}
    </section>
  );
}
