// Glue between the cohort's aggregates and the disclosure-control and survival modules (statistics/): turns
// counts into published CountTables (primary and complementary suppression, CSV), values into withheld-or-shown
// summaries, and eye times into Kaplan-Meier curves that are withheld for strata under k and coarsened where
// fewer than k remain at risk.
import { coarsenSurvivalCurve, summarizeValues, suppressTable } from '../../statistics/disclosure.js';
import { kaplanMeier, logRankTest, type SurvivalObservation } from '../../statistics/survival.js';
import type { CountTable, GroupSummary, LogRankTest, SurvivalCurve } from './cohort.type.js';

const csvField = (value: string | number | null) => {
  if (value === null) return 'suppressed';
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

export function toCsv(table: Omit<CountTable, 'csv'>): string {
  const lines = [[`${table.rowTitle} \\ ${table.columnTitle}`, ...table.columns, 'total'].map(csvField).join(',')];
  table.rows.forEach((row, index) => lines.push([row, ...table.cells[index]!, table.rowTotals[index] ?? null].map(csvField).join(',')));
  lines.push(['total', ...table.columnTotals, table.total].map(csvField).join(','));
  return `${lines.join('\n')}\n`;
}

/**
 * A count table of people under disclosure control. `peopleColumns`: when only some columns count people (the
 * others count events such as treatments given), only those are suppressed by size, and an event cell is hidden
 * wherever its row's people are.
 */
export function buildCountTable({ name, rowTitle, columnTitle, rows, columns, counts, k, peopleColumns }: {
  name: string;
  rowTitle: string;
  columnTitle: string;
  rows: string[];
  columns: string[];
  counts: number[][];
  k: number;
  peopleColumns?: number[];
}): CountTable {
  let published: { cells: (number | null)[][]; rowTotals: (number | null)[]; columnTotals: (number | null)[]; total: number | null };
  if (rows.length === 0) {
    published = { cells: [], rowTotals: [], columnTotals: columns.map(() => 0), total: 0 };
  } else if (peopleColumns) {
    // Each people column is its own one-way table (patients treated by type); event columns follow their row.
    const cells = counts.map((row) => row.map(() => null as number | null));
    const columnTotals: (number | null)[] = columns.map(() => null);
    for (const column of peopleColumns) {
      const people = suppressTable(counts.map((row) => [row[column]!]), k);
      people.cells.forEach((cell, index) => {
        cells[index]![column] = cell[0] ?? null;
      });
      columnTotals[column] = people.grandTotal;
    }
    counts.forEach((row, index) => {
      const shown = peopleColumns.every((column) => cells[index]![column] !== null);
      row.forEach((value, column) => {
        if (!peopleColumns.includes(column)) cells[index]![column] = shown ? value : null;
      });
    });
    for (let column = 0; column < columns.length; column += 1) {
      if (!peopleColumns.includes(column)) columnTotals[column] = cells.every((row) => row[column] !== null) ? counts.reduce((sum, row) => sum + row[column]!, 0) : null;
    }
    published = { cells, rowTotals: rows.map(() => null), columnTotals, total: null };
  } else {
    const table = suppressTable(counts, k);
    published = { cells: table.cells, rowTotals: table.rowTotals, columnTotals: table.columnTotals, total: table.grandTotal };
  }
  const withoutCsv = {
    name,
    rowTitle,
    columnTitle,
    rows,
    columns,
    ...published,
    suppressedCells: published.cells.flat().filter((cell) => cell === null).length,
  };
  return { ...withoutCsv, csv: toCsv(withoutCsv) };
}

/** Median and quartiles of one value per patient, withheld under k patients. */
export function summariseValues(group: string, values: number[], k: number, step = 0.1): GroupSummary {
  const released = summarizeValues({ values, step, k });
  if (released.withheld) return { group, n: null, median: null, lowerQuartile: null, upperQuartile: null, withheld: true };
  return { group, n: values.length, ...released.value, withheld: false };
}

const YEARLY_MARKS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

export function buildSurvivalCurve(stratum: string, observations: SurvivalObservation[], k: number): SurvivalCurve {
  const withheld: SurvivalCurve = { stratum, withheld: true, eyes: null, events: null, steps: [], censorTimes: [], numbersAtRisk: [], truncatedAt: null, medianYears: null };
  if (observations.length < k) return withheld;
  const lastTime = observations.reduce((latest, observation) => Math.max(latest, observation.time), 0);
  const estimate = kaplanMeier(observations, { marks: YEARLY_MARKS.filter((mark) => mark <= lastTime) });
  const released = coarsenSurvivalCurve(
    {
      stratum,
      patientCount: observations.length,
      steps: estimate.steps.map((step) => ({ time: step.time, atRisk: step.atRisk, events: step.events, censored: step.censored, survival: step.survival, lower: step.lower, upper: step.upper })),
      riskTable: estimate.atMarks.map((mark) => ({ time: mark.time, atRisk: mark.atRisk })),
    },
    { k },
  );
  if (!released.curve) return withheld;
  const curve = released.curve;
  const lastShown = curve.steps.at(-1)?.time ?? 0;
  const greenwood = new Map(estimate.steps.map((step) => [step.time, step.standardError]));
  return {
    stratum,
    withheld: false,
    eyes: observations.length,
    events: curve.steps.reduce((sum, step) => sum + step.events, 0),
    steps: curve.steps.map((step) => ({ time: step.time, survival: step.survival, lower: step.lower, upper: step.upper, standardError: greenwood.get(step.time) ?? null })),
    // Censor marks at the published step times only (exact censoring times of few eyes would single them out).
    censorTimes: curve.steps.filter((step) => step.censored > 0).map((step) => step.time),
    numbersAtRisk: curve.riskTable.map((entry) => ({ time: entry.time, atRisk: entry.atRisk === null ? 'hidden' : String(entry.atRisk) })),
    truncatedAt: curve.truncated ? lastShown : null,
    medianYears: estimate.median !== null && estimate.median <= lastShown ? estimate.median : null,
  };
}

export function compareStrata(strata: string[], groups: SurvivalObservation[][]): LogRankTest | null {
  const result = logRankTest(groups);
  if (result.statistic === null || result.pValue === null) return null;
  return { chiSquare: result.statistic, degreesOfFreedom: result.degreesOfFreedom, pValue: result.pValue, strata };
}
