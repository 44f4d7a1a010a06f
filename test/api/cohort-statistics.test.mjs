// Researcher cohort statistics through the real server on both databases, over the synthetic demo cohort: figures
// checked against the raw tables (not the eye_summary the service reads), disclosure control (small cohorts,
// small cells, differencing), the Kaplan-Meier curve against the survival module on independently read times,
// eye_summary kept current by its triggers, and bad input with stable codes and nothing written.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, repositoryRoot, startApi } from '../support/backends.mjs';

const { kaplanMeier } = await import(path.join(repositoryRoot, 'apps/api/dist/statistics/survival.js'));
const K = 5;
const STATISTICS = `query C($filter: CohortFilterInput, $k: Int, $w: WorseningInput) { cohortStatistics(filter: $filter, k: $k, timeToWorsening: $w) {
  patients eyes minimumCellSize
  gradeDistributions { name rows columns cells rowTotals columnTotals total suppressedCells csv }
  transitionMatrix { name rows columns cells rowTotals columnTotals total suppressedCells csv }
  treatments { counts { rows cells columnTotals } injectionsPerPatientYear { n median lowerQuartile upperQuartile withheld } }
  hba1cByGrade { group n median lowerQuartile upperQuartile withheld }
  timeToWorsening { event curves { stratum withheld eyes events steps { time survival lower upper } numbersAtRisk { time atRisk } censorTimes truncatedAt } logRank { chiSquare degreesOfFreedom pValue strata } undatedEyesExcluded }
} }`;

/** Baseline and latest grade per eye straight from photographs and visits (independent of eye_summary). */
async function eyesFromRawTables(db) {
  return db.sql.query(`
    WITH vg AS (SELECT i.patient_id, i.eye, v.visit_date, max(i.dr_grade) AS grade FROM fundus_image i JOIN visit v ON v.id = i.visit_id WHERE i.dr_grade IS NOT NULL GROUP BY 1, 2, 3)
    SELECT patient_id::text AS patient_id, eye::text AS eye,
           (SELECT grade FROM vg x WHERE x.patient_id = vg.patient_id AND x.eye = vg.eye ORDER BY visit_date LIMIT 1) AS baseline,
           (SELECT grade FROM vg x WHERE x.patient_id = vg.patient_id AND x.eye = vg.eye ORDER BY visit_date DESC LIMIT 1) AS latest,
           min(visit_date)::text AS first, max(visit_date)::text AS last
    FROM vg GROUP BY patient_id, eye`);
}

