// Model monitoring of the reuse step (admins): how often clinicians agreed with the suggestion they were shown,
// and the confusion matrix (rows: suggested grade, columns: the clinician's), per month of the revision.
import { badInput } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { Prisma } from '../../generated/prisma/client.js';

export type AgreementPeriod = {
  /** YYYY-MM of the revision, or "all". */
  period: string;
  revised: number;
  /** Revised where a grade was suggested (not abstained, not without neighbours). */
  compared: number;
  agreed: number;
  agreementRate: number | null;
  abstained: number;
  /** 5 × 5, confusion[suggested][clinician]. */
  confusion: number[][];
};

export type SuggestionMonitoring = { overall: AgreementPeriod; months: AgreementPeriod[] };

const emptyPeriod = (period: string): AgreementPeriod => ({ period, revised: 0, compared: 0, agreed: 0, agreementRate: null, abstained: 0, confusion: Array.from({ length: 5 }, () => new Array<number>(5).fill(0)) });

export async function computeSuggestionMonitoring({ prisma, from, to }: { prisma: PrismaClient; from?: string | null; to?: string | null }): Promise<SuggestionMonitoring> {
  for (const [field, value] of [['from', from], ['to', to]] as const) {
    if (value != null && !/^\d{4}-\d{2}-\d{2}$/.test(value)) throw badInput(`${field} must be a date YYYY-MM-DD`, { field });
  }
  if (from && to && from > to) throw badInput(`from (${from}) is after to (${to})`, { field: 'from' });
  const rows = await prisma.$queryRaw<{ month: string; status: string; suggested: number | null; clinician: number; n: number }[]>`
    SELECT to_char(date_trunc('month', revised_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS month, status,
           suggested_grade AS suggested, clinician_grade AS clinician, count(*)::int AS n
    FROM suggestion_log
    WHERE revised_at IS NOT NULL AND clinician_grade IS NOT NULL
      ${from ? Prisma.sql`AND revised_at >= ${from}::date` : Prisma.empty}
      ${to ? Prisma.sql`AND revised_at < ${to}::date + 1` : Prisma.empty}
    GROUP BY 1, 2, 3, 4 ORDER BY 1`;
  const overall = emptyPeriod('all');
  const months = new Map<string, AgreementPeriod>();
  for (const row of rows) {
    const month = months.get(row.month) ?? emptyPeriod(row.month);
    months.set(row.month, month);
    for (const period of [overall, month]) {
      period.revised += row.n;
      if (row.status === 'ABSTAINED') period.abstained += row.n;
      if (row.suggested === null) continue;
      period.compared += row.n;
      if (row.suggested === row.clinician) period.agreed += row.n;
      period.confusion[row.suggested]![row.clinician]! += row.n;
    }
  }
  for (const period of [overall, ...months.values()]) period.agreementRate = period.compared === 0 ? null : period.agreed / period.compared;
  return { overall, months: [...months.values()] };
}
