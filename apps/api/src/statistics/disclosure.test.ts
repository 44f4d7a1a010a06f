import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  checkCohortSize,
  checkOverlap,
  coarsenSurvivalCurve,
  coarsenSurvivalCurves,
  countSymmetricDifference,
  fingerprintCohort,
  fingerprintFromBytes,
  fingerprintToBytes,
  releaseCount,
  releaseStatistic,
  roundToStep,
  screenCohort,
  summarizeValues,
  suppressOneWayTable,
  suppressTable,
  type CohortFingerprint,
  type PublishedTable,
  type SurvivalCurveInput,
  type SurvivalStep,
} from './disclosure.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';

/** mulberry32: a small seeded generator, so every random table is the same on every run. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const randomInteger = (random: () => number, low: number, high: number) => low + Math.floor(random() * (high - low + 1));

/** Counts with many zeros and small cells, as a cohort filtered on several attributes has. */
function randomCount(random: () => number): number {
  const u = random();
  if (u < 0.25) return 0;
  if (u < 0.65) return randomInteger(random, 1, 4);
  return randomInteger(random, 5, 14);
}

function randomTable(random: () => number, maxRows: number, maxColumns: number): number[][] {
  const rows = randomInteger(random, 1, maxRows);
  const columns = randomInteger(random, 1, maxColumns);
  return Array.from({ length: rows }, () => Array.from({ length: columns }, () => randomCount(random)));
}

/** The true table with its totals, (R+1) x (C+1), index R / C being the totals. */
function extend(cells: number[][]): number[][] {
  const rows = cells.map((row) => [...row, row.reduce((a, b) => a + b, 0)]);
  rows.push(rows[0]!.map((_, c) => rows.reduce((sum, row) => sum + row[c]!, 0)));
  return rows;
}

/** What the researcher sees, in the same (R+1) x (C+1) layout, null where suppressed. */
function publishedGrid(table: PublishedTable): (number | null)[][] {
  return [...table.cells.map((row, r) => [...row, table.rowTotals[r]!]), [...table.columnTotals, table.grandTotal]];
}

interface FeasibleRange {
  row: number;
  column: number;
  min: number;
  max: number;
}

/**
 * Brute force, independent of the suppression algorithm: every assignment of non-negative integers (at most
 * `cap`) to the suppressed entries that makes every row and column add up to its total, and per suppressed
 * entry the least and greatest value any of them takes. Depth-first with propagation of equations that have
 * one unknown left; exact, only slow for large tables.
 */
function feasibleRanges(grid: (number | null)[][], cap: number): FeasibleRange[] {
  const rows = grid.length - 1;
  const columns = grid[0]!.length - 1;
  const unknowns: [number, number][] = [];
  const unknownAt = grid.map((row, r) => row.map((value, c) => (value === null ? unknowns.push([r, c]) - 1 : -1)));
  // Each equation: sum of coefficient * unknown = constant (parts +1, the total -1).
  const equations: { terms: [number, number][]; constant: number }[] = [];
  const addLine = (parts: [number, number][], whole: [number, number]) => {
    const terms: [number, number][] = [];
    let constant = 0;
    for (const [[r, c], coefficient] of [...parts.map((p) => [p, 1] as const), [whole, -1] as const]) {
      const value = grid[r]![c]!;
      if (value === null) terms.push([unknownAt[r]![c]!, coefficient]);
      else constant -= coefficient * value;
    }
    equations.push({ terms, constant });
  };
  for (let r = 0; r <= rows; r += 1) addLine(Array.from({ length: columns }, (_, c) => [r, c]), [r, columns]);
  for (let c = 0; c <= columns; c += 1) addLine(Array.from({ length: rows }, (_, r) => [r, c]), [rows, c]);

  const value = new Array<number>(unknowns.length).fill(-1);
  const min = new Array<number>(unknowns.length).fill(Number.POSITIVE_INFINITY);
  const max = new Array<number>(unknowns.length).fill(Number.NEGATIVE_INFINITY);
  let solutions = 0;

  const propagate = (trail: number[]): boolean => {
    for (let changed = true; changed;) {
      changed = false;
      for (const { terms, constant } of equations) {
        let residual = constant;
        let open = 0;
        let positive = 0;
        let last: [number, number] | undefined;
        for (const term of terms) {
          if (value[term[0]]! < 0) {
            open += 1;
            if (term[1] > 0) positive += 1;
            last = term;
          } else residual -= term[1] * value[term[0]]!;
        }
        if (open === 0 && residual !== 0) return false;
        if (open === 1) {
          const solved = residual / last![1];
          if (solved < 0 || solved > cap) return false;
          value[last![0]] = solved;
          trail.push(last![0]);
          changed = true;
        } else if ((positive === open && residual < 0) || (positive === 0 && open > 0 && residual > 0)) return false;
      }
    }
    return true;
  };

  const upperBound = (unknown: number): number => {
    let bound = cap;
    for (const { terms, constant } of equations) {
      const own = terms.find(([u]) => u === unknown);
      if (!own || own[1] < 0) continue;
      let residual = constant;
      let onlyParts = true;
      for (const [u, coefficient] of terms) {
        if (value[u]! >= 0) residual -= coefficient * value[u]!;
        else if (coefficient < 0) onlyParts = false;
      }
      if (onlyParts) bound = Math.min(bound, residual);
    }
    return bound;
  };

  const search = (): void => {
    const trail: number[] = [];
    if (propagate(trail)) {
      const next = value.indexOf(-1);
      if (next < 0) {
        solutions += 1;
        value.forEach((v, i) => {
          min[i] = Math.min(min[i]!, v);
          max[i] = Math.max(max[i]!, v);
        });
      } else {
        for (let candidate = 0, bound = upperBound(next); candidate <= bound; candidate += 1) {
          value[next] = candidate;
          search();
        }
        value[next] = -1;
      }
    }
    for (const unknown of trail) value[unknown] = -1;
  };
  search();
  assert.ok(solutions > 0, 'the published table must be consistent with at least one table (the true one)');
  return unknowns.map(([row, column], i) => ({ row, column, min: min[i]!, max: max[i]! }));
}

