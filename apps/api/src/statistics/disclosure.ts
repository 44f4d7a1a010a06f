/**
 * Statistical disclosure control for the aggregates researchers see of a cohort they filter (issue 11 item 5).
 * Pure functions: the service computes the statistics, passes them through here, and maps a refused cohort to
 * its error code. What this protects against and what it does not: ARCHITECTURE.md, "Disclosure control".
 *
 * One parameter, the threshold k (default 5, valid 2-100; some agencies use 10 or 11). Everything counts
 * distinct PATIENTS: a table of eyes or images must be reduced to one row per patient (e.g. worst eye) first,
 * or its cells are not the number of people they seem to be.
 *
 * Rules, in the order a request meets them:
 * 1. Cohort size (`checkCohortSize`): fewer than k patients, or none, is refused (COHORT_TOO_SMALL).
 * 2. Overlap (`checkOverlap`): a cohort whose symmetric difference with one of the same researcher's recent
 *    cohorts has 1 to k-1 patients is refused (COHORT_OVERLAP); the same cohort again (difference 0) is allowed.
 *    Remembered cohorts are sorted 64-bit keyed hashes (HMAC-SHA256 with a server secret), never patient ids.
 * 3. Tables (`suppressTable`): primary suppression of every entry with 1 to k-1 patients (cells, row and
 *    column totals, the grand total alike), then complementary suppression until no suppressed entry can be
 *    recovered from what is shown (see below).
 * 4. Single numbers (`releaseCount`, `releaseStatistic`, `summarizeValues`): withheld over fewer than k
 *    patients (a count also when fewer than k are OUTSIDE it), values rounded to a stated step.
 * 5. Kaplan-Meier curves (`coarsenSurvivalCurve(s)`): see the rule above `coarsenSurvivalCurve`.
 *
 * Zeros are shown and are never used as complementary cells. A zero says that nobody in the cohort has that
 * combination; it names no one (the attribute disclosure it can cause, everyone in a row sharing one grade, is
 * not something suppressing zeros would fix: the non-zero cell says the same). As a complementary cell a zero is
 * worthless when it is structural (an impossible combination the researcher knows is 0), so protection relies
 * on non-zero cells only: then every suppressed entry can move by +1 AND -1, whatever zeros the reader assumes.
 * A common choice; an agency that counts "nobody" as disclosive would have to suppress zeros as primary cells,
 * which this module does not do.
 *
 * Table totals are shown exactly whenever possible: primary-suppressed if themselves 1 to k-1, otherwise used
 * as complementary cells only when no protecting set of interior cells exists (sparse tables). The grand total is
 * the cohort size, which the researcher already has, so it is never complementary.
 *
 * Why the complementary cells protect: put the totals beside the cells as an (R+1) x (C+1) table. Every row and
 * column of it is one equation "parts sum to the total". A suppressed entry is undetermined exactly when it lies
 * on a cycle of suppressed entries (alternating along rows and columns): adding +1/-1 around the cycle keeps
 * every equation true, and since all entries on it are >= 1 it stays feasible both ways, so the reader cannot
 * pin the value down, nor even tell whether it is above or below the truth. Conversely an entry on no cycle
 * (a bridge) is a linear combination of shown numbers. "At least two suppressed per row and column" is
 * necessary but not sufficient (two suppressed rectangles joined by one cell: that cell is a bridge). The
 * algorithm is the classic shortest-path heuristic (optimal suppression is NP-hard): for each primary entry in
 * row-major order, the cheapest path of non-zero entries from its row to its column closes a cycle, cost
 * ordered by (totals newly suppressed, sum of newly suppressed counts, their number), so the smallest non-zero
 * counts go first; then complementary entries are un-suppressed again, largest first, wherever every
 * suppressed entry still lies on a cycle. Deterministic: ties are broken by index order (rows, then columns),
 * so a table always gets the same pattern.
 * disclosure.test.ts checks the result with an independent brute-force solver over non-negative integers.
 *
 * Suppressed entries are published as null, all alike: telling primary from complementary would tell the
 * reader which ones are small. `suppressions` (with reasons) is for the audit log, not for the researcher.
 */
import { KeyObject, createHmac, createSecretKey } from 'node:crypto';

