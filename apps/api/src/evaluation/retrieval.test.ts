import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  evaluateMajorityBaseline,
  evaluateRandomBaseline,
  evaluateRanker,
  GalleryIndex,
  majorityFirstRanking,
  outcomeFromRanking,
  rankByCosineSimilarity,
  type EvaluationItem,
} from './retrieval.js';

function assertClose(actual: number, expected: number, tolerance = 1e-9, label = ''): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${label} ${actual} != ${expected} (tolerance ${tolerance})`);
}

/** Two eyes per patient, both eyes sharing the patient's grade. */
function makeCohort(gradesByPatient: number[]): EvaluationItem[] {
  return gradesByPatient.flatMap((grade, patient) => [
    { patientId: `p${patient}`, grade },
    { patientId: `p${patient}`, grade },
  ]);
}

describe('outcomeFromRanking', () => {
  it('drops every gallery item of the query patient and counts R without them', () => {
    const gallery = new GalleryIndex([
      { patientId: 'p1', grade: 0 },
      { patientId: 'p1', grade: 0 },
      { patientId: 'p2', grade: 0 },
      { patientId: 'p3', grade: 1 },
    ]);
    const outcome = outcomeFromRanking({ patientId: 'p1', grade: 0 }, [0, 1, 3, 2], gallery);
    assert.equal(outcome.relevantCount, 1);
    assert.deepEqual(outcome.relevance, [false, true]);
    assert.deepEqual(outcome.neighbourGrades, [1, 0]);
  });
});

describe('evaluateRanker', () => {
  it('scores a grade-perfect ranking by hand-computed values, and the same-patient "cheat" is not rewarded', () => {
    // grade 0: 3 patients, so R = 4 for its queries; grades 1 and 2: 6 patients, R = 10.
    const cohort = makeCohort([0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    const perfect = evaluateRanker(cohort, cohort, (q) =>
      [...cohort.keys()].sort((a, b) => Number(cohort[b]!.grade === cohort[q]!.grade) - Number(cohort[a]!.grade === cohort[q]!.grade)),
    );
    assert.equal(perfect.queries, 30);
    assert.equal(perfect.queriesWithoutRelevant, 0);
    assertClose(perfect.precisionAt['1'], 1);
    assertClose(perfect.mapAtR, 1);
    assertClose(perfect.hitNormalisedMapAt10, 1);
    // grade 0 queries: 4 hits at ranks 1-4, so (1+1+1+1)/10; the others fill the top 10.
    assertClose(perfect.authorsMapAt10, (6 * 0.4 + 24 * 1) / 30);
    assertClose(perfect.precisionAt10ByGrade['0']!.value, 0.4);
    assertClose(perfect.precisionAt10ByGrade['1']!.value, 1);
    assertClose(perfect.precisionAt['10'], (6 * 0.4 + 24 * 1) / 30);
    assertClose(perfect.macroPrecisionAt10, (0.4 + 1 + 1) / 3);
    // grade-0 queries see 4 zeros then 6 grade-1 items: their 10-NN vote says 1, so 24 of 30 are right.
    assertClose(perfect.knnAccuracy, 24 / 30);

    // Ranking the query's own patient first (the other eye) must change nothing.
    const ownPatientFirst = evaluateRanker(cohort, cohort, (q) => {
      const base = [...cohort.keys()].sort((a, b) => Number(cohort[b]!.grade === cohort[q]!.grade) - Number(cohort[a]!.grade === cohort[q]!.grade));
      return [...base.filter((i) => cohort[i]!.patientId === cohort[q]!.patientId), ...base.filter((i) => cohort[i]!.patientId !== cohort[q]!.patientId)];
    });
    assert.deepEqual(ownPatientFirst, perfect);
  });
});

describe('rankByCosineSimilarity', () => {
  it('orders gallery items by descending dot product, ties in gallery order', () => {
    const query = Float32Array.of(1, 0);
    const gallery = [Float32Array.of(0, 1), Float32Array.of(0.6, 0.8), Float32Array.of(1, 0), Float32Array.of(-1, 0), Float32Array.of(0.6, -0.8)];
    assert.deepEqual(rankByCosineSimilarity(query, gallery), [2, 1, 4, 0, 3]);
  });
});

describe('baselines', () => {
  const cohort = makeCohort([...Array(30).fill(0), ...Array(10).fill(1), ...Array(12).fill(2), ...Array(5).fill(3), ...Array(3).fill(4)]);

  it('random ranking: seeded shuffles average close to the analytic expectation R/N, kappa near 0', () => {
    const report = evaluateRandomBaseline(cohort, cohort);
    // Analytic: sum over grades of share * (2*(n_g - 1)) / (120 - 2)
    const counts = [30, 10, 12, 5, 3];
    const expected = counts.reduce((sum, n) => sum + ((2 * n) / 120) * ((2 * (n - 1)) / 118), 0);
    assertClose(report.expectedPrecision, expected, 1e-12, 'analytic');
    assertClose(report.precisionAt['10'], expected, 0.02, 'P@10');
    assertClose(report.precisionAt['20'], expected, 0.02, 'P@20');
    assertClose(report.knnQuadraticWeightedKappa, 0, 0.1, 'QWK');
    assert.deepEqual(evaluateRandomBaseline(cohort, cohort), report, 'reproducible');
  });

  it('majority-first ranking predicts the majority grade for everyone: accuracy = its share, kappa 0', () => {
    const ranking = majorityFirstRanking(cohort);
    assert.deepEqual(ranking.slice(0, 3).map((i) => cohort[i]!.grade), [0, 0, 0]);
    assert.equal(cohort[ranking[60]!]!.grade, 2, 'second most frequent grade next');
    const report = evaluateMajorityBaseline(cohort, cohort);
    assertClose(report.knnAccuracy, 60 / 120);
    assertClose(report.knnQuadraticWeightedKappa, 0);
    assertClose(report.precisionAt10ByGrade['0']!.value, 1);
    assertClose(report.precisionAt10ByGrade['4']!.value, 0);
  });
});