/** Suppressed entries whose value the published numbers pin down exactly (range of one value). */
function recoverableEntries(truth: number[][], grid: (number | null)[][]): FeasibleRange[] {
  const cap = 3 * truth.at(-1)!.at(-1)! + 3;
  return feasibleRanges(grid, cap).filter((range) => range.min === range.max);
}

/** Rank over GF(p): the constraint matrix of a 2-way table is totally unimodular, so this is its rational rank. */
function rank(matrix: number[][]): number {
  const p = 1_000_003;
  const m = matrix.map((row) => row.map((v) => ((v % p) + p) % p));
  let result = 0;
  const width = m[0]?.length ?? 0;
  for (let column = 0; column < width && result < m.length; column += 1) {
    const pivot = m.findIndex((row, i) => i >= result && row[column] !== 0);
    if (pivot < 0) continue;
    [m[result], m[pivot]] = [m[pivot]!, m[result]!];
    let inverse = 1;
    for (let e = p - 2, b = m[result]![column]!; e > 0; e >>= 1, b = (b * b) % p) if (e & 1) inverse = (inverse * b) % p;
    for (let i = 0; i < m.length; i += 1) {
      if (i === result || m[i]![column] === 0) continue;
      const factor = (m[i]![column]! * inverse) % p;
      m[i] = m[i]!.map((v, j) => (((v - factor * m[result]![j]!) % p) + p) % p);
    }
    result += 1;
  }
  return result;
}

/** Suppressed entries that the row and column equations alone determine (linear algebra, any table size). */
function linearlyDeterminedEntries(grid: (number | null)[][]): [number, number][] {
  const rows = grid.length - 1;
  const columns = grid[0]!.length - 1;
  const unknowns: [number, number][] = [];
  grid.forEach((row, r) => row.forEach((value, c) => { if (value === null) unknowns.push([r, c]); }));
  const coefficient = (line: number, [r, c]: [number, number]) => {
    if (line <= rows) return r === line ? (c === columns ? -1 : 1) : 0;
    const column = line - rows - 1;
    return c === column ? (r === rows ? -1 : 1) : 0;
  };
  const lines = rows + columns + 2;
  const matrixOf = (selected: [number, number][]) => Array.from({ length: lines }, (_, line) => selected.map((entry) => coefficient(line, entry)));
  const full = rank(matrixOf(unknowns));
  return unknowns.filter((entry) => rank(matrixOf(unknowns.filter((other) => other !== entry))) < full);
}

describe('checkCohortSize', () => {
  it('refuses fewer than k patients and an empty cohort with COHORT_TOO_SMALL, without saying how many', () => {
    for (const [count, k] of [[0, 5], [1, 5], [4, 5], [10, 11]] as const) {
      const decision = checkCohortSize(count, k);
      assert.equal(decision.allowed, false, `${count} with k=${k}`);
      if (!decision.allowed) {
        assert.equal(decision.code, 'COHORT_TOO_SMALL');
        assert.ok(!decision.message.includes(String(count)) || count === 0, decision.message);
      }
    }
    assert.match((checkCohortSize(0) as { message: string }).message, /No patients/);
  });

  it('allows k patients or more', () => {
    assert.deepEqual(checkCohortSize(5), { allowed: true });
    assert.deepEqual(checkCohortSize(11, 11), { allowed: true });
  });

  it('rejects a threshold outside 2-100 and a count that is not a non-negative integer', () => {
    for (const k of [1, 101, 2.5, Number.NaN]) assert.throws(() => checkCohortSize(10, k), RangeError);
    for (const count of [-1, 1.5]) assert.throws(() => checkCohortSize(count, 5), RangeError);
  });
});

