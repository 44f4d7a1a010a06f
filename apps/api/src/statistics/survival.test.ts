// Reference values: reference/survival-reference.json, made from the repository root by
//   /usr/bin/python3 apps/api/src/statistics/reference/survival_reference.py > apps/api/src/statistics/reference/survival-reference.json
// (Debian 12 python3-statsmodels 0.13.5; the script says what statsmodels computes and what is built around it).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createRandom } from '../fixtures/random.js';
import {
  chiSquareSurvival,
  criticalValueForConfidence,
  kaplanMeier,
  logRankTest,
  type KaplanMeierStep,
  type SurvivalObservation,
} from './survival.js';

const REFERENCE_TOLERANCE = 1e-6;
const Z95 = 1.959963984540054;

interface KaplanMeierFixture {
  name: string;
  observations: SurvivalObservation[];
  marks: number[];
  confidence: number;
  expected: {
    steps: KaplanMeierStep[];
    censorTimes: { time: number; count: number }[];
    atMarks: { time: number; atRisk: number; survival: number }[];
    median: number | null;
    medianAtExactHalf: boolean;
  };
}

interface LogRankFixture {
  name: string;
  groups: SurvivalObservation[][];
  expected: {
    observed: number[];
    expected: number[];
    covarianceWithoutFirstGroup: number[][];
    statistic: number;
    degreesOfFreedom: number;
    pValue: number;
  };
}

const reference = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../src/statistics/reference/survival-reference.json', import.meta.url)), 'utf8'),
) as { kaplanMeier: KaplanMeierFixture[]; logRank: LogRankFixture[] };

function assertClose(actual: number | null, expected: number | null, label: string, tolerance = REFERENCE_TOLERANCE): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, `${label}: ${actual} != ${expected}`);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= tolerance, `${label}: ${actual} != ${expected}`);
}

const observationsOf = (times: number[], events: boolean[]): SurvivalObservation[] =>
  times.map((time, i) => ({ time, event: events[i]! }));
const T = true;
const F = false;

describe('kaplanMeier against statsmodels SurvfuncRight', () => {
  for (const fixture of reference.kaplanMeier) {
    it(`matches every value to 1e-6: ${fixture.name}`, () => {
      const curve = kaplanMeier(fixture.observations, { marks: fixture.marks, confidence: fixture.confidence });
      assert.equal(curve.steps.length, fixture.expected.steps.length, 'number of event times');
      fixture.expected.steps.forEach((expected, i) => {
        const actual = curve.steps[i]!;
        const at = `step ${i} (t=${expected.time})`;
        assertClose(actual.time, expected.time, `${at} time`);
        assert.equal(actual.atRisk, expected.atRisk, `${at} atRisk`);
        assert.equal(actual.events, expected.events, `${at} events`);
        assert.equal(actual.censored, expected.censored, `${at} censored`);
        assertClose(actual.survival, expected.survival, `${at} survival`);
        assertClose(actual.standardError, expected.standardError, `${at} standardError`);
        assertClose(actual.lower, expected.lower, `${at} lower`);
        assertClose(actual.upper, expected.upper, `${at} upper`);
      });
      assert.deepEqual(curve.censorTimes.map((c) => c.count), fixture.expected.censorTimes.map((c) => c.count));
      curve.censorTimes.forEach((c, i) => assertClose(c.time, fixture.expected.censorTimes[i]!.time, `censor time ${i}`));
      assert.equal(curve.atMarks.length, fixture.expected.atMarks.length);
      fixture.expected.atMarks.forEach((expected, i) => {
        assert.equal(curve.atMarks[i]!.time, expected.time);
        assert.equal(curve.atMarks[i]!.atRisk, expected.atRisk, `atRisk at mark ${expected.time}`);
        assertClose(curve.atMarks[i]!.survival, expected.survival, `survival at mark ${expected.time}`);
      });
      // statsmodels takes the next event time where S is exactly 0.5; R/SAS (and this module) the midpoint,
      // checked by hand below.
      if (!fixture.expected.medianAtExactHalf) assertClose(curve.median, fixture.expected.median, 'median');
      assert.equal(curve.observations, fixture.observations.length);
      assert.equal(curve.events, fixture.observations.filter((o) => o.event).length);
    });
  }

  it('has every fixture the brief asks for', () => {
    const names = reference.kaplanMeier.map((f) => f.name).join('\n');
    for (const scenario of ['ties of events', 'censoring at an event time', 'all censored', 'all events', 'one patient', 'reaches 0', '200 eyes']) {
      assert.ok(names.includes(scenario), scenario);
    }
  });
});

