// The CBR reuse step beside the hits: the grade suggested from the nearest graded cases (or why none is), the
// calibrated probability of each grade and of referable DR, the grades among the hits, and what happened to the
// similar patients. Decision support, not a diagnosis. A server component: plain figures from the search result.
import { DR_GRADES } from '../../lib/grades';
import { formatTreatmentType } from '../../lib/labels';
import type { GradeSuggestion } from '../../lib/similar-cases';

const percent = (value: number) => `${(value * 100).toFixed(0)}%`;
const STATUS_TITLE: Record<GradeSuggestion['status'], string> = {
  SUGGESTED: 'Suggested grade',
  ABSTAINED: 'No grade suggested',
  UNCALIBRATED: 'Uncalibrated vote',
  NO_NEIGHBOURS: 'No grade suggested',
};

export function SuggestionPanel({ suggestion }: { suggestion: GradeSuggestion }) {
  const { outcomes } = suggestion;
  const headline =
    suggestion.suggestedGrade !== null && suggestion.status !== 'ABSTAINED'
      ? `${suggestion.suggestedGrade} – ${suggestion.suggestedGradeName ?? DR_GRADES[suggestion.suggestedGrade]?.name ?? ''}`
      : suggestion.status === 'ABSTAINED'
        ? 'Abstained'
        : 'None';
  return (
    <section className="suggestion" aria-labelledby="suggestion-heading" data-testid="suggestion" data-status={suggestion.status}>
      <h2 id="suggestion-heading">Suggestion from similar cases</h2>
      <p className="hint">Decision support, not a diagnosis: {suggestion.rule}</p>
      <p className="suggestion-headline">
        <span className="suggestion-label">{STATUS_TITLE[suggestion.status]}:</span>{' '}
        <strong data-testid="suggested-grade">{headline}</strong>
        {suggestion.confidence !== null && suggestion.status === 'SUGGESTED' && <> (probability {percent(suggestion.confidence)})</>}
      </p>
      {suggestion.reason && (
        <p data-testid="suggestion-reason">
          {suggestion.status === 'ABSTAINED' ? 'Abstained: ' : ''}
          {suggestion.reason}
        </p>
      )}
      <p className="hint">
        {suggestion.voters} graded neighbour{suggestion.voters === 1 ? '' : 's'} voted
        {suggestion.calibrationModelVersion && <>; calibrated for model {suggestion.calibrationModelVersion}</>}.
      </p>
      {suggestion.gradeProbabilities && (
        <table className="suggestion-table" data-testid="grade-probabilities">
          <caption>Calibrated probability per grade</caption>
          <thead>
            <tr>
              <th scope="col">DR grade</th>
              <th scope="col">Probability</th>
              <th scope="col">Hits</th>
            </tr>
          </thead>
          <tbody>
            {suggestion.gradeProbabilities.map(({ grade, probability }) => (
              <tr key={grade}>
                <th scope="row">
                  {grade} – {DR_GRADES[grade]?.name}
                </th>
                <td className="numeric">
                  <span className="probability-bar" aria-hidden="true" style={{ width: `${Math.round(probability * 100)}%` }} />
                  {percent(probability)}
                </td>
                <td className="numeric">{suggestion.hitGrades.find((count) => count.grade === grade)?.count ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!suggestion.gradeProbabilities && (
        <table className="suggestion-table" data-testid="hit-grades">
          <caption>Grades among the hits</caption>
          <thead>
            <tr>
              <th scope="col">DR grade</th>
              <th scope="col">Hits</th>
            </tr>
          </thead>
          <tbody>
            {suggestion.hitGrades.map(({ grade, gradeName, count }) => (
              <tr key={grade}>
                <th scope="row">
                  {grade} – {gradeName}
                </th>
                <td className="numeric">{count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {suggestion.ungradedHits > 0 && <p className="hint">{suggestion.ungradedHits} hit(s) not graded.</p>}
      {suggestion.referableProbability !== null && (
        <p data-testid="referable">
          P(referable DR, grade 2 or more): <strong>{percent(suggestion.referableProbability)}</strong>
          {suggestion.referable !== null && <> – {suggestion.referable ? 'at or above the referral threshold' : 'below the referral threshold'}</>}
        </p>
      )}
      <h3>What happened to the similar patients</h3>
      <ul className="plain outcomes" data-testid="outcomes">
        <li>
          Treated after the visit: {outcomes.treatedAfter} of {outcomes.hits}
          {outcomes.treatments.length > 0 && (
            <> ({outcomes.treatments.map((treatment) => `${formatTreatmentType(treatment.type).toLowerCase()} ${treatment.hits}`).join(', ')})</>
          )}
        </li>
        {outcomes.worsening.map((window) => (
          <li key={window.years}>
            Worse within {window.years} year{window.years === 1 ? '' : 's'}: {window.worsened} of {window.followedUp} followed up
          </li>
        ))}
        {outcomes.undatedHits > 0 && <li className="hint">{outcomes.undatedHits} hit(s) of undated visits count in no window.</li>}
      </ul>
    </section>
  );
}
