/**
 * Time to worsening: Kaplan-Meier curves and the k-group log-rank test, as pure functions over
 * `{ time, event }` observations (time in any unit, typically years since baseline; event = worsening seen,
 * false = censored: last visit without worsening). No database, no GraphQL: the cohort-statistics service
 * feeds it rows and maps the RangeErrors thrown here to BAD_USER_INPUT.
 *
 * Conventions (callers rely on them):
 * - Ties: at a time t, events come before censorings. An eye censored at t is still at risk at t, so the number
 *   at risk at t is #{time >= t} (Kaplan & Meier 1958; R `survival`, statsmodels, SAS do the same).
 * - Kaplan-Meier: S(t) = prod_{t_i <= t} (1 - d_i / n_i) over the distinct event times t_i, with d_i events
 *   and n_i at risk. Steps are reported only at event times; S is flat between them and S(0-) = 1.
 * - Greenwood: Var S(t) = S(t)^2 * sum_{t_i <= t} d_i / (n_i (n_i - d_i)). Where S reaches 0 (every eye at
 *   risk has the event, n_i = d_i) the sum is undefined, and the standard error and interval are null, as
 *   statsmodels' SurvfuncRight gives NaN there. That can only happen at the last step.
 * - Pointwise interval by the log-log transform (Kalbfleisch & Prentice; R conf.type = "log-log", SAS
 *   CONFTYPE=LOGLOG, statsmodels' "cloglog" g-transform): with g(S) = log(-log S) and
 *   se_g = sqrt(Greenwood sum) / |log S| (the delta method), the interval is
 *   exp(-exp(g(S) +/- z se_g)) = [S^exp(z se_g), S^exp(-z se_g)]. It stays inside (0, 1), unlike the plain
 *   S +/- z se. S = 1 never occurs at an event step (d_i >= 1 and n_i > d_i give S < 1), so |log S| > 0.
 * - Median: the first event time with S < 0.5; if S equals 0.5 (within sqrt(machine epsilon)) on a flat, the
 *   midpoint of that flat, up to the next event time or, after the last one, the longest follow-up. This is
 *   R's quantile.survfit and SAS's rule; statsmodels' quantile(0.5) agrees except at an exact 0.5, where it
 *   takes the next event time. Null when the curve never falls to 0.5 (median not reached).
 * - Log-rank (Mantel-Cox): at each distinct event time t with n at risk and d events in all groups,
 *   E_g += d n_g / n and V_gh += d (n - d) / (n - 1) * (n_g / n) (delta_gh - n_h / n) (the hypergeometric
 *   covariance; times with n = 1 add nothing). The statistic is U' V^-1 U over k - 1 groups, U = O - E, with the
 *   full covariance matrix, chi-square with k - 1 degrees of freedom: statsmodels' survdiff and R's survdiff.
 *   A group with E = 0 (empty, or no eye at risk at any event time) has a zero row in V and is left out,
 *   lowering the degrees of freedom, as R's survdiff does (statsmodels would fail on a singular matrix).
 *
 * Cost: one O(n log n) sort of the event times and one of the censoring times (typed-array sorts, a few tens of
 * ms at 400k eyes), then linear sweeps; the log-rank adds O(m k^2) for m distinct event times and k groups.
 */
import erfcinv from '@stdlib/math-base-special-erfcinv';
import gammainc from '@stdlib/math-base-special-gammainc';

export interface SurvivalObservation {
  /** Time from baseline to the event or to censoring; finite and >= 0. */
  time: number;
  /** true: the event (worsening) was observed at `time`; false: censored at `time`. */
  event: boolean;
}

export interface KaplanMeierOptions {
  /** Times at which to report the number at risk and S (a risk table under the chart), e.g. 0, 1, 2, ... years. */
  marks?: readonly number[];
  /** Pointwise confidence level of the interval, in (0, 1); default 0.95. */
  confidence?: number;
}

export interface KaplanMeierStep {
  time: number;
  /** Eyes with time >= this time (those censored now are still at risk). */
  atRisk: number;
  events: number;
  /** Eyes censored at exactly this time (counted after the events). */
  censored: number;
  survival: number;
  /** Greenwood standard error of S; null where S = 0. */
  standardError: number | null;
  /** Log-log interval; null where S = 0. */
  lower: number | null;
  upper: number | null;
}