describe('suppressTable', () => {
  it('hides a small cell with the cheapest rectangle of interior cells and keeps every total', () => {
    const table = suppressTable([[3, 10], [7, 12]], 5);
    assert.deepEqual(table.cells, [[null, null], [null, null]]);
    assert.deepEqual(table.rowTotals, [13, 19]);
    assert.deepEqual(table.columnTotals, [10, 22]);
    assert.equal(table.grandTotal, 32);
    // By hand: x00 = x, x01 = 13 - x, x10 = 10 - x, x11 = 9 + x, so x ranges over 0..10.
    const ranges = feasibleRanges(publishedGrid(table), 100);
    assert.deepEqual(ranges.find((r) => r.row === 0 && r.column === 0), { row: 0, column: 0, min: 0, max: 10 });
    assert.deepEqual(table.suppressions.filter((s) => s.reason === 'primary'), [{ row: 0, column: 0, reason: 'primary' }]);
  });

  it('takes the smallest non-zero counts as complementary cells', () => {
    const table = suppressTable([[2, 9, 6], [8, 30, 7], [20, 40, 50]], 5);
    // (0,0) = 2 needs a partner in row 0 (6 < 9) and in column 0 (8 < 20); (1,2) = 7 closes the rectangle.
    assert.deepEqual(table.cells, [[null, 9, null], [null, 30, null], [20, 40, 50]]);
    assert.deepEqual(table.rowTotals, [17, 45, 110]);
  });

  it('shows zeros and never uses them as complementary cells', () => {
    const cells = [[0, 3, 8], [0, 9, 6], [4, 0, 11]];
    const table = suppressTable(cells, 5);
    for (const [r, c] of [[0, 0], [1, 0], [2, 1]] as const) assert.equal(table.cells[r]![c], 0);
    const truth = extend(cells);
    const at = (index: number | 'total', last: number) => (index === 'total' ? last : index);
    assert.ok(table.suppressions.every((s) => truth[at(s.row, 3)]![at(s.column, 3)]! > 0));
    assert.ok(table.suppressions.some((s) => s.reason === 'complementary'));
    assert.deepEqual(recoverableEntries(truth, publishedGrid(table)), []);
  });

  it('suppresses a row total under k and enough around it', () => {
    const cells = [[1, 2, 0], [6, 7, 9], [5, 8, 10]];
    const table = suppressTable(cells, 5);
    assert.equal(table.rowTotals[0], null);
    assert.equal(table.cells[0]![0], null);
    assert.equal(table.cells[0]![1], null);
    assert.equal(table.grandTotal, 48);
    assert.deepEqual(recoverableEntries(extend(cells), publishedGrid(table)), []);
  });

  it('uses totals as complementary cells only when interior cells cannot close a cycle (a sparse table)', () => {
    // Interior non-zero cells form a path, not a cycle: a protecting cycle must run through totals.
    const cells = [[3, 6, 0], [4, 0, 9]];
    const table = suppressTable(cells, 5);
    assert.ok(table.suppressions.some((s) => s.reason === 'complementary' && (s.row === 'total' || s.column === 'total')));
    assert.equal(table.grandTotal, 22);
    assert.deepEqual(recoverableEntries(extend(cells), publishedGrid(table)), []);
  });

  it('handles a cohort whose grand total is itself under k by suppressing it too', () => {
    const table = suppressTable([[1, 2], [0, 1]], 5);
    assert.equal(table.grandTotal, null);
    assert.deepEqual(recoverableEntries(extend([[1, 2], [0, 1]]), publishedGrid(table)), []);
  });

  it('is deterministic: ties go to the lower row, then the lower column', () => {
    const cells = [[2, 9, 9], [9, 9, 9], [9, 9, 9]];
    const first = suppressTable(cells, 5);
    assert.deepEqual(first, suppressTable(cells.map((row) => [...row]), 5));
    assert.deepEqual(first.cells, [[null, null, 9], [null, null, 9], [9, 9, 9]]);
  });

  it('rejects ragged rows, negative or fractional counts and an empty table', () => {
    for (const cells of [[[1, 2], [3]], [[-1, 2]], [[1.5, 2]], [], [[]]]) assert.throws(() => suppressTable(cells, 5), RangeError);
  });

  it('leaves no suppressed entry recoverable in 1000 random tables up to 4 x 5 (brute force over non-negative integers)', () => {
    const random = createRandom(20_240_611);
    let tested = 0;
    let withSuppression = 0;
    while (tested < 1000) {
      const cells = randomTable(random, 4, 5);
      const k = random() < 0.5 ? 3 : 5;
      const truth = extend(cells);
      if (truth.at(-1)!.at(-1)! < k) continue; // the cohort check refuses these first
      tested += 1;
      const table = suppressTable(cells, k);
      const grid = publishedGrid(table);
      grid.forEach((row, r) => row.forEach((value, c) => {
        const actual = truth[r]![c]!;
        if (value !== null) {
          assert.equal(value, actual, 'shown numbers are exact');
          assert.ok(actual === 0 || actual >= k, `a count of ${actual} is shown with k=${k} in ${JSON.stringify(cells)}`);
        } else assert.ok(actual > 0, 'zeros are never suppressed');
      }));
      assert.notEqual(table.grandTotal, null, 'the grand total (cohort size) is always shown when >= k');
      if (table.suppressions.length === 0) continue;
      withSuppression += 1;
      for (const range of feasibleRanges(grid, 3 * truth.at(-1)!.at(-1)! + 3)) {
        const actual = truth[range.row]![range.column]!;
        // Stronger than "not unique": the reader cannot tell whether the truth is above or below any value shown.
        assert.ok(range.min < actual && actual < range.max, `(${range.row}, ${range.column}) = ${actual} in ${JSON.stringify(cells)} k=${k}: range ${range.min}..${range.max}`);
      }
    }
    assert.ok(withSuppression > 700, `only ${withSuppression} random tables needed suppression`);
  });

  it('leaves no suppressed entry determined by the equations in 200 random tables up to 6 x 10', () => {
    const random = createRandom(7);
    for (let i = 0; i < 200; i += 1) {
      const cells = randomTable(random, 6, 10);
      const k = randomInteger(random, 3, 11);
      const table = suppressTable(cells, k);
      assert.deepEqual(linearlyDeterminedEntries(publishedGrid(table)), [], JSON.stringify(cells));
    }
  });

  it('finishes a 5 x 50 table quickly', () => {
    const random = createRandom(99);
    const cells = Array.from({ length: 50 }, () => Array.from({ length: 5 }, () => randomCount(random)));
    const started = performance.now();
    const table = suppressTable(cells, 5);
    assert.ok(performance.now() - started < 2000);
    assert.ok(table.suppressions.length > 0);
  });
});

