import { describeCountTable, type CountTable, type GroupSummary } from '../../lib/cohort-statistics';

const SUPPRESSED_NOTE = 'disclosure-note';

export function csvHref(tableId: string, query: URLSearchParams): string {
  const params = new URLSearchParams(query);
  params.set('table', tableId);
  return `/cohort-statistics/csv?${params}`;
}

function Count({ value }: { value: number | null }) {
  return value === null ? (
    <span className="suppressed" aria-describedby={SUPPRESSED_NOTE}>
      suppressed
    </span>
  ) : (
    <>{value}</>
  );
}

/** One count table under disclosure control; a null entry is suppressed, never shown as a number or a blank. */
export function CountTableView({ table, query }: { table: CountTable; query: URLSearchParams }) {
  const caption = describeCountTable(table);
  const captionId = `table-${table.name}`;
  return (
    <figure className="stat-table" data-table={table.name}>
      <div className="table-scroll" role="region" aria-labelledby={captionId} tabIndex={0}>
        <table>
          <caption id={captionId}>
            {caption}
            {table.suppressedCells > 0 && <span className="caption-note"> ({table.suppressedCells} suppressed)</span>}
          </caption>
          <thead>
            <tr>
              <th scope="col">
                {table.rowTitle} \ {table.columnTitle}
              </th>
              {table.columns.map((column) => (
                <th key={column} scope="col">
                  {column}
                </th>
              ))}
              <th scope="col">Total</th>
            </tr>
          </thead>
          <tbody>
            {table.rows.map((row, rowIndex) => (
              <tr key={row}>
                <th scope="row">{row}</th>
                {table.columns.map((column, columnIndex) => (
                  <td key={column}>
                    <Count value={table.cells?.[rowIndex]?.[columnIndex] ?? null} />
                  </td>
                ))}
                <td className="total">
                  <Count value={table.rowTotals[rowIndex] ?? null} />
                </td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row">Total</th>
              {table.columns.map((column, columnIndex) => (
                <td key={column} className="total">
                  <Count value={table.columnTotals[columnIndex] ?? null} />
                </td>
              ))}
              <td className="total">
                <Count value={table.total} />
              </td>
            </tr>
          </tfoot>
        </table>
      </div>
      <p className="download">
        <a href={csvHref(table.name, query)} download>
          Download “{caption}” as CSV
        </a>
      </p>
    </figure>
  );
}

const formatNumber = (value: number | null) => (value === null ? '—' : String(value));

/** Medians and quartiles; a group under k is withheld as a whole. */
export function SummaryTableView({
  id,
  caption,
  groupTitle,
  summaries,
  query,
}: {
  id: string;
  caption: string;
  groupTitle: string;
  summaries: GroupSummary[];
  query: URLSearchParams;
}) {
  const captionId = `table-${id}`;
  return (
    <figure className="stat-table" data-table={id}>
      <div className="table-scroll" role="region" aria-labelledby={captionId} tabIndex={0}>
        <table>
          <caption id={captionId}>{caption}</caption>
          <thead>
            <tr>
              <th scope="col">{groupTitle}</th>
              <th scope="col">Patients</th>
              <th scope="col">Median</th>
              <th scope="col">Lower quartile</th>
              <th scope="col">Upper quartile</th>
            </tr>
          </thead>
          <tbody>
            {summaries.map((summary) => (
              <tr key={summary.group}>
                <th scope="row">{summary.group}</th>
                {summary.withheld ? (
                  <td colSpan={4}>
                    <span className="suppressed" aria-describedby={SUPPRESSED_NOTE}>
                      withheld (fewer than k patients)
                    </span>
                  </td>
                ) : (
                  <>
                    <td>{formatNumber(summary.n)}</td>
                    <td>{formatNumber(summary.median)}</td>
                    <td>{formatNumber(summary.lowerQuartile)}</td>
                    <td>{formatNumber(summary.upperQuartile)}</td>
                  </>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="download">
        <a href={csvHref(id, query)} download>
          Download “{caption}” as CSV
        </a>
      </p>
    </figure>
  );
}

/** The short explanation every "suppressed" cell points to (aria-describedby). */
export function DisclosureNote({ k }: { k: number }) {
  return (
    <p id={SUPPRESSED_NOTE} className="disclosure-note">
      <span className="suppressed">suppressed</span> marks a count of 1 to {k - 1} (k = {k}; tables of eyes use {2 * k - 1}), or
      a cell hidden as well so that such a count cannot be worked out from the totals. This disclosure control keeps small
      groups of patients from being recognised; zeros are shown.
    </p>
  );
}
