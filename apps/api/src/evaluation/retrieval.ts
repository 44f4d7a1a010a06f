/**
 * Turns rankings into the retrieval report (P@k, per-grade and macro P@10, MAP@R, authors' mAP@10 (and its
 * hit-normalised variant), 10-NN grade
 * accuracy and QWK) and provides the rankers being compared: cosine similarity of embeddings, and the trivial
 * baselines (random order; majority grade first).
 *
 * Invariant: gallery items of the query's own patient are removed here, in `outcomeFromRanking`, for every
 * ranker, so no caller can forget it. When the query set is its own gallery this also removes the query image.
 */
import {
  accuracy,
  authorsAveragePrecisionAtK,
  averagePrecisionAtR,
  hitNormalisedAveragePrecisionAtK,
  macroAverage,
  majorityVoteGrade,
  mean,
  precisionAtK,
  quadraticWeightedKappa,
} from './metrics.js';

export interface EvaluationItem {
  patientId: string;
  /** ICDR grade 0-4. */
  grade: number;
}

export const PRECISION_CUTOFFS = [1, 5, 10, 20] as const;
export const NEIGHBOURS_FOR_GRADING = 10;

export interface QueryOutcome {
  grade: number;
  /** R: relevant gallery items for this query, own patient excluded. */
  relevantCount: number;
  /** Relevance of the ranked items (own patient removed), at least max(R, 20) long where the gallery allows. */
  relevance: boolean[];
  /** Grades of the top NEIGHBOURS_FOR_GRADING ranked items. */
  neighbourGrades: number[];
}

export interface RetrievalReport {
  queries: number;
  /** Queries with R = 0 (no other patient has their grade): left out of MAP@R only. */
  queriesWithoutRelevant: number;
  precisionAt: Record<`${(typeof PRECISION_CUTOFFS)[number]}`, number>;
  precisionAt10ByGrade: Record<string, { queries: number; value: number }>;
  /** Mean over the grades present among the queries of the per-grade P@10. */
  macroPrecisionAt10: number;
  mapAtR: number;
  /** FundusDR authors' mAP@10, normalised by k (metrics.ts). */
  authorsMapAt10: number;
  /** The hit-normalised variant (metrics.ts); optimistic. */
  hitNormalisedMapAt10: number;
  knnAccuracy: number;
  knnQuadraticWeightedKappa: number;
}

/** Counts of gallery grades overall and per patient, so R for a query is one subtraction. */
export class GalleryIndex {
  readonly gradeCounts = new Map<number, number>();
  private readonly patientGradeCounts = new Map<string, Map<number, number>>();
  private readonly patientSizes = new Map<string, number>();

  constructor(readonly items: readonly EvaluationItem[]) {
    for (const item of items) {
      this.gradeCounts.set(item.grade, (this.gradeCounts.get(item.grade) ?? 0) + 1);
      const perPatient = this.patientGradeCounts.get(item.patientId) ?? new Map<number, number>();
      perPatient.set(item.grade, (perPatient.get(item.grade) ?? 0) + 1);
      this.patientGradeCounts.set(item.patientId, perPatient);
      this.patientSizes.set(item.patientId, (this.patientSizes.get(item.patientId) ?? 0) + 1);
    }
  }

  relevantCountFor(query: EvaluationItem): number {
    return (this.gradeCounts.get(query.grade) ?? 0) - (this.patientGradeCounts.get(query.patientId)?.get(query.grade) ?? 0);
  }

  /** Gallery size once the query's own patient is removed. */
  candidateCountFor(query: EvaluationItem): number {
    return this.items.length - (this.patientSizes.get(query.patientId) ?? 0);
  }
}