describe('the brute-force checker can fail', () => {
  it('finds the hidden cells of random tables published with primary suppression only', () => {
    const random = createRandom(20_240_611);
    let withPrimary = 0;
    let recovered = 0;
    for (let i = 0; i < 200; i += 1) {
      const cells = randomTable(random, 3, 4);
      const truth = extend(cells);
      if (truth.at(-1)!.at(-1)! < 5) continue;
      const grid = truth.map((row) => row.map((value): number | null => (value >= 1 && value < 5 ? null : value)));
      if (!grid.flat().includes(null)) continue;
      withPrimary += 1;
      if (recoverableEntries(truth, grid).length > 0) recovered += 1;
    }
    assert.ok(recovered > withPrimary / 2, `${recovered} of ${withPrimary}`);
  });

  it('finds the cell joining two suppressed rectangles: two per row and column is not enough', () => {
    const cells = [
      [3, 6, 2, 8],
      [6, 7, 9, 9],
      [9, 9, 6, 7],
      [9, 9, 8, 6],
    ];
    // Rows 0-1 x columns 0-1 and rows 2-3 x columns 2-3 are rectangles; (0, 2) joins them. Every row and column
    // has two or more suppressed cells, yet (0, 2) is the difference of shown sums.
    const truth = extend(cells);
    const grid = truth.map((row, r) => row.map((value, c): number | null => ((r < 2 && c < 2) || (r >= 2 && r < 4 && c >= 2 && c < 4) || (r === 0 && c === 2) ? null : value)));
    assert.deepEqual(recoverableEntries(truth, grid).map(({ row, column, min }) => [row, column, min]), [[0, 2, 2]]);
    assert.deepEqual(linearlyDeterminedEntries(grid), [[0, 2]]);
  });
});