describe('logRankTest against statsmodels survdiff', () => {
  for (const fixture of reference.logRank) {
    it(`matches O, E, covariance, chi-square and p to 1e-6: ${fixture.name}`, () => {
      const result = logRankTest(fixture.groups);
      result.groups.forEach((group, g) => {
        assertClose(group.observed, fixture.expected.observed[g]!, `observed ${g}`);
        assertClose(group.expected, fixture.expected.expected[g]!, `expected ${g}`);
        assert.equal(group.observations, fixture.groups[g]!.length);
      });
      fixture.expected.covarianceWithoutFirstGroup.forEach((row, i) =>
        row.forEach((value, j) => assertClose(result.covariance[i + 1]![j + 1]!, value, `covariance ${i + 1},${j + 1}`)),
      );
      assertClose(result.statistic, fixture.expected.statistic, 'statistic');
      assert.equal(result.degreesOfFreedom, fixture.expected.degreesOfFreedom);
      assertClose(result.pValue, fixture.expected.pValue, 'pValue');
    });
  }
});

describe('kaplanMeier by hand', () => {
  // times 1 2 2+ 3 4+: n = 5, 4, 2 at the event times 1, 2, 3.
  const handExample = observationsOf([1, 2, 2, 3, 4], [T, T, F, T, F]);

  it('multiplies (1 - d/n) over event times, with Greenwood errors and the log-log interval', () => {
    const curve = kaplanMeier(handExample, { marks: [0, 2.5, 10] });
    assert.deepEqual(curve.steps.map((s) => [s.time, s.atRisk, s.events, s.censored]), [[1, 5, 1, 0], [2, 4, 1, 1], [3, 2, 1, 0]]);
    const survival = [4 / 5, (4 / 5) * (3 / 4), (4 / 5) * (3 / 4) * (1 / 2)];
    const greenwood = [1 / 20, 1 / 20 + 1 / 12, 1 / 20 + 1 / 12 + 1 / 2];
    curve.steps.forEach((step, i) => {
      const s = survival[i]!;
      const logLogSe = Math.sqrt(greenwood[i]!) / -Math.log(s);
      assertClose(step.survival, s, `S ${i}`, 1e-12);
      assertClose(step.standardError, s * Math.sqrt(greenwood[i]!), `se ${i}`, 1e-12);
      assertClose(step.lower, Math.exp(-Math.exp(Math.log(-Math.log(s)) + Z95 * logLogSe)), `lower ${i}`, 1e-12);
      assertClose(step.upper, Math.exp(-Math.exp(Math.log(-Math.log(s)) - Z95 * logLogSe)), `upper ${i}`, 1e-12);
    });
    assertClose(curve.steps[0]!.survival, 0.8, 'S(1)', 1e-15);
    assertClose(curve.steps[2]!.standardError, 0.23875, 'se at 3 to 5 digits', 5e-6);
    assertClose(curve.steps[0]!.lower, 0.204, 'lower at 1 to 3 digits', 5e-4);
    assertClose(curve.steps[0]!.upper, 0.969, 'upper at 1 to 3 digits', 5e-4);
    assert.deepEqual(curve.atMarks.map((m) => [m.time, m.atRisk]), [[0, 5], [2.5, 2], [10, 0]]);
    curve.atMarks.forEach((m, i) => assertClose(m.survival, [1, 0.6, 0.3][i]!, `S at mark ${m.time}`, 1e-12));
    assert.deepEqual(curve.censorTimes, [{ time: 2, count: 1 }, { time: 4, count: 1 }]);
    assert.equal(curve.median, 3);
  });

  it('counts events before censorings at a tied time, so the censored eyes are still at risk', () => {
    const curve = kaplanMeier(observationsOf([1, 2, 2, 2], [T, T, F, F]));
    assert.deepEqual(curve.steps.map((s) => [s.atRisk, s.events, s.censored]), [[4, 1, 0], [3, 1, 2]]);
    assertClose(curve.steps[1]!.survival, 0.5, 'S(2) = 3/4 * 2/3 (0 if the censorings went first)', 1e-15);
  });

  it('reports S = 0 with null error and interval once every eye at risk has the event', () => {
    const curve = kaplanMeier(observationsOf([1, 2, 2], [T, T, T]));
    assert.deepEqual(curve.steps.at(-1), { time: 2, atRisk: 2, events: 2, censored: 0, survival: 0, standardError: null, lower: null, upper: null });
    assert.equal(curve.median, 2);
  });

  it('has no steps and no median when every eye is censored', () => {
    const curve = kaplanMeier(observationsOf([1, 1, 3], [F, F, F]), { marks: [1, 2] });
    assert.deepEqual(curve.steps, []);
    assert.equal(curve.median, null);
    assert.deepEqual(curve.censorTimes, [{ time: 1, count: 2 }, { time: 3, count: 1 }]);
    assert.deepEqual(curve.atMarks, [{ time: 1, atRisk: 3, survival: 1 }, { time: 2, atRisk: 1, survival: 1 }]);
  });

  it('takes the median at the midpoint of a flat at exactly 0.5 (R and SAS), up to the next event or the last follow-up', () => {
    assert.equal(kaplanMeier(observationsOf([1, 2, 3, 4], [T, T, T, T])).median, 2.5);
    assert.equal(kaplanMeier(observationsOf([1, 2, 3, 3], [T, T, F, F])).median, 2.5);
    assert.equal(kaplanMeier(observationsOf([1, 2, 6], [T, F, F])).median, null);
  });

  it('uses z for the requested confidence', () => {
    const narrow = kaplanMeier(handExample, { confidence: 0.8 }).steps[1]!;
    const wide = kaplanMeier(handExample, { confidence: 0.99 }).steps[1]!;
    assert.ok(wide.lower! < narrow.lower! && narrow.upper! < wide.upper!);
    assert.ok(narrow.lower! < narrow.survival && narrow.survival < narrow.upper!);
  });

  it('matches a plain loop over the definition on 600 eyes with many ties', () => {
    const random = createRandom(11);
    const observations = Array.from({ length: 600 }, () => ({ time: random.int(0, 30) / 4, event: random.next() < 0.6 }));
    const curve = kaplanMeier(observations);
    const eventTimes = [...new Set(observations.filter((o) => o.event).map((o) => o.time))].sort((a, b) => a - b);
    assert.equal(curve.steps.length, eventTimes.length);
    let survival = 1;
    let greenwood = 0;
    eventTimes.forEach((time, i) => {
      const atRisk = observations.filter((o) => o.time >= time).length;
      const events = observations.filter((o) => o.time === time && o.event).length;
      survival *= 1 - events / atRisk;
      greenwood += events / (atRisk * (atRisk - events));
      const step = curve.steps[i]!;
      assert.equal(step.atRisk, atRisk);
      assert.equal(step.events, events);
      assertClose(step.survival, survival, `S at ${time}`, 1e-12);
      if (survival > 0) assertClose(step.standardError, survival * Math.sqrt(greenwood), `se at ${time}`, 1e-12);
    });
  });
});

