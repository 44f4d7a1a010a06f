import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refineQuery } from './feedback.service.js';

describe('refineQuery (Rocchio)', () => {
  const close = (actual: Float32Array, expected: number[]) => expected.forEach((value, index) => assert.ok(Math.abs(actual[index]! - value) < 1e-6, `${Array.from(actual)} vs ${expected}`));

  it('moves the query towards the mean of the relevant and away from the mean of the others, at unit length', () => {
    // q = (1, 0, 0); relevant (0, 1, 0) and (0, 0, 1); not relevant (1, 0, 0) * -1 ... weights 1, 1, 0.5.
    const refined = refineQuery(Float32Array.from([1, 0, 0]), [Float32Array.from([0, 1, 0]), Float32Array.from([0, 0, 1])], [Float32Array.from([-1, 0, 0])], { alpha: 1, beta: 1, gamma: 0.5 });
    // 1*(1,0,0) + 1*(0, 0.5, 0.5) - 0.5*(-1, 0, 0) = (1.5, 0.5, 0.5); norm sqrt(2.75)
    const norm = Math.sqrt(2.75);
    close(refined, [1.5 / norm, 0.5 / norm, 0.5 / norm]);
  });

  it('without marks of a kind leaves that term out', () => {
    close(refineQuery(Float32Array.from([0, 1]), [], [Float32Array.from([1, 0])], { alpha: 1, beta: 1, gamma: 1 }), [-1 / Math.SQRT2, 1 / Math.SQRT2]);
    close(refineQuery(Float32Array.from([0, 1]), [], [], { alpha: 1, beta: 1, gamma: 1 }), [0, 1]);
  });

  it('keeps the query when the terms cancel to zero instead of returning a zero vector', () => {
    close(refineQuery(Float32Array.from([1, 0]), [], [Float32Array.from([1, 0])], { alpha: 1, beta: 0, gamma: 1 }), [1, 0]);
  });
});