describe('suppressOneWayTable', () => {
  it('takes the smallest other non-zero cell with a small one, since the total is shown', () => {
    assert.deepEqual(suppressOneWayTable([20, 8, 6, 3, 0], 5), { cells: [20, 8, null, null, 0], total: 37, suppressions: [{ index: 2, reason: 'complementary' }, { index: 3, reason: 'primary' }] });
  });

  it('needs no partner when two cells are small, and shows a table without small cells unchanged', () => {
    assert.deepEqual(suppressOneWayTable([20, 2, 1, 9], 5).cells, [20, null, null, 9]);
    assert.deepEqual(suppressOneWayTable([20, 0, 9], 5).cells, [20, 0, 9]);
  });

  it('suppresses a total under k with its cells', () => {
    assert.deepEqual(suppressOneWayTable([1, 2], 5), { cells: [null, null], total: null, suppressions: [{ index: 0, reason: 'primary' }, { index: 1, reason: 'primary' }, { index: 'total', reason: 'primary' }] });
  });

  it('leaves nothing recoverable in 300 random one-way tables (brute force)', () => {
    const random = createRandom(3);
    for (let i = 0; i < 300; i += 1) {
      const counts = Array.from({ length: randomInteger(random, 1, 7) }, () => randomCount(random));
      const total = counts.reduce((a, b) => a + b, 0);
      if (total < 5) continue;
      const table = suppressOneWayTable(counts, 5);
      assert.equal(table.total, total);
      const unknown = table.cells.filter((cell) => cell === null).length;
      const hiddenSum = total - table.cells.reduce<number>((sum, cell) => sum + (cell ?? 0), 0);
      // One equation: each hidden cell ranges over 0..hiddenSum when two or more are hidden.
      assert.ok(unknown === 0 || (unknown >= 2 && hiddenSum >= unknown), JSON.stringify(counts));
      const grid = [[...table.cells, table.total], [...table.cells, table.total]];
      assert.deepEqual(recoverableEntries(extend([counts]), grid), [], JSON.stringify(counts));
    }
  });
});

describe('releaseCount, releaseStatistic, summarizeValues', () => {
  it('withholds a count of 1 to k-1 and a count with 1 to k-1 outside it, with one reason for both', () => {
    const cases: [number, number, number | null][] = [[0, 40, 0], [3, 40, null], [5, 40, 5], [35, 40, 35], [36, 40, null], [40, 40, 40]];
    for (const [count, cohortSize, expected] of cases) {
      const released = releaseCount({ count, cohortSize, k: 5 });
      assert.equal(released.value, expected, `${count} of ${cohortSize}`);
      if (expected === null) assert.equal(released.withheld?.code, 'FEWER_THAN_K_PATIENTS');
    }
    assert.throws(() => releaseCount({ count: 41, cohortSize: 40 }), RangeError);
  });

  it('withholds a statistic over fewer than k patients and rounds the rest to the step', () => {
    assert.deepEqual(releaseStatistic({ value: 7.123, patientCount: 4, step: 0.1, k: 5 }).value, null);
    assert.equal(releaseStatistic({ value: 7.123, patientCount: 4, step: 0.1, k: 5 }).withheld?.code, 'FEWER_THAN_K_PATIENTS');
    assert.deepEqual(releaseStatistic({ value: 7.163, patientCount: 5, step: 0.1, k: 5 }), { value: 7.2, withheld: null });
    assert.equal(releaseStatistic({ value: 53.4, patientCount: 12, step: 1 }).value, 53);
    assert.equal(roundToStep(0.1 * 3, 0.1), 0.3);
    assert.equal(roundToStep(7.38, 0.25), 7.5);
    assert.equal(roundToStep(62, 5), 60);
  });

  it('gives median and quartiles of k values or more (type 7), rounded, and withholds fewer', () => {
    assert.equal(summarizeValues({ values: [6.1, 7.2, 8.3, 9.4], step: 0.1, k: 5 }).value, null);
    // Sorted 6.1 6.5 7.2 8.3 9.4: Q1 = 6.5, median = 7.2, Q3 = 8.3.
    assert.deepEqual(summarizeValues({ values: [8.3, 6.1, 9.4, 7.2, 6.5], step: 0.1, k: 5 }).value, { median: 7.2, lowerQuartile: 6.5, upperQuartile: 8.3 });
    // Six values: positions 1.25, 2.5, 3.75 -> 6.5 + 0.25*0.7, (7.2 + 8.3)/2, 8.3 + 0.75*1.1.
    assert.deepEqual(summarizeValues({ values: [6.1, 6.5, 7.2, 8.3, 9.4, 11], step: 0.01, k: 5 }).value, { median: 7.75, lowerQuartile: 6.68, upperQuartile: 9.13 });
  });
});

