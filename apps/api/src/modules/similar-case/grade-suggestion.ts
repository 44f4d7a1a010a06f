// The CBR "reuse" step as pure functions: a weighted vote of the nearest graded neighbours, a calibration of that
// vote into probabilities per ICDR grade, and the decision (a grade, or an abstention when the neighbours
// disagree too much). The same functions serve the API (suggest-grade.service.ts) and the fitting CLI
// (cli/fit-reuse.ts), so what was fitted on validation patients is exactly what runs.
//
// Calibration is temperature scaling of the smoothed vote: p_g ∝ (vote_g + smoothing)^(1 / temperature), the
// vote read as a probability whose log is a logit (Guo et al. 2017, "On calibration of modern neural networks",
// applied to a kNN vote instead of a network's logits). Two parameters, fitted by grid search on validation
// negative log-likelihood: a validation set of a few hundred photographs cannot support more (a per-grade bias or
// isotonic regression per grade would overfit the rare grades 3 and 4).
import { NUMBER_OF_GRADES } from '../../evaluation/metrics.js';

export type VoteWeighting = 'uniform' | 'similarity' | 'softmax';

export type VoteRule = {
  /** How many of the nearest graded neighbours vote. */
  neighbours: number;
  /** uniform: one vote each; similarity: weight = max(cosine, 0); softmax: weight = exp(cosine / softmaxTemperature). */
  weighting: VoteWeighting;
  softmaxTemperature: number | null;
  /** argmax: the most probable grade; median: the grade where the cumulative probability first reaches 0.5 (ordinal). */
  decision: 'argmax' | 'median';
};

export type VoteCalibration = { temperature: number; smoothing: number };

export type Neighbour = { similarity: number; grade: number | null };

/** The plain kNN vote of the evaluation CLI: ten neighbours, one vote each, most votes wins. */
export const PLAIN_VOTE_RULE: VoteRule = { neighbours: 10, weighting: 'uniform', softmaxTemperature: null, decision: 'argmax' };

/** Weighted vote shares per grade (summing to 1) and head counts of the first `rule.neighbours` graded neighbours. */
export function voteOfNeighbours(neighbours: readonly Neighbour[], rule: VoteRule): { shares: number[]; counts: number[]; voters: number } {
  const weights = new Array<number>(NUMBER_OF_GRADES).fill(0);
  const counts = new Array<number>(NUMBER_OF_GRADES).fill(0);
  let voters = 0;
  for (const neighbour of neighbours) {
    if (voters >= rule.neighbours) break;
    const grade = neighbour.grade;
    if (grade === null || !Number.isInteger(grade) || grade < 0 || grade >= NUMBER_OF_GRADES) continue;
    voters += 1;
    counts[grade]! += 1;
    weights[grade]! += weightOf(neighbour.similarity, rule);
  }
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  // All-zero weights (every similarity <= 0 under 'similarity') fall back to head counts.
  const shares = total > 0 ? weights.map((weight) => weight / total) : voters > 0 ? counts.map((count) => count / voters) : weights;
  return { shares, counts, voters };
}

function weightOf(similarity: number, rule: VoteRule): number {
  if (rule.weighting === 'uniform') return 1;
  if (rule.weighting === 'similarity') return Math.max(similarity, 0);
  return Math.exp(similarity / (rule.softmaxTemperature ?? 1));
}

/** Probabilities per grade from vote shares: p_g ∝ (share_g + smoothing)^(1 / temperature). */
export function calibrateVote(shares: readonly number[], calibration: VoteCalibration): number[] {
  const logits = shares.map((share) => Math.log(share + calibration.smoothing) / calibration.temperature);
  const top = Math.max(...logits);
  const exponentials = logits.map((logit) => Math.exp(logit - top));
  const total = exponentials.reduce((sum, value) => sum + value, 0);
  return exponentials.map((value) => value / total);
}

/** The grade a distribution decides for: argmax (ties to the lower grade) or the ordinal median. */
export function decideGrade(probabilities: readonly number[], decision: VoteRule['decision']): number {
  if (decision === 'median') {
    let cumulative = 0;
    for (let grade = 0; grade < probabilities.length; grade += 1) {
      cumulative += probabilities[grade]!;
      if (cumulative >= 0.5 - 1e-12) return grade;
    }
    return probabilities.length - 1;
  }
  let best = 0;
  probabilities.forEach((probability, grade) => {
    if (probability > probabilities[best]!) best = grade;
  });
  return best;
}

/** P(grade >= 2): referable DR (moderate NPDR or worse). */
export const referableProbability = (probabilities: readonly number[]) => probabilities.slice(2).reduce((sum, value) => sum + value, 0);

/** Mean negative log-likelihood of the true grades under the probabilities (clipped at 1e-12). */
export function negativeLogLikelihood(probabilities: readonly (readonly number[])[], grades: readonly number[]): number {
  let total = 0;
  probabilities.forEach((row, index) => {
    total -= Math.log(Math.max(row[grades[index]!] ?? 0, 1e-12));
  });
  return total / probabilities.length;
}

/**
 * Expected calibration error of the top-label confidence over equal-width bins (Guo et al. 2017): the
 * count-weighted mean |accuracy - mean confidence| per bin. Also returns the bins for a reliability diagram.
 */
export function expectedCalibrationError(confidences: readonly number[], correct: readonly boolean[], bins = 10) {
  const table = Array.from({ length: bins }, (_, index) => ({ lower: index / bins, upper: (index + 1) / bins, count: 0, confidence: 0, accuracy: 0 }));
  confidences.forEach((confidence, index) => {
    const bin = table[Math.min(bins - 1, Math.floor(confidence * bins))]!;
    bin.count += 1;
    bin.confidence += confidence;
    bin.accuracy += correct[index] ? 1 : 0;
  });
  let error = 0;
  for (const bin of table) {
    if (bin.count === 0) continue;
    bin.confidence /= bin.count;
    bin.accuracy /= bin.count;
    error += (bin.count / confidences.length) * Math.abs(bin.accuracy - bin.confidence);
  }
  return { ece: error, bins: table };
}
