import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calibrateVote, decideGrade, expectedCalibrationError, negativeLogLikelihood, referableProbability, voteOfNeighbours, type VoteRule } from './grade-suggestion.js';
import { loadReuseCalibration, serialiseReuseCalibration } from './reuse-calibration.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const close = (actual: number, expected: number, label = '') => assert.ok(Math.abs(actual - expected) < 1e-9, `${label} ${actual} != ${expected}`);
const rule = (overrides: Partial<VoteRule>): VoteRule => ({ neighbours: 3, weighting: 'uniform', softmaxTemperature: null, decision: 'argmax', ...overrides });

describe('voteOfNeighbours', () => {
  const neighbours = [
    { similarity: 0.9, grade: 2 },
    { similarity: 0.8, grade: null },
    { similarity: 0.6, grade: 0 },
    { similarity: 0.3, grade: 2 },
    { similarity: 0.2, grade: 4 },
  ];
  it('counts the first n graded neighbours, skipping the ungraded', () => {
    const vote = voteOfNeighbours(neighbours, rule({}));
    assert.equal(vote.voters, 3);
    assert.deepEqual(vote.counts, [1, 0, 2, 0, 0]);
    [1 / 3, 0, 2 / 3, 0, 0].forEach((share, grade) => close(vote.shares[grade]!, share, `grade ${grade}`));
  });
  it('weights by cosine, and by a softmax of it', () => {
    const byCosine = voteOfNeighbours(neighbours, rule({ weighting: 'similarity' }));
    close(byCosine.shares[2]!, 1.2 / 1.8);
    close(byCosine.shares[0]!, 0.6 / 1.8);
    const bySoftmax = voteOfNeighbours(neighbours, rule({ weighting: 'softmax', softmaxTemperature: 0.1 }));
    const [a, b, c] = [Math.exp(9), Math.exp(6), Math.exp(3)];
    close(bySoftmax.shares[2]!, (a + c) / (a + b + c));
  });
  it('falls back to head counts when every cosine weight is zero, and is empty without graded neighbours', () => {
    const negative = voteOfNeighbours([{ similarity: -0.2, grade: 1 }, { similarity: -0.5, grade: 3 }], rule({ weighting: 'similarity' }));
    assert.deepEqual(negative.shares, [0, 0.5, 0, 0.5, 0]);
    assert.equal(voteOfNeighbours([{ similarity: 1, grade: null }], rule({})).voters, 0);
  });
});

describe('calibration and decision', () => {
  it('calibrateVote is (share + smoothing)^(1/T), normalised; T = 1 with no smoothing is the vote itself', () => {
    const probabilities = calibrateVote([0.5, 0.5, 0, 0, 0], { temperature: 2, smoothing: 0.1 });
    const raw = [0.6 ** 0.5, 0.6 ** 0.5, 0.1 ** 0.5, 0.1 ** 0.5, 0.1 ** 0.5];
    const total = raw.reduce((a, b) => a + b, 0);
    probabilities.forEach((p, grade) => close(p, raw[grade]! / total));
    calibrateVote([0.2, 0.8, 0, 0, 0], { temperature: 1, smoothing: 1e-12 }).forEach((p, grade) => close(p, [0.2, 0.8, 0, 0, 0][grade]!, String(grade)));
  });
  it('decides the argmax (ties to the lower grade) or the ordinal median', () => {
    assert.equal(decideGrade([0.3, 0.3, 0.4, 0, 0], 'argmax'), 2);
    assert.equal(decideGrade([0.4, 0.4, 0.2, 0, 0], 'argmax'), 0);
    assert.equal(decideGrade([0.45, 0, 0.1, 0, 0.45], 'median'), 2);
    assert.equal(decideGrade([0.45, 0, 0.1, 0, 0.45], 'argmax'), 0);
  });
  it('referableProbability sums grades 2-4; NLL and ECE match hand computations', () => {
    close(referableProbability([0.1, 0.2, 0.3, 0.25, 0.15]), 0.7);
    close(negativeLogLikelihood([[0.5, 0.5, 0, 0, 0], [0.25, 0.75, 0, 0, 0]], [0, 1]), -(Math.log(0.5) + Math.log(0.75)) / 2);
    // Two in bin 0.9 (one right), one in bin 0.5 (right): |0.5 - 0.95| * 2/3 + |1 - 0.55| * 1/3.
    const { ece, bins } = expectedCalibrationError([0.9, 1.0, 0.55], [true, false, true]);
    close(ece, (0.45 * 2) / 3 + 0.45 / 3);
    assert.equal(bins[9]!.count, 2);
    assert.equal(bins[5]!.count, 1);
  });
});

describe('reuse calibration file', () => {
  it('round-trips, and names the problem when missing or malformed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reuse-calibration-'));
    const file = path.join(dir, 'reuse.json');
    assert.match(loadReuseCalibration(file).problem ?? '', /no reuse calibration file/);
    const fitted = { modelVersion: '1.0.0+wabc', rule: rule({ neighbours: 15, decision: 'median' }), calibration: { temperature: 1.1, smoothing: 0.03 }, minimumConfidence: 0.47, referableThreshold: 0.24 };
    fs.writeFileSync(file, serialiseReuseCalibration(fitted, { note: 'test' }));
    assert.deepEqual(loadReuseCalibration(file).calibration, { ...fitted, source: file });
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(serialiseReuseCalibration(fitted, {})), minimumConfidence: 2 }));
    assert.match(loadReuseCalibration(file).problem ?? '', /malformed: minimumConfidence/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  it('the committed calibration parses and names the shipped model version', () => {
    const committed = loadReuseCalibration(path.join(import.meta.dirname, '..', '..', '..', '..', '..', 'models', 'fundus-cbr.reuse.json'));
    assert.equal(committed.problem, null);
    assert.match(committed.calibration!.modelVersion, /^\d+\.\d+\.\d+\+w[0-9a-f]{8}$/);
  });
});
