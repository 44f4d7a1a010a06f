// Model monitoring for admins (the API's suggestionMonitoring): how often clinicians agreed with the grade
// suggestion they were shown, by month of the revision, and the confusion matrix. The page's address holds the
// date range (`from`, `to`, YYYY-MM-DD, both inclusive) and the month whose matrix is shown (`month`, YYYY-MM);
// a value that is not a real date, or a range that ends before it starts, is reported and no query is sent.
import { requestGraphql, type ApiOutcome } from './api-request';
import type { SuggestionMonitoringQuery, SuggestionMonitoringQueryVariables } from './generated/graphql';

type SearchParams = Record<string, string | string[] | undefined>;

export const SUGGESTION_MONITORING_QUERY = /* GraphQL */ `
  query SuggestionMonitoring($from: LocalDate, $to: LocalDate) {
    suggestionMonitoring(from: $from, to: $to) {
      overall { ...AgreementPeriodFields }
      months { ...AgreementPeriodFields }
    }
  }
  fragment AgreementPeriodFields on AgreementPeriod {
    period
    revised
    compared
    agreed
    agreementRate
    abstained
    confusion
  }
`;

export type SuggestionMonitoring = SuggestionMonitoringQuery['suggestionMonitoring'];
export type AgreementPeriod = SuggestionMonitoring['overall'];

/** What the filter form shows: exactly what the address said, so a rejected value can be corrected in place. */
export interface MonitoringFormValues {
  from: string;
  to: string;
  month: string;
}

export interface ParsedMonitoringForm {
  values: MonitoringFormValues;
  /** Null when a value was refused; `problems` says which and why. */
  input: { from: string | null; to: string | null } | null;
  month: string | null;
  problems: string[];
}

const single = (value: string | string[] | undefined): string => (Array.isArray(value) ? (value[0] ?? '') : (value ?? '')).trim();

/** A calendar date YYYY-MM-DD that exists (2026-02-30 does not). */
export function isCalendarDate(value: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

export const isMonth = (value: string): boolean => /^\d{4}-(0[1-9]|1[0-2])$/.test(value);

export function parseMonitoringForm(params: SearchParams): ParsedMonitoringForm {
  const values: MonitoringFormValues = { from: single(params.from), to: single(params.to), month: single(params.month) };
  const problems: string[] = [];
  for (const [field, label] of [['from', 'From'], ['to', 'To']] as const) {
    const value = values[field];
    if (value && !isCalendarDate(value)) problems.push(`${label}: "${value}" is not a date; write it as YYYY-MM-DD, e.g. 2026-01-31`);
  }
  if (problems.length === 0 && values.from && values.to && values.from > values.to) {
    problems.push(`The range ends (${values.to}) before it starts (${values.from})`);
  }
  if (values.month && !isMonth(values.month)) problems.push(`Month: "${values.month}" is not a month; write it as YYYY-MM, e.g. 2026-01`);
  return {
    values,
    input: problems.length === 0 ? { from: values.from || null, to: values.to || null } : null,
    month: values.month || null,
    problems,
  };
}

export async function getSuggestionMonitoring(input: { from: string | null; to: string | null }, { returnTo }: { returnTo: string }): Promise<ApiOutcome<SuggestionMonitoring>> {
  const variables: SuggestionMonitoringQueryVariables = { from: input.from, to: input.to };
  const outcome = await requestGraphql<SuggestionMonitoringQuery>({ operationName: 'SuggestionMonitoring', query: SUGGESTION_MONITORING_QUERY, variables, returnTo });
  return outcome.ok ? { ok: true, data: outcome.data.suggestionMonitoring } : outcome;
}

/** The agreement rate as the page writes it: a percentage to one decimal, or a dash when nothing was compared. */
export const formatAgreementRate = (rate: number | null): string => (rate === null ? '–' : `${(rate * 100).toFixed(1)} %`);