describe('logRankTest by hand', () => {
  // A: 1, 3; B: 2, 4+. At t = 1, 2, 3: (n_A, n_B, d) = (2, 2, 1), (1, 2, 1), (1, 1, 1).
  const groupA = observationsOf([1, 3], [T, T]);
  const groupB = observationsOf([2, 4], [T, F]);

  it('sums E = d n_g / n and the hypergeometric variance over event times', () => {
    const result = logRankTest([groupA, groupB]);
    const expectedA = 1 / 2 + 1 / 3 + 1 / 2;
    const variance = (1 * 3) / 3 * (2 / 4) * (2 / 4) + (1 * 2) / 2 * (1 / 3) * (2 / 3) + (1 * 1) / 1 * (1 / 2) * (1 / 2);
    assertClose(result.groups[0]!.expected, expectedA, 'E_A', 1e-12);
    assertClose(result.groups[1]!.expected, 3 - expectedA, 'E_B', 1e-12);
    assertClose(result.covariance[0]![0]!, variance, 'V_AA', 1e-12);
    assertClose(result.covariance[0]![1]!, -variance, 'V_AB', 1e-12);
    assertClose(result.statistic, 8 / 13, 'chi-square = (2/3)^2 / (13/18)', 1e-12);
    assert.equal(result.degreesOfFreedom, 1);
    assertClose(result.pValue, 0.43276758066778465, 'p', 1e-12);
  });

  it('is the same test whichever group comes first', () => {
    const groups = [groupA, groupB, observationsOf([1.5, 2, 5], [T, F, T])];
    const forward = logRankTest(groups);
    const backward = logRankTest([...groups].reverse());
    assert.equal(forward.degreesOfFreedom, 2);
    assertClose(backward.statistic, forward.statistic, 'statistic', 1e-12);
  });

  it('leaves out a group with E = 0 (empty, or never at risk at an event time) and lowers the degrees of freedom, as R does', () => {
    const twoGroups = logRankTest([groupA, groupB]);
    for (const idle of [[], observationsOf([0.5], [F])]) {
      const result = logRankTest([groupA, idle, groupB]);
      assert.equal(result.degreesOfFreedom, 1);
      assert.deepEqual(result.groups[1], { observations: idle.length, observed: 0, expected: 0 });
      assertClose(result.statistic, twoGroups.statistic, 'statistic', 1e-12);
    }
  });

  it('gives a null statistic when no event time carries information (every eye at risk has the event)', () => {
    const result = logRankTest([observationsOf([1], [T]), observationsOf([1], [T])]);
    assert.equal(result.statistic, null);
    assert.equal(result.pValue, null);
    const noEvents = logRankTest([observationsOf([1], [F]), observationsOf([2], [F])]);
    assert.equal(noEvents.statistic, null);
    assert.equal(noEvents.degreesOfFreedom, 0);
  });

  it('matches a plain loop over the definition for three groups with ties', () => {
    const random = createRandom(5);
    const groups = [0.1, 0.2, 0.35].map((hazard) =>
      Array.from({ length: 150 }, () => ({ time: random.int(0, 40) / 8, event: random.next() < hazard * 3 })),
    );
    const all = groups.flatMap((group, g) => group.map((o) => ({ ...o, g })));
    const times = [...new Set(all.filter((o) => o.event).map((o) => o.time))].sort((a, b) => a - b);
    const expected = [0, 0, 0];
    const variance = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (const time of times) {
      const atRisk = [0, 1, 2].map((g) => all.filter((o) => o.g === g && o.time >= time).length);
      const n = atRisk[0]! + atRisk[1]! + atRisk[2]!;
      const d = all.filter((o) => o.event && o.time === time).length;
      for (let g = 0; g < 3; g += 1) {
        expected[g]! += (d * atRisk[g]!) / n;
        for (let h = 0; h < 3; h += 1) {
          if (n > 1) variance[g]![h]! += ((d * (n - d)) / (n - 1)) * (atRisk[g]! / n) * ((g === h ? 1 : 0) - atRisk[h]! / n);
        }
      }
    }
    const result = logRankTest(groups);
    result.groups.forEach((group, g) => assertClose(group.expected, expected[g]!, `E ${g}`, 1e-9));
    result.covariance.forEach((row, g) => row.forEach((value, h) => assertClose(value, variance[g]![h]!, `V ${g},${h}`, 1e-9)));
  });
});