export interface CensorTime {
  time: number;
  /** How many eyes were censored at this time (for the size of the censor mark). */
  count: number;
}

export interface RiskTableEntry {
  time: number;
  /** Eyes with time >= the mark. */
  atRisk: number;
  /** S at the mark: the step at the last event time <= the mark, 1 before the first event. */
  survival: number;
}

export interface KaplanMeierCurve {
  observations: number;
  events: number;
  confidence: number;
  /** One entry per distinct event time, ascending. Empty when every eye is censored. */
  steps: KaplanMeierStep[];
  /** Distinct censoring times, ascending, with multiplicity. */
  censorTimes: CensorTime[];
  /** One entry per requested mark, in the order given. */
  atMarks: RiskTableEntry[];
  median: number | null;
}

export interface LogRankGroup {
  observations: number;
  observed: number;
  expected: number;
}

export interface LogRankResult {
  groups: LogRankGroup[];
  /** k x k covariance matrix of O - E (rows sum to 0); the test uses the rows and columns of the kept groups. */
  covariance: number[][];
  /** U' V^-1 U; null when fewer than two groups have E > 0 or V is singular (no informative event time). */
  statistic: number | null;
  /** Groups with E > 0, minus 1 (k - 1 unless a group is left out, see the module header). */
  degreesOfFreedom: number;
  pValue: number | null;
}

// R's quantile.survfit tolerance for "S equals 0.5": sqrt of the float64 machine epsilon.
const EXACT_HALF_TOLERANCE = Math.sqrt(Number.EPSILON);
// A Cholesky pivot below this fraction of the largest diagonal entry counts as zero (V singular).
const SINGULAR_PIVOT_FRACTION = 1e-10;

export function kaplanMeier(
  observations: readonly SurvivalObservation[],
  options: KaplanMeierOptions = {},
): KaplanMeierCurve {
  if (observations.length === 0) throw new RangeError('Kaplan-Meier needs at least one observation');
  const confidence = options.confidence ?? 0.95;
  const z = criticalValueForConfidence(confidence);
  const marks = options.marks ?? [];
  marks.forEach((mark, index) => {
    if (!Number.isFinite(mark) || mark < 0) throw new RangeError(`marks[${index}] must be a finite number >= 0, got ${mark}`);
  });
  const { events, censorings } = sortObservations(observations, 'observations');

  const steps: KaplanMeierStep[] = [];
  let atRisk = observations.length;
  let survival = 1;
  // Kept separately from the product so |log S| near S = 1 (large cohorts, first steps) keeps its precision.
  let logSurvival = 0;
  let greenwoodSum = 0;
  let e = 0;
  let c = 0;
  while (e < events.length) {
    const time = events[e]!;
    while (c < censorings.length && censorings[c]! < time) {
      c += 1;
      atRisk -= 1;
    }
    const firstEvent = e;
    while (e < events.length && events[e] === time) e += 1;
    const firstCensoring = c;
    while (c < censorings.length && censorings[c] === time) c += 1;
    const eventCount = e - firstEvent;
    const censoredCount = c - firstCensoring;

    let standardError: number | null = null;
    let lower: number | null = null;
    let upper: number | null = null;
    if (eventCount === atRisk) {
      survival = 0;
    } else {
      survival *= 1 - eventCount / atRisk;
      logSurvival += Math.log1p(-eventCount / atRisk);
      greenwoodSum += eventCount / (atRisk * (atRisk - eventCount));
      standardError = survival * Math.sqrt(greenwoodSum);
      const logLogStandardError = Math.sqrt(greenwoodSum) / -logSurvival;
      lower = Math.exp(logSurvival * Math.exp(z * logLogStandardError));
      upper = Math.exp(logSurvival * Math.exp(-z * logLogStandardError));
    }
    steps.push({ time, atRisk, events: eventCount, censored: censoredCount, survival, standardError, lower, upper });
    atRisk -= eventCount + censoredCount;
  }

  const censorTimes: CensorTime[] = [];
  for (let i = 0; i < censorings.length; ) {
    const time = censorings[i]!;
    let j = i;
    while (j < censorings.length && censorings[j] === time) j += 1;
    censorTimes.push({ time, count: j - i });
    i = j;
  }

  const atMarks = marks.map((time): RiskTableEntry => {
    const stepIndex = countAtMost(steps, time) - 1;
    return {
      time,
      atRisk: observations.length - countBelow(events, time) - countBelow(censorings, time),
      survival: stepIndex < 0 ? 1 : steps[stepIndex]!.survival,
    };
  });

  const longestFollowUp = Math.max(events[events.length - 1] ?? 0, censorings[censorings.length - 1] ?? 0);
  return {
    observations: observations.length,
    events: events.length,
    confidence,
    steps,
    censorTimes,
    atMarks,
    median: findMedian(steps, longestFollowUp),
  };
}