/** `ranking` lists gallery indices best first (all of them, or at least enough); own patient is dropped here. */
export function outcomeFromRanking(query: EvaluationItem, ranking: Iterable<number>, gallery: GalleryIndex): QueryOutcome {
  const relevantCount = gallery.relevantCountFor(query);
  const depth = Math.max(relevantCount, ...PRECISION_CUTOFFS, NEIGHBOURS_FOR_GRADING);
  const relevance: boolean[] = [];
  const neighbourGrades: number[] = [];
  for (const index of ranking) {
    const item = gallery.items[index];
    if (!item) throw new RangeError(`ranking refers to gallery index ${index}, gallery has ${gallery.items.length}`);
    if (item.patientId === query.patientId) continue;
    relevance.push(item.grade === query.grade);
    if (neighbourGrades.length < NEIGHBOURS_FOR_GRADING) neighbourGrades.push(item.grade);
    if (relevance.length >= depth) break;
  }
  return { grade: query.grade, relevantCount, relevance, neighbourGrades };
}

export function summariseOutcomes(outcomes: readonly QueryOutcome[]): RetrievalReport {
  const precisionAt = Object.fromEntries(
    PRECISION_CUTOFFS.map((k) => [String(k), mean(outcomes.map((outcome) => precisionAtK(outcome.relevance, k)))]),
  ) as RetrievalReport['precisionAt'];
  const { perGroup, macro } = macroAverage(
    outcomes.map((outcome) => precisionAtK(outcome.relevance, 10)),
    outcomes.map((outcome) => outcome.grade),
  );
  const withRelevant = outcomes.filter((outcome) => outcome.relevantCount > 0);
  const graded = outcomes.filter((outcome) => outcome.neighbourGrades.length > 0);
  const actual = graded.map((outcome) => outcome.grade);
  const predicted = graded.map((outcome) => majorityVoteGrade(outcome.neighbourGrades) ?? -1);
  return {
    queries: outcomes.length,
    queriesWithoutRelevant: outcomes.length - withRelevant.length,
    precisionAt,
    precisionAt10ByGrade: Object.fromEntries([...perGroup.entries()].map(([grade, entry]) => [String(grade), { queries: entry.count, value: entry.mean }])),
    macroPrecisionAt10: macro,
    mapAtR: mean(withRelevant.map((outcome) => averagePrecisionAtR(outcome.relevance, outcome.relevantCount))),
    authorsMapAt10: mean(outcomes.map((outcome) => authorsAveragePrecisionAtK(outcome.relevance, 10))),
    hitNormalisedMapAt10: mean(outcomes.map((outcome) => hitNormalisedAveragePrecisionAtK(outcome.relevance, 10))),
    knnAccuracy: accuracy(actual, predicted),
    knnQuadraticWeightedKappa: quadraticWeightedKappa(actual, predicted),
  };
}

export function evaluateRanker(
  queries: readonly EvaluationItem[],
  gallery: readonly EvaluationItem[],
  rank: (queryIndex: number) => Iterable<number>,
): RetrievalReport {
  const index = new GalleryIndex(gallery);
  return summariseOutcomes(queries.map((query, queryIndex) => outcomeFromRanking(query, rank(queryIndex), index)));
}

/**
 * Gallery indices by descending dot product with the query (cosine similarity for L2-normalised vectors);
 * ties keep gallery order. Every gallery item is ranked so that MAP@R sees the whole list.
 */
export function rankByCosineSimilarity(query: Float32Array, gallery: readonly Float32Array[]): number[] {
  const scores = new Float64Array(gallery.length);
  gallery.forEach((vector, index) => {
    if (vector.length !== query.length) throw new RangeError(`embedding dimensions differ: ${vector.length} vs ${query.length}`);
    let dot = 0;
    for (let i = 0; i < vector.length; i += 1) dot += (vector[i] ?? 0) * (query[i] ?? 0);
    scores[index] = dot;
  });
  return Array.from(gallery.keys()).sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0) || a - b);
}

/** Deterministic PRNG (mulberry32), so baselines are reproducible run to run. Returns floats in [0, 1). */
export function createSeededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffledIndices(length: number, random: () => number): number[] {
  const indices = Array.from({ length }, (_, i) => i);
  for (let i = length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [indices[i], indices[j]] = [indices[j] ?? 0, indices[i] ?? 0];
  }
  return indices;
}

