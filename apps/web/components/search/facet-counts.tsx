// How the hits divide by reference grade and by treatment (at the time of each photograph). Counts among the
// hits shown, not the whole archive.
import type { FacetCount } from '../../lib/similar-cases';

function FacetTable({ caption, facets, testId }: { caption: string; facets: FacetCount[]; testId: string }) {
  return (
    <table className="facet-table" data-testid={testId}>
      <caption>{caption}</caption>
      <tbody>
        {facets.map((facet) => (
          <tr key={facet.key} className={facet.count === 0 ? 'facet-empty' : undefined}>
            <th scope="row">{facet.label}</th>
            <td className="numeric">{facet.count}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FacetCounts({ facets }: { facets: { grades: FacetCount[]; treatments: FacetCount[] } }) {
  return (
    <div className="facets" aria-label="Hits by grade and treatment" role="group">
      <FacetTable caption="Hits by DR grade" facets={facets.grades} testId="facet-grades" />
      <FacetTable caption="Hits by treatment" facets={facets.treatments} testId="facet-treatments" />
    </div>
  );
}