for (const backend of BACKENDS) {
  describe(`cohort statistics on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let all;
    const ask = (variables, as = 'demo-researcher') => api.graphql(STATISTICS, variables, { as });
    before(async () => {
      api = await startApi(backend, { cohort: 'demo-clinic' });
      const { body } = await ask({ filter: {}, w: { event: 'ONE_STEP', stratifyBy: 'BASELINE_GRADE' } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      all = body.data.cohortStatistics;
    });
    after(async () => api?.close());

    test('counts match the raw tables: patients, eyes, and the baseline and latest grade of every eye', async () => {
      const eyes = await eyesFromRawTables(api.db);
      assert.equal(all.eyes, eyes.length);
      assert.equal(all.patients, new Set(eyes.map((eye) => eye.patient_id)).size);
      const baseline = all.gradeDistributions.find((table) => table.name === 'grade-per-eye-baseline-by-all');
      const latest = all.gradeDistributions.find((table) => table.name === 'grade-per-eye-latest-by-all');
      assert.deepEqual(baseline.cells[0], [0, 1, 2, 3, 4].map((grade) => eyes.filter((eye) => eye.baseline === grade).length));
      assert.deepEqual(latest.cells[0], [0, 1, 2, 3, 4].map((grade) => eyes.filter((eye) => eye.latest === grade).length));
      // The transition matrix's shown cells are the raw counts.
      all.transitionMatrix.cells.forEach((row, from) => row.forEach((cell, to) => {
        if (cell !== null) assert.equal(cell, eyes.filter((eye) => eye.baseline === from && eye.latest === to).length, `${from}->${to}`);
      }));
      const worse = new Map();
      for (const eye of eyes) worse.set(eye.patient_id, Math.max(worse.get(eye.patient_id) ?? 0, eye.baseline));
      const perPatient = all.gradeDistributions.find((table) => table.name === 'grade-per-patient-baseline-by-all');
      assert.deepEqual(perPatient.cells[0], [0, 1, 2, 3, 4].map((grade) => [...worse.values()].filter((value) => value === grade).length));
    });

    test('no shown count is 1 to k-1 (2k-2 for eyes), every suppressed cell has company in its row and column, and CSV says suppressed', () => {
      for (const table of [...all.gradeDistributions, all.transitionMatrix]) {
        const threshold = table.name.includes('per-patient') ? K : 2 * K - 1;
        for (const value of [...table.cells.flat(), ...table.rowTotals, ...table.columnTotals]) {
          if (value !== null) assert.ok(value === 0 || value >= threshold, `${table.name}: ${value} shown`);
        }
        table.cells.forEach((row, r) => {
          const hidden = row.filter((cell) => cell === null).length + (table.rowTotals[r] === null ? 1 : 0);
          assert.ok(hidden === 0 || hidden >= 2, `${table.name} row ${r} has a lone suppressed entry`);
        });
        const csvCells = table.csv.trim().split('\n').slice(1, -1).flatMap((line) => line.split(',').slice(1, -1));
        assert.equal(csvCells.filter((cell) => cell === 'suppressed').length, table.suppressedCells);
      }
    });

    test('the Kaplan-Meier curve of each baseline grade is the survival module on times read from the raw tables', async () => {
      const eyes = await eyesFromRawTables(api.db);
      const visits = await api.db.sql.query(`SELECT i.patient_id::text AS patient_id, i.eye::text AS eye, v.visit_date::text AS date, max(i.dr_grade) AS grade FROM fundus_image i JOIN visit v ON v.id = i.visit_id WHERE i.dr_grade IS NOT NULL GROUP BY 1, 2, 3`);
      const days = (from, to) => (Date.parse(to) - Date.parse(from)) / 86_400_000;
      const shown = all.timeToWorsening.curves.filter((curve) => !curve.withheld);
      assert.ok(shown.length >= 2, 'at least two strata shown');
      for (const curve of shown) {
        const grade = Number(curve.stratum);
        const observations = eyes.filter((eye) => eye.baseline === grade && grade < 4).map((eye) => {
          const worse = visits.filter((visit) => visit.patient_id === eye.patient_id && visit.eye === eye.eye && visit.date > eye.first && visit.grade >= grade + 1).map((visit) => visit.date).sort()[0];
          return { time: days(eye.first, worse ?? eye.last) / 365.25, event: Boolean(worse) };
        });
        assert.equal(curve.eyes, observations.length);
        const reference = kaplanMeier(observations);
        for (const step of curve.steps) {
          const at = reference.steps.filter((candidate) => candidate.time <= step.time + 1e-9).at(-1);
          assert.ok(Math.abs(at.survival - step.survival) <= 0.0005 + 1e-9, `grade ${grade} at ${step.time}: ${step.survival} vs ${at.survival}`);
        }
        for (const mark of curve.numbersAtRisk) assert.ok(mark.atRisk === 'hidden' || /^<\d+$/.test(mark.atRisk) || Number(mark.atRisk) >= 2 * K - 1 || Number(mark.atRisk) === 0, mark.atRisk);
      }
      assert.ok(all.timeToWorsening.logRank.pValue >= 0 && all.timeToWorsening.logRank.pValue <= 1);
      assert.equal(all.timeToWorsening.logRank.strata.length, shown.length);
    });

    test('a small cohort, an empty one and a differencing pair are refused with their own codes; repeating a cohort is fine', async () => {
      const small = await ask({ filter: { drGrades: [4], ageBands: ['UNDER_40'], sexes: ['OTHER'] } });
      assert.ok(['COHORT_TOO_SMALL', 'EMPTY_COHORT'].includes(small.body.errors?.[0]?.extensions?.code), JSON.stringify(small.body));
      const empty = await ask({ filter: { datasets: ['no-such-dataset'] } });
      assert.equal(empty.body.errors?.[0]?.extensions?.code, 'EMPTY_COHORT');
      // Two patients of another dataset: "everyone" and "everyone in demo-clinic" now differ by 2 < k.
      await api.db.sql.exec(`
        INSERT INTO dataset (id, name) VALUES ('00000000-0000-4000-8000-00000000d001', 'other-clinic');
        INSERT INTO patient (id, dataset_id, mrn, mrn_system, sex) VALUES ('00000000-0000-4000-8000-00000000d101', '00000000-0000-4000-8000-00000000d001', 'O-1', 'urn:test:other', 'FEMALE'), ('00000000-0000-4000-8000-00000000d102', '00000000-0000-4000-8000-00000000d001', 'O-2', 'urn:test:other', 'MALE');
        INSERT INTO visit (id, patient_id, visit_date) VALUES ('00000000-0000-4000-8000-00000000d201', '00000000-0000-4000-8000-00000000d101', '2020-01-01'), ('00000000-0000-4000-8000-00000000d202', '00000000-0000-4000-8000-00000000d102', '2020-01-01');
        INSERT INTO image_blob (sha256, mime_type, byte_size, bytes) VALUES (repeat('d1', 32), 'image/png', 1, '\\x00'), (repeat('d2', 32), 'image/png', 1, '\\x00');
        INSERT INTO fundus_image (visit_id, patient_id, eye, content_hash, width, height, dr_grade) VALUES ('00000000-0000-4000-8000-00000000d201', '00000000-0000-4000-8000-00000000d101', 'LEFT', repeat('d1', 32), 10, 10, 3), ('00000000-0000-4000-8000-00000000d202', '00000000-0000-4000-8000-00000000d102', 'LEFT', repeat('d2', 32), 10, 10, 1);`);
      const [{ n: summarised }] = await api.db.sql.query('SELECT count(DISTINCT patient_id)::int AS n FROM eye_summary');
      assert.equal(summarised, all.patients + 2, 'the triggers added the two new patients to eye_summary');
      // "Everyone" now differs by 2 (< k) from "everyone" asked before: the two newcomers would show. Refused.
      const everyone = await ask({ filter: {} });
      assert.equal(everyone.body.errors?.[0]?.extensions?.code, 'COHORT_OVERLAP', JSON.stringify(everyone.body.errors));
      // The same 200 patients as before (difference 0) are answered again.
      const same = await ask({ filter: { datasets: ['demo-clinic'] } });
      assert.equal(same.body.errors, undefined, JSON.stringify(same.body.errors));
      assert.equal(same.body.data.cohortStatistics.patients, all.patients);
      // The newcomers alone are too few.
      const newcomers = await ask({ filter: { datasets: ['other-clinic'] } });
      assert.equal(newcomers.body.errors?.[0]?.extensions?.code, 'COHORT_TOO_SMALL');
    });

    test('eye_summary follows a new grading at once (statement triggers), and a visit-date range recomputes from the visits', async () => {
      const [target] = await api.db.sql.query("SELECT i.id::text AS id, i.dr_grade FROM fundus_image i JOIN patient p ON p.id = i.patient_id JOIN dataset d ON d.id = p.dataset_id WHERE d.name = 'demo-clinic' AND i.dr_grade < 4 ORDER BY i.id LIMIT 1");
      const { body } = await api.graphql(`mutation { recordGrading(input: { caseId: "${target.id}", drGrade: 4 }) { referenceGrading { drGrade } } }`, {}, { as: 'demo-clinician' });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const [summary] = await api.db.sql.query('SELECT e.grade_mask FROM eye_summary e JOIN fundus_image i ON i.patient_id = e.patient_id AND i.eye = e.eye WHERE i.id = $1', [target.id]);
      assert.ok((summary.grade_mask & 16) !== 0, 'grade 4 now among the eye’s grades');
      const full = await ask({ filter: { visitsFrom: '1900-01-01', visitsTo: '2100-01-01', datasets: ['demo-clinic'], diabetesTypes: ['TYPE_2'] } });
      const plain = await ask({ filter: { datasets: ['demo-clinic'], diabetesTypes: ['TYPE_2'] } });
      assert.equal(full.body.errors, undefined, JSON.stringify(full.body.errors));
      assert.deepEqual(full.body.data.cohortStatistics.gradeDistributions, plain.body.data.cohortStatistics.gradeDistributions);
    });

    test('only researchers and admins may ask, and the answer names no patient', async () => {
      const refused = await ask({ filter: {} }, 'demo-clinician');
      assert.equal(refused.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
      assert.equal((await ask({ filter: {} }, 'demo-ehr')).body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
      const patients = await api.db.sql.query('SELECT id::text AS id, mrn, birth_year FROM patient');
      const text = JSON.stringify(all);
      for (const patient of patients) {
        assert.equal(text.includes(patient.id), false);
        assert.equal(text.includes(`"${patient.mrn}"`), false);
      }
      assert.equal(/\d{4}-\d{2}-\d{2}/.test(text), false, 'no date anywhere in the answer');
    });

    const BAD = [
      { name: 'k below the minimum', variables: { filter: {}, k: 1 }, code: 'BAD_USER_INPUT', field: 'k' },
      { name: 'k above 100', variables: { filter: {}, k: 101 }, code: 'BAD_USER_INPUT', field: 'k' },
      { name: 'a reversed date range', variables: { filter: { visitsFrom: '2022-01-01', visitsTo: '2020-01-01' } }, code: 'BAD_USER_INPUT', reason: 'REVERSED_RANGE' },
      { name: 'a reversed duration range', variables: { filter: { diabetesDurationMinYears: 20, diabetesDurationMaxYears: 5 } }, code: 'BAD_USER_INPUT', reason: 'REVERSED_RANGE' },
      { name: 'an empty grade list', variables: { filter: { drGrades: [] } }, code: 'BAD_USER_INPUT', reason: 'CONTRADICTORY_FILTERS' },
      { name: 'gradeAt without grades', variables: { filter: { gradeAt: 'ANY_VISIT' } }, code: 'BAD_USER_INPUT', reason: 'CONTRADICTORY_FILTERS' },
      { name: 'a grade of 7', variables: { filter: { drGrades: [7] } }, code: 'BAD_USER_INPUT' },
      { name: 'SQL as a dataset name', variables: { filter: { datasets: ["x'; DROP TABLE patient;--"] } }, code: 'BAD_USER_INPUT' },
      { name: 'HTML as a dataset name', variables: { filter: { datasets: ['<script>alert(1)</script>'] } }, code: 'BAD_USER_INPUT' },
      { name: 'an unknown stratum', variables: { filter: {}, w: { event: 'ONE_STEP', stratifyBy: 'PATIENT_ID' } }, code: 'BAD_USER_INPUT' },
      { name: 'an unknown event', variables: { filter: {}, w: { event: 'DEATH' } }, code: 'BAD_USER_INPUT' },
      { name: 'a future start date', variables: { filter: { visitsFrom: '2999-01-01' } }, code: 'BAD_USER_INPUT', reason: 'CONTRADICTORY_FILTERS' },
    ];
    for (const row of BAD) {
      test(`${row.name} -> ${row.code}, nothing written but the audit row`, async () => {
        const before = await countRows(api.db);
        const [{ n: remembered }] = await api.db.sql.query('SELECT count(*)::int AS n FROM researcher_cohort');
        const { body, headers } = await api.graphql(STATISTICS, row.variables, { as: 'demo-researcher' });
        assert.equal(body.errors?.[0]?.extensions?.code, row.code, JSON.stringify(body.errors));
        if (row.field) assert.equal(body.errors[0].extensions.field, row.field);
        if (row.reason) assert.equal(body.errors[0].extensions.reason, row.reason);
        assert.deepEqual(await countRows(api.db), before);
        assert.equal((await api.db.sql.query('SELECT count(*)::int AS n FROM researcher_cohort'))[0].n, remembered);
        const audit = await api.db.sql.query('SELECT outcome FROM audit_event WHERE request_id = $1', [headers.get('x-request-id')]);
        assert.deepEqual(audit.map((entry) => entry.outcome), [row.code]);
      });
    }
  });
}