export const DEFAULT_THRESHOLD = 5;
export const MINIMUM_THRESHOLD = 2;
export const MAXIMUM_THRESHOLD = 100;

/** k comes from config; a bad one is a programming error, not user input. */
export function assertThreshold(k: number): void {
  if (!Number.isInteger(k) || k < MINIMUM_THRESHOLD || k > MAXIMUM_THRESHOLD) {
    throw new RangeError(`the disclosure threshold k must be an integer from ${MINIMUM_THRESHOLD} to ${MAXIMUM_THRESHOLD}, got ${k}`);
  }
}

function assertCount(value: number, label: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${label} must be a non-negative integer, got ${value}`);
}

export type DisclosureCode = 'COHORT_TOO_SMALL' | 'COHORT_OVERLAP';

/**
 * A refusal carries no counts: "3 patients" or "differs by 1" would itself be the small number being protected.
 * The resolver maps `code` to its ErrorCode and shows `message` as is.
 */
export type CohortRefusal = { allowed: false; code: DisclosureCode; message: string };
export type CohortDecision = { allowed: true } | CohortRefusal;

export function checkCohortSize(patientCount: number, k: number = DEFAULT_THRESHOLD): CohortDecision {
  assertThreshold(k);
  assertCount(patientCount, 'patientCount');
  if (patientCount >= k) return { allowed: true };
  // Saying "none" apart from "fewer than k" is consistent with zero cells being shown (module header).
  const message = patientCount === 0
    ? 'No patients match these filters.'
    : `Fewer than ${k} patients match these filters; statistics are only shown for at least ${k}. Widen the filters.`;
  return { allowed: false, code: 'COHORT_TOO_SMALL', message };
}

/**
 * A cohort as remembered for overlap control: the first 64 bits of HMAC-SHA256(secret, patient id) per
 * patient, sorted ascending, duplicates removed. Without the secret the keys say nothing (a plain hash of an
 * id could be reversed by hashing every id in the database); with 64 bits, two of 100k patients collide with
 * probability about 3e-10, and a collision would only make two cohorts look one patient closer.
 */
export interface CohortFingerprint {
  readonly keys: BigUint64Array;
}

const MINIMUM_SECRET_BYTES = 32;

function toSecretKey(secret: string | Buffer | KeyObject): KeyObject {
  const key = secret instanceof KeyObject ? secret : createSecretKey(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
  if ((key.symmetricKeySize ?? 0) < MINIMUM_SECRET_BYTES) throw new RangeError(`the cohort fingerprint secret must have at least ${MINIMUM_SECRET_BYTES} bytes`);
  return key;
}

/** One HMAC per patient: 2-5 microseconds each, 0.2-0.5 s for 100k on a 2-core development machine. */
export function fingerprintCohort(patientIds: readonly string[], secret: string | Buffer | KeyObject): CohortFingerprint {
  const key = toSecretKey(secret);
  const keys = new BigUint64Array(patientIds.length);
  patientIds.forEach((id, i) => { keys[i] = createHmac('sha256', key).update(id, 'utf8').digest().readBigUInt64BE(0); });
  keys.sort();
  let unique = 0;
  for (let i = 0; i < keys.length; i += 1) if (i === 0 || keys[i] !== keys[unique - 1]) keys[unique++] = keys[i]!;
  return { keys: keys.slice(0, unique) };
}

/** Big-endian bytes (8 per patient) for a bytea column or a cache; platform-independent. */
export function fingerprintToBytes(fingerprint: CohortFingerprint): Buffer {
  const bytes = Buffer.alloc(fingerprint.keys.length * 8);
  fingerprint.keys.forEach((key, index) => bytes.writeBigUInt64BE(key, index * 8));
  return bytes;
}

export function fingerprintFromBytes(bytes: Uint8Array): CohortFingerprint {
  if (bytes.length % 8 !== 0) throw new RangeError('a cohort fingerprint has 8 bytes per patient');
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const keys = new BigUint64Array(bytes.length / 8);
  for (let i = 0; i < keys.length; i += 1) {
    keys[i] = view.readBigUInt64BE(i * 8);
    if (i > 0 && keys[i]! <= keys[i - 1]!) throw new RangeError('a cohort fingerprint must be sorted and without duplicates');
  }
  return { keys };
}

/**
 * |a \ b| + |b \ a| by one merge over the two sorted arrays, O(|a| + |b|); stops counting at `stopAt` (the
 * caller only needs to know whether it is below k).
 */
export function countSymmetricDifference(a: CohortFingerprint, b: CohortFingerprint, stopAt = Number.POSITIVE_INFINITY): number {
  const left = a.keys;
  const right = b.keys;
  let i = 0;
  let j = 0;
  let difference = 0;
  while (i < left.length && j < right.length && difference < stopAt) {
    const x = left[i]!;
    const y = right[j]!;
    if (x === y) {
      i += 1;
      j += 1;
    } else {
      difference += 1;
      if (x < y) i += 1;
      else j += 1;
    }
  }
  return Math.min(stopAt, difference + (left.length - i) + (right.length - j));
}

/**
 * Refuses a cohort that differs from one of `previous` (this researcher's recent, allowed cohorts) by 1 to k-1
 * patients: the difference between the two answers would describe those few patients. Identical cohorts are
 * allowed (the same answer again). O(total size of `previous`); sizes that differ by k or more skip the merge.
 */
export function checkOverlap(previous: readonly CohortFingerprint[], current: CohortFingerprint, k: number = DEFAULT_THRESHOLD): CohortDecision {
  assertThreshold(k);
  for (const earlier of previous) {
    if (Math.abs(earlier.keys.length - current.keys.length) >= k) continue;
    const difference = countSymmetricDifference(earlier, current, k);
    if (difference > 0 && difference < k) {
      return {
        allowed: false,
        code: 'COHORT_OVERLAP',
        message: `This cohort differs from one of your recent cohorts by fewer than ${k} patients, so comparing the two would describe those few. Change the filters so that at least ${k} patients differ, or repeat the earlier cohort.`,
      };
    }
  }
  return { allowed: true };
}

export interface ScreenCohortOptions {
  patientIds: readonly string[];
  /** The researcher's recent allowed cohorts; how many and for how long is the caller's retention policy. */
  recent: readonly CohortFingerprint[];
  secret: string | Buffer | KeyObject;
  k?: number;
}

/** Rules 1 and 2 in order. On success, `fingerprint` is what the caller adds to the researcher's recent cohorts. */
export function screenCohort({ patientIds, recent, secret, k = DEFAULT_THRESHOLD }: ScreenCohortOptions): CohortRefusal | { allowed: true; fingerprint: CohortFingerprint } {
  const size = checkCohortSize(new Set(patientIds).size, k);
  if (!size.allowed) return size;
  const fingerprint = fingerprintCohort(patientIds, secret);
  const overlap = checkOverlap(recent, fingerprint, k);
  if (!overlap.allowed) return overlap;
  return { allowed: true, fingerprint };
}

/** A row or column index, or 'total' for the margin. */
export type TableIndex = number | 'total';

export interface Suppression {
  row: TableIndex;
  column: TableIndex;
  reason: 'primary' | 'complementary';
}

export interface PublishedTable {
  /** rows x columns; null = suppressed. */
  cells: (number | null)[][];
  rowTotals: (number | null)[];
  columnTotals: (number | null)[];
  grandTotal: number | null;
  /** Audit log only (see the module header): which entries were hidden and why. */
  suppressions: Suppression[];
}

type EntryStatus = 'shown' | 'primary' | 'complementary';

/**
 * The table with its totals as an (R+1) x (C+1) matrix: index R is the total row, C the total column. In the
 * suppression graph, vertex r (0..R) is a row, vertex R+1+c (c in 0..C) a column, and entry (r, c) an edge.
 */
interface ExtendedTable {
  values: number[][];
  status: EntryStatus[][];
  rows: number;
  columns: number;
}

function extendWithTotals(cells: readonly (readonly number[])[]): number[][] {
  const columns = cells[0]?.length ?? 0;
  if (cells.length === 0 || columns === 0) throw new RangeError('a table needs at least one row and one column');
  const values = cells.map((row, r) => {
    if (row.length !== columns) throw new RangeError(`row ${r} has ${row.length} cells, expected ${columns}`);
    row.forEach((count, c) => assertCount(count, `cell (${r}, ${c})`));
    return [...row, row.reduce((sum, count) => sum + count, 0)];
  });
  values.push(Array.from({ length: columns + 1 }, (_, c) => values.reduce((sum, row) => sum + row[c]!, 0)));
  return values;
}

const isTotal = (table: ExtendedTable, r: number, c: number) => r === table.rows - 1 || c === table.columns - 1;
const isGrandTotal = (table: ExtendedTable, r: number, c: number) => r === table.rows - 1 && c === table.columns - 1;

/** Zeros never; the grand total only when it is itself primary (it is the cohort size, known anyway). */
function canSuppress(table: ExtendedTable, r: number, c: number): boolean {
  if (table.values[r]![c]! === 0) return false;
  return !isGrandTotal(table, r, c) || table.status[r]![c] !== 'shown';
}

type Cost = [totals: number, counts: number, entries: number];

function lessThan(a: Cost, b: Cost): boolean {
  for (let i = 0; i < 3; i += 1) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/**
 * Suppresses the cheapest set of shown entries that puts entry (r, c) on a cycle of suppressed entries
 * (Dijkstra from its row vertex to its column vertex without using the entry itself; cost 0 through entries
 * already suppressed). Dense O(V^2) Dijkstra: V = R + C + 2 is small, and strict improvement only keeps ties
 * on the lowest-index vertex found first, which makes the result deterministic.
 */
function protectEntry(table: ExtendedTable, r: number, c: number): void {
  const vertexCount = table.rows + table.columns;
  const source = r;
  const target = table.rows + c;
  const distance: (Cost | null)[] = new Array(vertexCount).fill(null);
  const via: ([number, number] | null)[] = new Array(vertexCount).fill(null);
  const done = new Array<boolean>(vertexCount).fill(false);
  distance[source] = [0, 0, 0];
  for (;;) {
    let u = -1;
    for (let v = 0; v < vertexCount; v += 1) if (!done[v] && distance[v] && (u < 0 || lessThan(distance[v]!, distance[u]!))) u = v;
    if (u < 0 || u === target) break;
    done[u] = true;
    const neighbours: [number, number, number][] = u < table.rows
      ? Array.from({ length: table.columns }, (_, column) => [u, column, table.rows + column])
      : Array.from({ length: table.rows }, (_, row) => [row, u - table.rows, row]);
    for (const [er, ec, v] of neighbours) {
      if ((er === r && ec === c) || done[v] || !canSuppress(table, er, ec)) continue;
      const step: Cost = table.status[er]![ec] === 'shown' ? [isTotal(table, er, ec) ? 1 : 0, table.values[er]![ec]!, 1] : [0, 0, 0];
      const through: Cost = [distance[u]![0] + step[0], distance[u]![1] + step[1], distance[u]![2] + step[2]];
      if (!distance[v] || lessThan(through, distance[v]!)) {
        distance[v] = through;
        via[v] = [er, ec];
      }
    }
  }
  // Unreachable for tables of non-negative counts: the entry's row and column totals, one more non-zero row or
  // column, or the (then primary) grand total always close a cycle. Kept as an invariant, never as a silent pass.
  if (!distance[target]) throw new Error(`internal: no complementary suppression closes a cycle through (${r}, ${c})`);
  for (let v = target; v !== source;) {
    const [er, ec] = via[v]!;
    if (table.status[er]![ec] === 'shown') table.status[er]![ec] = 'complementary';
    v = v === table.rows + ec ? er : table.rows + ec;
  }
}

/** True when some suppressed entry is a bridge of the suppressed graph, i.e. can be solved for (Tarjan). */
function hasRecoverableEntry(table: ExtendedTable): boolean {
  const vertexCount = table.rows + table.columns;
  const adjacency: [number, number][][] = Array.from({ length: vertexCount }, () => []);
  let edgeCount = 0;
  table.status.forEach((row, r) => row.forEach((status, c) => {
    if (status === 'shown') return;
    adjacency[r]!.push([table.rows + c, edgeCount]);
    adjacency[table.rows + c]!.push([r, edgeCount]);
    edgeCount += 1;
  }));
  const discovered = new Array<number>(vertexCount).fill(-1);
  const low = new Array<number>(vertexCount).fill(0);
  let time = 0;
  const visit = (u: number, parentEdge: number): boolean => {
    discovered[u] = low[u] = time++;
    for (const [v, edge] of adjacency[u]!) {
      if (edge === parentEdge) continue;
      if (discovered[v] === -1) {
        if (visit(v, edge)) return true;
        low[u] = Math.min(low[u]!, low[v]!);
        if (low[v]! > discovered[u]!) return true;
      } else {
        low[u] = Math.min(low[u]!, discovered[v]!);
      }
    }
    return false;
  };
  for (let v = 0; v < vertexCount; v += 1) if (discovered[v] === -1 && visit(v, -1)) return true;
  return false;
}

/** Un-suppresses complementary entries, most informative first (totals, then larger counts), while still safe. */
function removeRedundantComplements(table: ExtendedTable): void {
  const candidates: [number, number][] = [];
  table.status.forEach((row, r) => row.forEach((status, c) => { if (status === 'complementary') candidates.push([r, c]); }));
  candidates.sort(([ar, ac], [br, bc]) =>
    Number(isTotal(table, br, bc)) - Number(isTotal(table, ar, ac)) || table.values[br]![bc]! - table.values[ar]![ac]! || ar - br || ac - bc);
  for (const [r, c] of candidates) {
    table.status[r]![c] = 'shown';
    if (hasRecoverableEntry(table)) table.status[r]![c] = 'complementary';
  }
}

/**
 * Suppresses a rows x columns table of patient counts and its row, column and grand totals (module header).
 * Returns what may be shown; `suppressions` is for the audit log only.
 */
export function suppressTable(cells: readonly (readonly number[])[], k: number = DEFAULT_THRESHOLD): PublishedTable {
  assertThreshold(k);
  const values = extendWithTotals(cells);
  const table: ExtendedTable = {
    values,
    status: values.map((row) => row.map((count): EntryStatus => (count >= 1 && count < k ? 'primary' : 'shown'))),
    rows: values.length,
    columns: values[0]!.length,
  };
  table.status.forEach((row, r) => row.forEach((status, c) => { if (status === 'primary') protectEntry(table, r, c); }));
  removeRedundantComplements(table);

  const shown = (r: number, c: number) => (table.status[r]![c] === 'shown' ? table.values[r]![c]! : null);
  const lastRow = table.rows - 1;
  const lastColumn = table.columns - 1;
  const index = (i: number, last: number): TableIndex => (i === last ? 'total' : i);
  const suppressions: Suppression[] = [];
  table.status.forEach((row, r) => row.forEach((status, c) => {
    if (status !== 'shown') suppressions.push({ row: index(r, lastRow), column: index(c, lastColumn), reason: status });
  }));
  return {
    cells: cells.map((row, r) => row.map((_, c) => shown(r, c))),
    rowTotals: cells.map((_, r) => shown(r, lastColumn)),
    columnTotals: cells[0]!.map((_, c) => shown(lastRow, c)),
    grandTotal: shown(lastRow, lastColumn),
    suppressions,
  };
}

export interface PublishedOneWayTable {
  cells: (number | null)[];
  total: number | null;
  suppressions: { index: TableIndex; reason: 'primary' | 'complementary' }[];
}

/**
 * A single row of counts and its total (patients per grade, say). The same rule as `suppressTable`: a cell of
 * 1 to k-1 takes at least one more (the smallest other non-zero cell) with it, since the total would give it
 * away; a total of 1 to k-1 is suppressed too.
 */
export function suppressOneWayTable(counts: readonly number[], k: number = DEFAULT_THRESHOLD): PublishedOneWayTable {
  // As a 1 x C table its column totals repeat the cells; only row 0 and its total are published.
  const table = suppressTable([counts], k);
  return {
    cells: table.cells[0]!,
    total: table.grandTotal,
    suppressions: table.suppressions.filter((entry) => entry.row === 0).map((entry) => ({ index: entry.column, reason: entry.reason })),
  };
}

export type WithheldCode = 'FEWER_THAN_K_PATIENTS' | 'FEWER_THAN_K_EVENTS';

/**
 * Why a number was withheld. Deliberately one code for "too few in it", "too few outside it" and "withheld to
 * protect another group": telling them apart would say on which side the small number lies.
 */
export interface Withheld {
  code: WithheldCode;
  message: string;
}

export type Released<T> = { value: T; withheld: null } | { value: null; withheld: Withheld };

const release = <T>(value: T): Released<T> => ({ value, withheld: null });

function withheldBecause(code: WithheldCode, k: number): Withheld {
  const message = code === 'FEWER_THAN_K_EVENTS' ? `Withheld: fewer than ${k} events.` : `Withheld: it would describe fewer than ${k} patients.`;
  return { code, message };
}

const withhold = (code: WithheldCode, k: number): { value: null; withheld: Withheld } => ({ value: null, withheld: withheldBecause(code, k) });

/**
 * Rounds to a multiple of `step` (0.1, 1, 5...). The decimals of the step are kept, so 0.1 * 3 prints as 0.3.
 * Rounding is what stops differencing of means and rates: if two cohorts differ by d >= k patients, their
 * means rounded to `step` give the d patients' sum only to within about n * step.
 */
export function roundToStep(value: number, step: number): number {
  if (!(step > 0) || !Number.isFinite(step)) throw new RangeError(`step must be a positive number, got ${step}`);
  const digits = Math.min(20, Math.max((String(step).split('.')[1] ?? '').length, Math.ceil(-Math.log10(step))));
  return Number((Math.round(value / step) * step).toFixed(Math.max(0, digits)));
}

export interface ReleaseCountOptions {
  /** Patients with the property (treated, say). */
  count: number;
  /** The cohort it is a part of; already passed `checkCohortSize`. */
  cohortSize: number;
  k?: number;
}

/**
 * A count that stands alone beside the cohort size ("patients treated: 12 of 40"). Withheld when 1 to k-1
 * patients are in it or outside it: "38 of 40 treated" names the 2 untreated as surely as "2 treated" would.
 * Counts that partition the cohort into several groups are a table: use `suppressOneWayTable`.
 */
export function releaseCount({ count, cohortSize, k = DEFAULT_THRESHOLD }: ReleaseCountOptions): Released<number> {
  assertThreshold(k);
  assertCount(count, 'count');
  assertCount(cohortSize, 'cohortSize');
  if (count > cohortSize) throw new RangeError(`count ${count} exceeds the cohort size ${cohortSize}`);
  const small = (n: number) => n >= 1 && n < k;
  return small(count) || small(cohortSize - count) ? withhold('FEWER_THAN_K_PATIENTS', k) : release(count);
}

export interface ReleaseStatisticOptions {
  /** A mean, rate or proportion computed over `patientCount` distinct patients. */
  value: number;
  patientCount: number;
  /** The precision it is shown to, e.g. 0.1 injections per patient-year. */
  step: number;
  k?: number;
}

/** Withheld over fewer than k patients; otherwise rounded to `step`. */
export function releaseStatistic({ value, patientCount, step, k = DEFAULT_THRESHOLD }: ReleaseStatisticOptions): Released<number> {
  assertThreshold(k);
  assertCount(patientCount, 'patientCount');
  if (patientCount < k) return withhold('FEWER_THAN_K_PATIENTS', k);
  if (!Number.isFinite(value)) throw new RangeError(`the statistic must be a finite number, got ${value}`);
  return release(roundToStep(value, step));
}

export interface DistributionSummary {
  median: number;
  lowerQuartile: number;
  upperQuartile: number;
}

export interface SummarizeValuesOptions {
  /** One value per patient (e.g. each patient's latest HbA1c), so that "k values" means "k patients". */
  values: readonly number[];
  step: number;
  k?: number;
}

/** Linear interpolation between order statistics (Hyndman & Fan type 7, R's and NumPy's default). */
function quantile(sorted: readonly number[], p: number): number {
  const position = (sorted.length - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/**
 * Median and quartiles, withheld for fewer than k values, rounded to `step`. Minimum and maximum are never
 * offered: they are one patient's value. Quartiles of few values are still single patients' values (of 5, the
 * 2nd, 3rd and 4th); rounding and k blur whose, not what.
 */
export function summarizeValues({ values, step, k = DEFAULT_THRESHOLD }: SummarizeValuesOptions): Released<DistributionSummary> {
  assertThreshold(k);
  if (values.length < k) return withhold('FEWER_THAN_K_PATIENTS', k);
  if (!values.every(Number.isFinite)) throw new RangeError('values must be finite numbers');
  const sorted = [...values].sort((a, b) => a - b);
  return release({
    median: roundToStep(quantile(sorted, 0.5), step),
    lowerQuartile: roundToStep(quantile(sorted, 0.25), step),
    upperQuartile: roundToStep(quantile(sorted, 0.75), step),
  });
}

/** One step of a Kaplan-Meier estimate, as a survival module produces it (times in any one unit, e.g. days). */
export interface SurvivalStep {
  time: number;
  /** At risk just before `time`. */
  atRisk: number;
  events: number;
  /** Censored at `time` (or, if the input lists event times only, from `time` until the next step). */
  censored: number;
  /** Estimate just after `time`, and its confidence limits. */
  survival: number;
  lower?: number | null;
  upper?: number | null;
}

export interface SurvivalCurveInput {
  stratum: string;
  patientCount: number;
  steps: readonly SurvivalStep[];
  /** The numbers-at-risk table printed under the plot. */
  riskTable?: readonly { time: number; atRisk: number }[];
}

/**
 * A published step summarises the interval from the previous published time to `time`: `atRisk` at its start,
 * `events` (>= k) and `censored` within it, `survival` and limits at its end (exact there, rounded).
 */
export interface PublishedSurvivalStep {
  time: number;
  atRisk: number;
  events: number;
  censored: number;
  survival: number;
  lower: number | null;
  upper: number | null;
}

/** A number at risk, or "<k" (e.g. "<5") when 1 to k-1, or null when within k of the previous shown number. */
export type PublishedAtRisk = number | `<${number}` | null;

export interface PublishedSurvivalCurve {
  stratum: string;
  steps: PublishedSurvivalStep[];
  /** Events after the last published step were left out (fewer than k at risk after them). */
  truncated: boolean;
  riskTable: { time: number; atRisk: PublishedAtRisk }[];
}

export type ReleasedSurvivalCurve = { stratum: string; curve: PublishedSurvivalCurve; withheld: null } | { stratum: string; curve: null; withheld: Withheld };

export interface CoarsenSurvivalOptions {
  k?: number;
  /** Survival and limits are rounded to this many decimals (default 3). */
  decimals?: number;
}

function assertSteps(curve: SurvivalCurveInput): void {
  assertCount(curve.patientCount, 'patientCount');
  curve.steps.forEach((step, i) => {
    assertCount(step.atRisk, `steps[${i}].atRisk`);
    assertCount(step.events, `steps[${i}].events`);
    assertCount(step.censored, `steps[${i}].censored`);
    if (step.events + step.censored > step.atRisk) throw new RangeError(`steps[${i}]: more events and censorings than patients at risk`);
    const previous = curve.steps[i - 1];
    if (!previous) return;
    if (!(step.time > previous.time)) throw new RangeError('survival steps must be in increasing time order');
    if (step.atRisk > previous.atRisk - previous.events - previous.censored) throw new RangeError(`steps[${i}]: more at risk than remained after the previous step`);
  });
}

function publishRiskTable(curve: SurvivalCurveInput, k: number): PublishedSurvivalCurve['riskTable'] {
  let lastShown = curve.patientCount;
  return (curve.riskTable ?? []).map(({ time, atRisk }) => {
    assertCount(atRisk, 'riskTable atRisk');
    if (atRisk === 0) return { time, atRisk: 0 };
    if (atRisk < k) return { time, atRisk: `<${k}` as const };
    // Two shown numbers closer than k would give away the few who left in between.
    const gap = lastShown - atRisk;
    if (gap !== 0 && gap < k) return { time, atRisk: null };
    lastShown = atRisk;
    return { time, atRisk };
  });
}

/**
 * Coarsens one stratum's curve (the caller has ensured its size may be shown: `coarsenSurvivalCurves` does
 * that across strata). The rule:
 * 1. A stratum of fewer than k patients is withheld.
 * 2. Truncation: only steps with atRisk - events >= k are used, i.e. at least k at risk and at least k still
 *    at risk after the step. This is a prefix of the steps (atRisk - events never increases); the curve stops
 *    at its last published step and `truncated` says whether events followed.
 * 3. Merging: consecutive steps are merged until they hold at least k events; a published step is shown at
 *    the time of the last merged step, with the survival there. A remainder of 1 to k-1 events at the end is
 *    merged into the last published step. So every drop of the published curve is k or more events, and none
 *    can be attributed to one patient; between published times the curve is drawn flat, later than the true
 *    drops (it is exact at the published times).
 * 4. A stratum with 1 to k-1 events in the usable steps is withheld (a flat curve would be false, any drop
 *    would show fewer than k events); with none, it is shown with no steps.
 * 5. The numbers-at-risk table: 1 to k-1 shown as "<k", 0 as 0, and a number within k of the previous shown
 *    one (or of the stratum size) as null, so that no two shown numbers differ by 1 to k-1.
 * Censorings within a published interval are shown; they follow from consecutive atRisk and events anyway.
 */
export function coarsenSurvivalCurve(curve: SurvivalCurveInput, { k = DEFAULT_THRESHOLD, decimals = 3 }: CoarsenSurvivalOptions = {}): ReleasedSurvivalCurve {
  assertThreshold(k);
  assertSteps(curve);
  const { stratum } = curve;
  if (curve.patientCount < k) return { stratum, curve: null, withheld: withheldBecause('FEWER_THAN_K_PATIENTS', k) };

  const firstUnusable = curve.steps.findIndex((step) => step.atRisk - step.events < k);
  const usable = firstUnusable < 0 ? curve.steps : curve.steps.slice(0, firstUnusable);
  const truncated = curve.steps.slice(usable.length).some((step) => step.events > 0);

  // Blocks of consecutive usable steps, [first, last] inclusive, each closed as soon as it holds k events.
  const blocks: { first: number; last: number; events: number }[] = [];
  let first = 0;
  let events = 0;
  let lastEventStep = -1;
  usable.forEach((step, i) => {
    events += step.events;
    if (step.events > 0) lastEventStep = i;
    if (events >= k) {
      blocks.push({ first, last: i, events });
      first = i + 1;
      events = 0;
    }
  });
  if (events > 0) {
    const previous = blocks.pop();
    if (!previous) return { stratum, curve: null, withheld: withheldBecause('FEWER_THAN_K_EVENTS', k) };
    // Censor-only steps after the last event belong to no published interval.
    blocks.push({ first: previous.first, last: lastEventStep, events: previous.events + events });
  }

  const round = (value: number | null | undefined) => (value === null || value === undefined ? null : Number(value.toFixed(decimals)));
  const steps = blocks.map(({ first: from, last: to, events: blockEvents }): PublishedSurvivalStep => {
    const end = usable[to]!;
    return {
      time: end.time,
      atRisk: usable[from]!.atRisk,
      events: blockEvents,
      censored: usable.slice(from, to + 1).reduce((sum, step) => sum + step.censored, 0),
      survival: round(end.survival)!,
      lower: round(end.lower),
      upper: round(end.upper),
    };
  });
  return { stratum, curve: { stratum, steps, truncated, riskTable: publishRiskTable(curve, k) }, withheld: null };
}

/**
 * Coarsens the curves of strata that partition one cohort. Their sizes form a one-way table whose total (the
 * cohort size) is known, so a stratum of 1 to k-1 patients takes another with it (the smallest), exactly as in
 * `suppressOneWayTable`; both are withheld with the same reason, then each shown stratum is coarsened alone.
 */
export function coarsenSurvivalCurves(curves: readonly SurvivalCurveInput[], options: CoarsenSurvivalOptions = {}): ReleasedSurvivalCurve[] {
  const k = options.k ?? DEFAULT_THRESHOLD;
  if (curves.length === 0) return [];
  const sizes = suppressOneWayTable(curves.map((curve) => curve.patientCount), k);
  return curves.map((curve, i) => (sizes.cells[i] === null
    ? { stratum: curve.stratum, curve: null, withheld: withheldBecause('FEWER_THAN_K_PATIENTS', k) }
    : coarsenSurvivalCurve(curve, options)));
}
