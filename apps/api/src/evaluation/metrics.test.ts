import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accuracy,
  authorsAveragePrecisionAtK,
  averagePrecisionAtR,
  hitNormalisedAveragePrecisionAtK,
  macroAverage,
  majorityVoteGrade,
  precisionAtK,
  quadraticWeightedKappa,
} from './metrics.js';

const T = true;
const F = false;

function assertClose(actual: number, expected: number, label = ''): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${label} ${actual} != ${expected}`);
}

/** Plain-loop AP@R straight from the definition, to compare with the running-sum implementation. */
function averagePrecisionAtRByDefinition(relevance: boolean[], r: number): number {
  let total = 0;
  for (let i = 1; i <= r; i += 1) if (relevance[i - 1]) total += precisionAtK(relevance, i);
  return total / r;
}

describe('precisionAtK', () => {
  it('counts relevant items in the top k and divides by k, even when fewer than k are ranked', () => {
    const relevance = [T, F, T, F, F, T];
    assertClose(precisionAtK(relevance, 1), 1);
    assertClose(precisionAtK(relevance, 5), 0.4);
    assertClose(precisionAtK(relevance, 10), 0.3);
    assertClose(precisionAtK([F, T], 1), 0);
  });

  it('rejects k < 1', () => {
    assert.throws(() => precisionAtK([T], 0), RangeError);
  });
});

describe('averagePrecisionAtR (MAP@R per query)', () => {
  it('matches hand-computed values', () => {
    // R = 4: hits at ranks 1 and 3 within the first 4 -> (1/1 + 2/3) / 4
    assertClose(averagePrecisionAtR([T, F, T, F, F, T], 4), (1 + 2 / 3) / 4);
    assertClose(averagePrecisionAtR([T, T, T], 3), 1);
    assertClose(averagePrecisionAtR([T, F, F, F, F, F, F, F, F, F], 5), 0.2);
    assertClose(averagePrecisionAtR([F, T], 1), 0);
  });

  it('agrees with a plain loop over the definition', () => {
    const relevance = [F, T, T, F, T, F, F, T, T, F, T, F];
    for (const r of [1, 2, 5, 8, 12]) assertClose(averagePrecisionAtR(relevance, r), averagePrecisionAtRByDefinition(relevance, r), `R=${r}`);
  });

  it('is undefined without relevant items', () => {
    assert.throws(() => averagePrecisionAtR([F], 0), RangeError);
  });
});

describe('authorsAveragePrecisionAtK (FundusDR mAP@10: normalised by k)', () => {
  it('sums precision at each hit in the top 10 and divides by 10', () => {
    // hits at ranks 1, 3, 6: (1 + 2/3 + 3/6) / 10
    assertClose(authorsAveragePrecisionAtK([T, F, T, F, F, T]), (1 + 2 / 3 + 0.5) / 10);
    assertClose(authorsAveragePrecisionAtK([T, F, F, F, F, F, F, F, F, F]), 0.1);
    assertClose(authorsAveragePrecisionAtK(Array(10).fill(T)), 1);
    assertClose(authorsAveragePrecisionAtK([F, F, F, F, F, F, F, F, F, F, T]), 0, 'hit at rank 11 is outside');
    assertClose(authorsAveragePrecisionAtK([F, T], 2), 0.25);
  });
});

describe('hitNormalisedAveragePrecisionAtK', () => {
  it('averages precision at each hit over the hits found in the top 10', () => {
    assertClose(hitNormalisedAveragePrecisionAtK([T, F, T, F, F, T]), (1 + 2 / 3 + 0.5) / 3);
    // a single hit at rank 1 scores 1.0 although P@10 is 0.1: the variant's optimism
    assertClose(hitNormalisedAveragePrecisionAtK([T, F, F, F, F, F, F, F, F, F]), 1);
    assertClose(hitNormalisedAveragePrecisionAtK([F, F, F, F, F, F, F, F, F, F, T]), 0, 'no hit in the top 10');
    assertClose(hitNormalisedAveragePrecisionAtK([F, T]), 0.5);
  });
});

describe('majorityVoteGrade', () => {
  it('takes the most frequent grade and breaks ties by the best-ranked tied grade', () => {
    assert.equal(majorityVoteGrade([0, 3, 3]), 3);
    assert.equal(majorityVoteGrade([2, 1, 1, 2, 0]), 2);
    assert.equal(majorityVoteGrade([1, 2, 2, 1, 0]), 1);
    assert.equal(majorityVoteGrade([4]), 4);
    assert.equal(majorityVoteGrade([]), undefined);
  });
});

describe('quadraticWeightedKappa', () => {
  it('matches a hand-computed 3-class example', () => {
    // O: (0,0) (1,2) (2,2); sum W*O = 1/4; sum W*E = 3.75 / 3 = 1.25; kappa = 1 - 0.25 / 1.25
    assertClose(quadraticWeightedKappa([0, 1, 2], [0, 2, 2], 3), 0.8);
  });

  it('is 1 for perfect agreement and -1 for the reversed 5-grade scale', () => {
    assertClose(quadraticWeightedKappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]), 1);
    assertClose(quadraticWeightedKappa([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]), -1);
  });

  it('is 0 for a constant prediction and NaN where undefined', () => {
    assertClose(quadraticWeightedKappa([0, 1, 2, 4], [0, 0, 0, 0]), 0);
    assert.ok(Number.isNaN(quadraticWeightedKappa([2, 2], [2, 2])));
    assert.ok(Number.isNaN(quadraticWeightedKappa([], [])));
  });

  it('rejects grades outside 0..4', () => {
    assert.throws(() => quadraticWeightedKappa([0, 5], [0, 1]), RangeError);
  });
});

describe('accuracy and macroAverage', () => {
  it('computes accuracy', () => {
    assertClose(accuracy([0, 1, 2, 2], [0, 1, 1, 2]), 0.75);
  });

  it('averages per group, then over groups present (not over items)', () => {
    const { perGroup, macro } = macroAverage([1, 0.8, 0.2, 0.6], [0, 0, 0, 3]);
    assertClose(perGroup.get(0)?.mean ?? Number.NaN, 2 / 3);
    assert.equal(perGroup.get(0)?.count, 3);
    assertClose(perGroup.get(3)?.mean ?? Number.NaN, 0.6);
    assert.equal(perGroup.has(1), false);
    assertClose(macro, (2 / 3 + 0.6) / 2);
  });
});