export function logRankTest(groups: readonly (readonly SurvivalObservation[])[]): LogRankResult {
  if (groups.length < 2) throw new RangeError(`the log-rank test compares at least two groups, got ${groups.length}`);
  const sorted = groups.map((group, index) => sortObservations(group, `groups[${index}]`));
  const k = groups.length;

  const allEvents = new Float64Array(sorted.reduce((sum, group) => sum + group.events.length, 0));
  let offset = 0;
  for (const group of sorted) {
    allEvents.set(group.events, offset);
    offset += group.events.length;
  }
  allEvents.sort();

  const expected = new Array<number>(k).fill(0);
  const covariance = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const eventIndex = new Array<number>(k).fill(0);
  const censoringIndex = new Array<number>(k).fill(0);
  const atRisk = new Array<number>(k).fill(0);
  for (let i = 0; i < allEvents.length; ) {
    const time = allEvents[i]!;
    let eventCount = 0;
    while (i < allEvents.length && allEvents[i] === time) {
      i += 1;
      eventCount += 1;
    }
    let totalAtRisk = 0;
    for (let g = 0; g < k; g += 1) {
      const { events, censorings } = sorted[g]!;
      while (censoringIndex[g]! < censorings.length && censorings[censoringIndex[g]!]! < time) censoringIndex[g]! += 1;
      // Every earlier event time of this group was an earlier distinct time, so eventIndex already points at time.
      atRisk[g] = groups[g]!.length - eventIndex[g]! - censoringIndex[g]!;
      while (eventIndex[g]! < events.length && events[eventIndex[g]!] === time) eventIndex[g]! += 1;
      totalAtRisk += atRisk[g]!;
    }
    for (let g = 0; g < k; g += 1) expected[g]! += (eventCount * atRisk[g]!) / totalAtRisk;
    if (totalAtRisk > 1) {
      const weight = (eventCount * (totalAtRisk - eventCount)) / ((totalAtRisk - 1) * totalAtRisk * totalAtRisk);
      for (let g = 0; g < k; g += 1) {
        for (let h = 0; h < k; h += 1) {
          covariance[g]![h]! += weight * atRisk[g]! * ((g === h ? totalAtRisk : 0) - atRisk[h]!);
        }
      }
    }
  }

  const observed = sorted.map((group) => group.events.length);
  const kept = expected.flatMap((value, g) => (value > 0 ? [g] : []));
  // The k covariances of O - E sum to zero, so one kept group (the first) is dropped: the rest determine it.
  const tested = kept.slice(1);
  const degreesOfFreedom = tested.length;
  const differences = tested.map((g) => observed[g]! - expected[g]!);
  const solved = tested.length === 0 ? null : solveSymmetricPositiveDefinite(
    tested.map((g) => tested.map((h) => covariance[g]![h]!)),
    differences,
  );
  const statistic = solved === null ? null : solved.reduce((sum, value, index) => sum + value * differences[index]!, 0);
  return {
    groups: groups.map((group, g) => ({ observations: group.length, observed: observed[g]!, expected: expected[g]! })),
    covariance,
    statistic,
    degreesOfFreedom,
    pValue: statistic === null ? null : chiSquareSurvival(statistic, degreesOfFreedom),
  };
}

/**
 * P(X >= x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2), evaluated directly
 * (stdlib's port of Boost's gamma_q), not as 1 - cdf, so small p-values keep their digits.
 */