/** Product-limit steps from (time, event) pairs, one per patient: events and censorings at each distinct time. */
function kaplanMeierSteps(patients: readonly [time: number, event: boolean][]): SurvivalStep[] {
  const times = [...new Set(patients.map(([time]) => time))].sort((a, b) => a - b);
  let atRisk = patients.length;
  let survival = 1;
  return times.map((time) => {
    const events = patients.filter(([t, e]) => t === time && e).length;
    const censored = patients.filter(([t, e]) => t === time && !e).length;
    survival *= 1 - events / atRisk;
    const step = { time, atRisk, events, censored, survival, lower: survival * 0.9, upper: Math.min(1, survival * 1.1) };
    atRisk -= events + censored;
    return step;
  });
}

function curveOf(stratum: string, patients: [number, boolean][], riskTable?: SurvivalCurveInput['riskTable']): SurvivalCurveInput {
  return { stratum, patientCount: patients.length, steps: kaplanMeierSteps(patients), riskTable };
}

describe('coarsenSurvivalCurve', () => {
  // 30 patients; an event on each day 1-12, censorings on days 13-14 (2 each), then events on days 15-26.
  const patients: [number, boolean][] = [
    ...Array.from({ length: 12 }, (_, i): [number, boolean] => [i + 1, true]),
    [13, false], [13, false], [14, false], [14, false],
    ...Array.from({ length: 14 }, (_, i): [number, boolean] => [15 + i, true]),
  ];
  const raw = kaplanMeierSteps(patients);

  it('merges steps until each shows k events, shows exact survival there and stops while k remain at risk', () => {
    const released = coarsenSurvivalCurve(curveOf('R0', patients), { k: 5 });
    assert.equal(released.withheld, null);
    const steps = released.curve!.steps;
    // Usable steps: atRisk - events >= 5, i.e. days 1-12 (30..19 at risk), 13, 14, and 15-23 (14..6 at risk).
    // Blocks of 5 events: days 1-5, 6-10, 11-17 (11, 12, 15, 16, 17), 18-22, and day 23's one event joins the last.
    assert.deepEqual(steps.map((s) => [s.time, s.atRisk, s.events, s.censored]), [[5, 30, 5, 0], [10, 25, 5, 0], [17, 20, 5, 4], [23, 11, 6, 0]]);
    for (const step of steps) {
      const exact = raw.find((r) => r.time === step.time)!;
      assert.equal(step.survival, Number(exact.survival.toFixed(3)));
      assert.ok(step.events >= 5 && step.atRisk >= 5);
    }
    assert.equal(released.curve!.truncated, true);
  });

  it('merges a remainder of fewer than k events into the last step', () => {
    // 25 patients: the same 12 events and 4 censorings, then events on days 15-23. Day 19 has 5 at risk and an
    // event (4 would remain), so days 1-18 are usable; blocks 1-5, 6-10, 11-17, and day 18's event joins the last.
    const released = coarsenSurvivalCurve(curveOf('R0', patients.slice(0, 25)), { k: 5 });
    assert.deepEqual(released.curve!.steps.map((s) => [s.time, s.atRisk, s.events, s.censored]), [[5, 25, 5, 0], [10, 20, 5, 0], [18, 15, 6, 4]]);
    assert.equal(released.curve!.truncated, true);
  });

  it('withholds a stratum under k patients, and one with 1 to k-1 usable events', () => {
    assert.equal(coarsenSurvivalCurve(curveOf('tiny', patients.slice(0, 4)), { k: 5 }).withheld?.code, 'FEWER_THAN_K_PATIENTS');
    const fewEvents: [number, boolean][] = [[1, true], [2, true], ...Array.from({ length: 10 }, (_, i): [number, boolean] => [3 + i, false])];
    assert.equal(coarsenSurvivalCurve(curveOf('few', fewEvents), { k: 5 }).withheld?.code, 'FEWER_THAN_K_EVENTS');
    const none = coarsenSurvivalCurve(curveOf('none', Array.from({ length: 10 }, (_, i): [number, boolean] => [i + 1, false])), { k: 5 });
    assert.deepEqual(none.curve?.steps, []);
  });

  it('shows 1 to k-1 at risk as "<k", and hides a number within k of the previous shown one', () => {
    const released = coarsenSurvivalCurve(curveOf('R0', patients, [{ time: 0, atRisk: 30 }, { time: 2, atRisk: 28 }, { time: 6, atRisk: 25 }, { time: 26, atRisk: 3 }, { time: 30, atRisk: 0 }]), { k: 5 });
    assert.deepEqual(released.curve!.riskTable, [{ time: 0, atRisk: 30 }, { time: 2, atRisk: null }, { time: 6, atRisk: 25 }, { time: 26, atRisk: '<5' }, { time: 30, atRisk: 0 }]);
  });

  it('never publishes a step with fewer than k events or k at risk, on 200 random curves', () => {
    const random = createRandom(5);
    for (let i = 0; i < 200; i += 1) {
      const k = randomInteger(random, 3, 11);
      const cohort = Array.from({ length: randomInteger(random, 1, 80) }, (): [number, boolean] => [randomInteger(random, 1, 60), random() < 0.6]);
      const steps = kaplanMeierSteps(cohort);
      const released = coarsenSurvivalCurve({ stratum: 's', patientCount: cohort.length, steps }, { k });
      if (!released.curve) continue;
      let previousAtRisk = Number.POSITIVE_INFINITY;
      for (const step of released.curve.steps) {
        assert.ok(step.events >= k && step.atRisk >= k && step.atRisk - step.events >= 0);
        assert.ok(step.atRisk <= previousAtRisk - k || previousAtRisk === Number.POSITIVE_INFINITY, 'consecutive at-risk numbers differ by k or more');
        previousAtRisk = step.atRisk;
        const exact = steps.find((s) => s.time === step.time)!;
        assert.ok(exact.atRisk - exact.events >= k, 'k remain at risk after every published time');
      }
    }
  });

  it('withholds the strata whose sizes the one-way table suppresses, the small one and its partner alike', () => {
    const big = patients;
    const other = patients.slice(0, 20);
    const small = patients.slice(0, 3);
    const released = coarsenSurvivalCurves([curveOf('R0', big), curveOf('R1', other), curveOf('R2', small)], { k: 5 });
    assert.deepEqual(released.map((r) => [r.stratum, r.withheld?.code ?? null]), [['R0', null], ['R1', 'FEWER_THAN_K_PATIENTS'], ['R2', 'FEWER_THAN_K_PATIENTS']]);
    assert.equal(released[1]!.withheld!.message, released[2]!.withheld!.message);
  });

  it('rejects steps out of time order or with more events than at risk', () => {
    const steps = kaplanMeierSteps(patients);
    assert.throws(() => coarsenSurvivalCurve({ stratum: 's', patientCount: 30, steps: [steps[1]!, steps[0]!] }), RangeError);
    assert.throws(() => coarsenSurvivalCurve({ stratum: 's', patientCount: 30, steps: [{ ...steps[0]!, events: 31 }] }), RangeError);
  });
});

