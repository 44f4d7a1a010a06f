/**
 * Retrieval and grading metrics for similar-case search, as small pure functions.
 *
 * Conventions (every caller relies on them):
 * - Relevance = same ICDR grade (0-4) as the query.
 * - A ranking passed here has ALREADY had the query's own patient removed (both eyes of a patient usually share
 *   a grade, so leaving them in makes retrieval look far better than it is); see retrieval.ts.
 * - `relevance[i]` is whether the item at rank i+1 is relevant; lists may be shorter than k (small galleries),
 *   and P@k still divides by k.
 *
 * Definitions:
 * - P@k = (relevant items in the top k) / k.
 * - MAP@R (Musgrave, Belongie & Lim, "A Metric Learning Reality Check", ECCV 2020): for a query with R relevant
 *   gallery items, AP@R = (1/R) * sum_{i=1..R} P@i * rel_i; MAP@R is its mean over queries with R > 0. It
 *   rewards ranking all relevant items first and is not saturated by easy top-1 hits.
 * - "Authors' mAP@10" (Fang et al., FundusDR fundus-retrieval scripts, e.g. the SANet/MRE Test() loops): over
 *   the top k positions, P@i at each hit and 0 at each miss, averaged over the k positions:
 *   AP@10 = (1/10) * sum_{i<=10} rel_i * P@i; mAP@10 = mean over queries. Normalised by k, neither by R nor by
 *   the hits. models/src/fundus_cbr/metrics.py uses the same definition, so both sides report one number.
 * - Hit-normalised AP@10 (the variant in other scripts by the same authors, and this project's first brief):
 *   sum_{i<=10, rel_i} P@i / (relevant items in the top 10), 0 without hits. A single hit at rank 1 scores 1.0,
 *   so it is optimistic; reported second, labelled, for comparison only. Neither is comparable to MAP@R.
 * - k-NN grade: majority vote over the top k grades; a tie goes to the tied grade that appears first (best
 *   ranked).
 * - Quadratic weighted kappa (Cohen 1968) over K = 5 grades: 1 - sum(W*O) / sum(W*E) with
 *   W_ij = (i-j)^2/(K-1)^2, O the confusion counts and E = outer(actual histogram, predicted histogram) / N.
 *   NaN when sum(W*E) = 0 (e.g. every actual and predicted grade identical), where kappa is undefined.
 */

export const NUMBER_OF_GRADES = 5;

export function precisionAtK(relevance: readonly boolean[], k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  let hits = 0;
  for (let i = 0; i < Math.min(k, relevance.length); i += 1) if (relevance[i]) hits += 1;
  return hits / k;
}

/** AP@R for one query; `relevantCount` = R, the relevant gallery items for the query (same patient excluded). */
export function averagePrecisionAtR(relevance: readonly boolean[], relevantCount: number): number {
  if (relevantCount <= 0) throw new RangeError('AP@R is undefined for a query without relevant gallery items');
  let hits = 0;
  let sum = 0;
  for (let i = 0; i < Math.min(relevantCount, relevance.length); i += 1) {
    if (relevance[i]) {
      hits += 1;
      sum += hits / (i + 1);
    }
  }
  return sum / relevantCount;
}

/** The FundusDR authors' AP@k, normalised by k (see the module header). */
export function authorsAveragePrecisionAtK(relevance: readonly boolean[], k = 10): number {
  return sumOfPrecisionAtHits(relevance, k).sum / k;
}

/** AP@k normalised by the hits in the top k; 0 without hits (see the module header). */
export function hitNormalisedAveragePrecisionAtK(relevance: readonly boolean[], k = 10): number {
  const { sum, hits } = sumOfPrecisionAtHits(relevance, k);
  return hits === 0 ? 0 : sum / hits;
}

function sumOfPrecisionAtHits(relevance: readonly boolean[], k: number): { sum: number; hits: number } {
  let hits = 0;
  let sum = 0;
  for (let i = 0; i < Math.min(k, relevance.length); i += 1) {
    if (relevance[i]) {
      hits += 1;
      sum += hits / (i + 1);
    }
  }
  return { sum, hits };
}

/** Majority grade among neighbours in rank order; ties go to the best-ranked tied grade. Undefined if empty. */
export function majorityVoteGrade(neighbourGrades: readonly number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const grade of neighbourGrades) counts.set(grade, (counts.get(grade) ?? 0) + 1);
  let best: number | undefined;
  let bestCount = 0;
  // Iterating in rank order and replacing only on a strictly higher count keeps the best-ranked grade on ties.
  for (const grade of neighbourGrades) {
    const count = counts.get(grade) ?? 0;
    if (count > bestCount) {
      best = grade;
      bestCount = count;
    }
  }
  return best;
}

export function accuracy(actual: readonly number[], predicted: readonly number[]): number {
  if (actual.length !== predicted.length) throw new RangeError('actual and predicted differ in length');
  if (actual.length === 0) return Number.NaN;
  let correct = 0;
  actual.forEach((grade, i) => {
    if (grade === predicted[i]) correct += 1;
  });
  return correct / actual.length;
}

export function quadraticWeightedKappa(
  actual: readonly number[],
  predicted: readonly number[],
  numberOfClasses = NUMBER_OF_GRADES,
): number {
  if (actual.length !== predicted.length) throw new RangeError('actual and predicted differ in length');
  const n = actual.length;
  if (n === 0) return Number.NaN;
  const observed = Array.from({ length: numberOfClasses }, () => new Float64Array(numberOfClasses));
  const actualHistogram = new Float64Array(numberOfClasses);
  const predictedHistogram = new Float64Array(numberOfClasses);
  actual.forEach((a, index) => {
    const p = predicted[index] ?? -1;
    if (!Number.isInteger(a) || !Number.isInteger(p) || a < 0 || p < 0 || a >= numberOfClasses || p >= numberOfClasses) {
      throw new RangeError(`grades must be integers 0-${numberOfClasses - 1}, got actual ${a}, predicted ${p}`);
    }
    observed[a]![p]! += 1;
    actualHistogram[a]! += 1;
    predictedHistogram[p]! += 1;
  });
  let weightedObserved = 0;
  let weightedExpected = 0;
  for (let i = 0; i < numberOfClasses; i += 1) {
    for (let j = 0; j < numberOfClasses; j += 1) {
      const weight = (i - j) ** 2 / (numberOfClasses - 1) ** 2;
      weightedObserved += weight * (observed[i]![j] ?? 0);
      weightedExpected += (weight * (actualHistogram[i] ?? 0) * (predictedHistogram[j] ?? 0)) / n;
    }
  }
  return weightedExpected === 0 ? Number.NaN : 1 - weightedObserved / weightedExpected;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Per-group means and their unweighted mean over the groups present (macro average). */
export function macroAverage(values: readonly number[], groups: readonly number[]): { perGroup: Map<number, { count: number; mean: number }>; macro: number } {
  if (values.length !== groups.length) throw new RangeError('values and groups differ in length');
  const sums = new Map<number, { count: number; sum: number }>();
  values.forEach((value, i) => {
    const group = groups[i] ?? Number.NaN;
    const entry = sums.get(group) ?? { count: 0, sum: 0 };
    entry.count += 1;
    entry.sum += value;
    sums.set(group, entry);
  });
  const perGroup = new Map([...sums.entries()].sort(([a], [b]) => a - b).map(([group, { count, sum }]) => [group, { count, mean: sum / count }]));
  return { perGroup, macro: mean([...perGroup.values()].map((entry) => entry.mean)) };
}