describe('chi-square survival and normal critical values', () => {
  it('agrees with closed forms and table values', () => {
    for (const x of [0.1, 1, 4, 25]) assertClose(chiSquareSurvival(x, 2), Math.exp(-x / 2), `df 2 at ${x}`, 1e-14);
    assertClose(chiSquareSurvival(Z95 ** 2, 1), 0.05, 'df 1 at z^2', 1e-14);
    assertClose(chiSquareSurvival(7.814728, 3), 0.05, 'df 3 table', 1e-7);
    assertClose(chiSquareSurvival(13.276704, 4), 0.01, 'df 4 table', 1e-7);
    assert.equal(chiSquareSurvival(0, 3), 1);
    // 2 Phi(-10) = 1.5239706e-23: the upper tail is computed directly, not as 1 - cdf (which would be 0).
    assert.ok(Math.abs(chiSquareSurvival(100, 1) / 1.5239706048320995e-23 - 1) < 1e-9);
    assertClose(criticalValueForConfidence(0.95), Z95, 'z 0.95', 1e-14);
    assertClose(criticalValueForConfidence(0.9), 1.6448536269514722, 'z 0.90', 1e-14);
    assertClose(criticalValueForConfidence(0.99), 2.5758293035489004, 'z 0.99', 1e-14);
  });
});