describe('fingerprintCohort and checkOverlap', () => {
  const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `00000000-0000-4000-8000-${String(from + i).padStart(12, '0')}`);
  const fingerprint = (patientIds: string[]) => fingerprintCohort(patientIds, SECRET);

  it('keeps sorted keyed hashes, no ids, one per patient, different under another secret', () => {
    const cohort = ids(0, 50);
    const fp = fingerprint([...cohort, cohort[0]!]);
    assert.equal(fp.keys.length, 50);
    for (let i = 1; i < fp.keys.length; i += 1) assert.ok(fp.keys[i - 1]! < fp.keys[i]!);
    const bytes = fingerprintToBytes(fp);
    assert.ok(!bytes.toString('latin1').includes('0000-4000'));
    assert.deepEqual(fingerprintFromBytes(bytes).keys, fp.keys);
    assert.notDeepEqual(fingerprintCohort(cohort, randomBytes(32)).keys, fp.keys);
    assert.throws(() => fingerprintCohort(cohort, 'short'), RangeError);
    assert.throws(() => fingerprintFromBytes(Buffer.concat([bytes.subarray(8, 16), bytes.subarray(0, 8)])), RangeError);
  });

  it('counts the symmetric difference by merging, as a set computation would', () => {
    const random = createRandom(11);
    for (let i = 0; i < 50; i += 1) {
      const a = ids(0, 200).filter(() => random() < 0.5);
      const b = ids(0, 200).filter(() => random() < 0.5);
      const expected = a.filter((x) => !b.includes(x)).length + b.filter((x) => !a.includes(x)).length;
      assert.equal(countSymmetricDifference(fingerprint(a), fingerprint(b)), expected);
      assert.equal(countSymmetricDifference(fingerprint(a), fingerprint(b), 5), Math.min(5, expected));
    }
  });

  it('refuses 1 to k-1 patients of difference with COHORT_OVERLAP, allows 0 and k or more', () => {
    const base = fingerprint(ids(0, 100));
    const table: [string, string[], boolean][] = [
      ['identical', ids(0, 100), true],
      ['one removed', ids(1, 100), false],
      ['one swapped', [...ids(1, 100), ...ids(500, 501)], false],
      ['four added', ids(0, 104), false],
      ['five added', ids(0, 105), true],
      ['disjoint', ids(200, 300), true],
    ];
    for (const [label, cohort, allowed] of table) {
      const decision = checkOverlap([fingerprint(ids(900, 950)), base], fingerprint(cohort), 5);
      assert.equal(decision.allowed, allowed, label);
      if (!decision.allowed) assert.equal(decision.code, 'COHORT_OVERLAP');
    }
  });

  it('compares two cohorts of 100k patients in one linear pass', () => {
    const a = fingerprint(ids(0, 100_000));
    const b = fingerprint(ids(3, 100_000));
    const started = performance.now();
    assert.equal(checkOverlap([a], b, 5).allowed, false);
    assert.equal(countSymmetricDifference(a, b), 3);
    assert.ok(performance.now() - started < 1000);
  });
});