export function chiSquareSurvival(statistic: number, degreesOfFreedom: number): number {
  if (!(degreesOfFreedom > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${degreesOfFreedom}`);
  if (!(statistic >= 0)) throw new RangeError(`a chi-square statistic must be >= 0, got ${statistic}`);
  return gammainc(statistic / 2, degreesOfFreedom / 2, true, true);
}

/** z with P(|Z| <= z) = confidence for Z ~ N(0, 1): sqrt(2) erfcinv(1 - confidence); 1.959964 at 0.95. */
export function criticalValueForConfidence(confidence: number): number {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must lie strictly between 0 and 1, got ${confidence}`);
  return Math.SQRT2 * erfcinv(1 - confidence);
}

function sortObservations(
  observations: readonly SurvivalObservation[],
  label: string,
): { events: Float64Array; censorings: Float64Array } {
  let eventCount = 0;
  observations.forEach((observation, index) => {
    const { time, event } = observation;
    if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) {
      throw new RangeError(`${label}[${index}].time must be a finite number >= 0, got ${String(time)}`);
    }
    if (typeof event !== 'boolean') throw new RangeError(`${label}[${index}].event must be true or false, got ${String(event)}`);
    if (event) eventCount += 1;
  });
  const events = new Float64Array(eventCount);
  const censorings = new Float64Array(observations.length - eventCount);
  let e = 0;
  let c = 0;
  for (const { time, event } of observations) {
    if (event) events[e++] = time;
    else censorings[c++] = time;
  }
  // Typed-array sort is numeric (not the string order of Array.prototype.sort), and fast at 400k.
  events.sort();
  censorings.sort();
  return { events, censorings };
}

function findMedian(steps: readonly KaplanMeierStep[], longestFollowUp: number): number | null {
  for (let i = 0; i < steps.length; i += 1) {
    const step = steps[i]!;
    if (Math.abs(step.survival - 0.5) < EXACT_HALF_TOLERANCE) return (step.time + (steps[i + 1]?.time ?? longestFollowUp)) / 2;
    if (step.survival < 0.5) return step.time;
  }
  return null;
}

/** Number of values < x in an ascending array. */
function countBelow(sortedValues: Float64Array, x: number): number {
  let low = 0;
  let high = sortedValues.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sortedValues[middle]! < x) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Number of steps with time <= x (steps ascending by time). */
function countAtMost(steps: readonly KaplanMeierStep[], x: number): number {
  let low = 0;
  let high = steps.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (steps[middle]!.time <= x) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Solves A x = b for a symmetric positive-definite A by Cholesky (A = L L'); null when a pivot is not
 * clearly positive, i.e. A is singular (e.g. every eye at risk has the event at every event time, so V = 0).
 */
function solveSymmetricPositiveDefinite(matrix: readonly (readonly number[])[], right: readonly number[]): number[] | null {
  const size = right.length;
  const largestDiagonal = Math.max(...matrix.map((row, i) => row[i]!));
  if (!(largestDiagonal > 0)) return null;
  const lower = Array.from({ length: size }, () => new Array<number>(size).fill(0));
  for (let j = 0; j < size; j += 1) {
    let pivot = matrix[j]![j]!;
    for (let p = 0; p < j; p += 1) pivot -= lower[j]![p]! ** 2;
    if (!(pivot > SINGULAR_PIVOT_FRACTION * largestDiagonal)) return null;
    lower[j]![j] = Math.sqrt(pivot);
    for (let i = j + 1; i < size; i += 1) {
      let value = matrix[i]![j]!;
      for (let p = 0; p < j; p += 1) value -= lower[i]![p]! * lower[j]![p]!;
      lower[i]![j] = value / lower[j]![j]!;
    }
  }
  const y = new Array<number>(size).fill(0);
  for (let i = 0; i < size; i += 1) {
    let value = right[i]!;
    for (let p = 0; p < i; p += 1) value -= lower[i]![p]! * y[p]!;
    y[i] = value / lower[i]![i]!;
  }
  const x = new Array<number>(size).fill(0);
  for (let i = size - 1; i >= 0; i -= 1) {
    let value = y[i]!;
    for (let p = i + 1; p < size; p += 1) value -= lower[p]![i]! * x[p]!;
    x[i] = value / lower[i]![i]!;
  }
  return x;
}
