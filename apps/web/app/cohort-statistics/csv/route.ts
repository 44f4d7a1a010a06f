// One table of a cohort as CSV: the same query string as the page plus `table`, answered with the API's own
// `csv` field (or, for summaries, the same layout written here). The session's token signs the request, so the
// API applies the same role check and disclosure control as for the page.
import { NextResponse, type NextRequest } from 'next/server';
import { getCohortStatistics, listDownloadableTables, parseCohortForm } from '../../../lib/cohort-statistics';
import { PAGES } from '../../../lib/access';

const plain = (status: number, text: string) =>
  new NextResponse(text, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });

export async function GET(request: NextRequest) {
  const params: Record<string, string[]> = {};
  for (const [name, value] of request.nextUrl.searchParams) (params[name] ??= []).push(value);
  const tableId = params.table?.[0] ?? '';
  delete params.table;
  const returnTo = `${PAGES['cohort-statistics'].href}${request.nextUrl.search.replace(/([?&])table=[^&]*&?/, '$1').replace(/[?&]$/, '')}`;

  const form = parseCohortForm(params);
  if (!form.input) return plain(400, `The cohort was not computed:\n${form.problems.join('\n')}\n`);
  const outcome = await getCohortStatistics(form.input, { returnTo });
  if (!outcome.ok) return plain(outcome.code === 'FORBIDDEN' ? 403 : 422, `${outcome.code}: ${outcome.message}\n`);
  const table = listDownloadableTables(outcome.data).find((candidate) => candidate.id === tableId);
  if (!table) return plain(404, `No table "${tableId}" in the cohort statistics.\n`);
  return new NextResponse(table.csv, {
    status: 200,
    headers: {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="cohort-${table.id}.csv"`,
      'cache-control': 'no-store',
    },
  });
}