describe('input validation', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['no observations', () => kaplanMeier([]), /at least one observation/],
    ['negative time', () => kaplanMeier([{ time: 1, event: T }, { time: -1, event: F }]), /observations\[1\]\.time must be a finite number >= 0, got -1/],
    ['NaN time', () => kaplanMeier([{ time: Number.NaN, event: T }]), /observations\[0\]\.time .* got NaN/],
    ['infinite time', () => kaplanMeier([{ time: Number.POSITIVE_INFINITY, event: T }]), /got Infinity/],
    ['time as a string', () => kaplanMeier([{ time: '2' as unknown as number, event: T }]), /observations\[0\]\.time/],
    ['event not a boolean', () => kaplanMeier([{ time: 1, event: 1 as unknown as boolean }]), /observations\[0\]\.event must be true or false/],
    ['confidence 1', () => kaplanMeier([{ time: 1, event: T }], { confidence: 1 }), /confidence must lie strictly between 0 and 1/],
    ['confidence 95 (a percentage)', () => kaplanMeier([{ time: 1, event: T }], { confidence: 95 }), /confidence/],
    ['negative mark', () => kaplanMeier([{ time: 1, event: T }], { marks: [0, -1] }), /marks\[1\]/],
    ['one group', () => logRankTest([[{ time: 1, event: T }]]), /at least two groups, got 1/],
    ['bad time in group 1', () => logRankTest([[{ time: 1, event: T }], [{ time: -2, event: T }]]), /groups\[1\]\[0\]\.time/],
    ['negative chi-square', () => chiSquareSurvival(-1, 1), /must be >= 0/],
  ];
  for (const [name, run, message] of cases) {
    it(`rejects ${name} with a RangeError that says what to fix`, () => assert.throws(run, (error: unknown) => error instanceof RangeError && message.test(error.message)));
  }
});

describe('400k eyes (sanity check of O(n log n); the time is printed, not asserted)', () => {
  it('computes a curve and a 3-group log-rank test over 400,000 observations', (t) => {
    const random = createRandom(400_000);
    const groups = [0.05, 0.12, 0.3].map((hazard) =>
      Array.from({ length: 400_000 / 4 + (hazard === 0.05 ? 400_000 / 4 : 0) }, () => {
        const worsening = -Math.log(1 - random.next()) / hazard;
        const censoring = 0.5 + random.next() * 7.5;
        return { time: Math.ceil(Math.min(worsening, censoring) * 365) / 365, event: worsening <= censoring };
      }),
    );
    const all = groups.flat();
    assert.equal(all.length, 400_000);
    let started = performance.now();
    const curve = kaplanMeier(all, { marks: [0, 1, 2, 3, 4, 5, 6, 7, 8] });
    const curveMs = performance.now() - started;
    started = performance.now();
    const test = logRankTest(groups);
    const testMs = performance.now() - started;
    t.diagnostic(`kaplanMeier 400k: ${curveMs.toFixed(0)} ms (${curve.steps.length} event times); logRankTest 400k, 3 groups: ${testMs.toFixed(0)} ms`);
    assert.equal(curve.atMarks[0]!.atRisk, 400_000);
    for (let i = 1; i < curve.steps.length; i += 1) assert.ok(curve.steps[i]!.survival <= curve.steps[i - 1]!.survival);
    assert.equal(test.degreesOfFreedom, 2);
    assert.ok(test.pValue !== null && test.pValue < 1e-10);
  });
});