export const RANDOM_BASELINE_SEEDS = 10;

/**
 * Random-ranking baseline: every metric averaged over RANDOM_BASELINE_SEEDS seeded shuffles (seeds 1..N, a fresh
 * shuffle per query), plus `expectedPrecision`, the analytic expectation of P@k under random order,
 * mean over queries of R_q / N_q (N_q = gallery without the query's patient), the same for every k <= N_q.
 */
export function evaluateRandomBaseline(
  queries: readonly EvaluationItem[],
  gallery: readonly EvaluationItem[],
  seeds = RANDOM_BASELINE_SEEDS,
): RetrievalReport & { expectedPrecision: number; seeds: number } {
  const reports = Array.from({ length: seeds }, (_, s) => {
    const random = createSeededRandom(s + 1);
    return evaluateRanker(queries, gallery, () => shuffledIndices(gallery.length, random));
  });
  const index = new GalleryIndex(gallery);
  const expectedPrecision = mean(
    queries.map((query) => {
      const candidates = index.candidateCountFor(query);
      return candidates === 0 ? 0 : index.relevantCountFor(query) / candidates;
    }),
  );
  return { ...averageReports(reports), expectedPrecision, seeds };
}

/**
 * Majority-grade baseline: a "system" that ignores the query and returns gallery items of the most frequent
 * grade first (then the next most frequent, ...; ties by lower grade), gallery order within a grade. Its 10-NN
 * grade is always the majority grade.
 */
export function majorityFirstRanking(gallery: readonly EvaluationItem[]): number[] {
  const counts = new Map<number, number>();
  for (const item of gallery) counts.set(item.grade, (counts.get(item.grade) ?? 0) + 1);
  const order = [...counts.entries()].sort(([gradeA, countA], [gradeB, countB]) => countB - countA || gradeA - gradeB).map(([grade]) => grade);
  const position = new Map(order.map((grade, i) => [grade, i]));
  return Array.from(gallery.keys()).sort(
    (a, b) => (position.get(gallery[a]?.grade ?? -1) ?? 0) - (position.get(gallery[b]?.grade ?? -1) ?? 0) || a - b,
  );
}

export function evaluateMajorityBaseline(queries: readonly EvaluationItem[], gallery: readonly EvaluationItem[]): RetrievalReport {
  const ranking = majorityFirstRanking(gallery);
  return evaluateRanker(queries, gallery, () => ranking);
}

/** Field-wise mean of reports over the same queries (NaN fields stay NaN only if all are NaN). */
export function averageReports(reports: readonly RetrievalReport[]): RetrievalReport {
  const first = reports[0];
  if (!first) throw new RangeError('no reports to average');
  const average = (pick: (report: RetrievalReport) => number): number => {
    const values = reports.map(pick).filter((value) => !Number.isNaN(value));
    return mean(values);
  };
  return {
    queries: first.queries,
    queriesWithoutRelevant: first.queriesWithoutRelevant,
    precisionAt: Object.fromEntries(
      PRECISION_CUTOFFS.map((k) => [String(k), average((report) => report.precisionAt[`${k}`])]),
    ) as RetrievalReport['precisionAt'],
    precisionAt10ByGrade: Object.fromEntries(
      Object.entries(first.precisionAt10ByGrade).map(([grade, entry]) => [
        grade,
        { queries: entry.queries, value: average((report) => report.precisionAt10ByGrade[grade]?.value ?? Number.NaN) },
      ]),
    ),
    macroPrecisionAt10: average((report) => report.macroPrecisionAt10),
    mapAtR: average((report) => report.mapAtR),
    authorsMapAt10: average((report) => report.authorsMapAt10),
    hitNormalisedMapAt10: average((report) => report.hitNormalisedMapAt10),
    knnAccuracy: average((report) => report.knnAccuracy),
    knnQuadraticWeightedKappa: average((report) => report.knnQuadraticWeightedKappa),
  };
}