describe('a differencing attack on one patient', () => {
  // 41 type-2 patients in a synthetic cohort; the target is the only woman aged 80+ from dataset "B".
  type Patient = { id: string; type: 1 | 2; ageBand: string; sex: 'F' | 'M'; dataset: 'A' | 'B'; grade: number };
  const random = createRandom(2024);
  const patients: Patient[] = Array.from({ length: 40 }, (_, i) => ({
    id: `p-${i}`,
    type: 2,
    ageBand: ['40-59', '60-79'][i % 2]!,
    sex: i % 3 === 0 ? 'F' : 'M',
    dataset: i % 4 === 0 ? 'B' : 'A',
    grade: [0, 0, 0, 1, 1, 2, 2, 3, 4][Math.floor(random() * 9)]!,
  }));
  const target: Patient = { id: 'p-target', type: 2, ageBand: '80+', sex: 'F', dataset: 'B', grade: 0 };
  patients.push(target, { id: 'p-t1', type: 1, ageBand: '80+', sex: 'F', dataset: 'B', grade: 2 });

  const cohortA = patients.filter((p) => p.type === 2);
  const cohortB = cohortA.filter((p) => !(p.ageBand === '80+' && p.sex === 'F' && p.dataset === 'B'));
  const gradeCounts = (cohort: Patient[]) => [0, 1, 2, 3, 4].map((g) => cohort.filter((p) => p.grade === g).length);

  /** What the service does for one researcher: screen the cohort, remember it, publish suppressed counts. */
  function createResearcherSession() {
    const recent: CohortFingerprint[] = [];
    return (cohort: Patient[]) => {
      const screened = screenCohort({ patientIds: cohort.map((p) => p.id), recent, secret: SECRET, k: 5 });
      if (!screened.allowed) return { refused: screened.code };
      recent.push(screened.fingerprint);
      return { grades: suppressOneWayTable(gradeCounts(cohort), 5) };
    };
  }

  it('would work on raw counts: A minus B is exactly the target grade', () => {
    const difference = gradeCounts(cohortA).map((count, g) => count - gradeCounts(cohortB)[g]!);
    assert.deepEqual(difference, [1, 0, 0, 0, 0]);
  });

  it('fails: the second cohort differs by one patient and is refused, and filtering on the quasi-identifiers is too small', () => {
    const query = createResearcherSession();
    const first = query(cohortA);
    assert.ok('grades' in first);
    assert.deepEqual(query(cohortB), { refused: 'COHORT_OVERLAP' });
    assert.deepEqual(query(patients.filter((p) => p.ageBand === '80+' && p.sex === 'F')), { refused: 'COHORT_TOO_SMALL' });
    assert.deepEqual(query(cohortA), first, 'the same cohort again is answered again');
  });

  it('fails too when B is hidden among four other changes; the difference then describes five patients', () => {
    const query = createResearcherSession();
    query(cohortA);
    const padded = [...cohortB.slice(4), ...patients.filter((p) => p.type === 1)];
    // 4 removed + target removed + 1 added = 6 >= 5: allowed, but no longer about one patient.
    const answer = query(padded);
    assert.ok('grades' in answer);
    assert.equal(countSymmetricDifference(fingerprintCohort(cohortA.map((p) => p.id), SECRET), fingerprintCohort(padded.map((p) => p.id), SECRET)), 6);
  });

  it('is not stopped across researchers (collusion): without the shared memory the difference shows', () => {
    // Documented limit: overlap control is per researcher. Suppression alone does not stop differencing when the
    // target's grade cell is large.
    const a = createResearcherSession()(cohortA);
    const b = createResearcherSession()(cohortB);
    if (!a.grades || !b.grades) assert.fail('both researchers are answered');
    assert.equal(a.grades.cells[0]! - b.grades.cells[0]!, 1);
  });
});
