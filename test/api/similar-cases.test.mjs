// similarCases returns the true top-k under every filter: compared with a brute-force cosine ranking computed
// here from the stored embeddings and records, on PGlite and on PostgreSQL + pgvector.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, startApi } from '../support/backends.mjs';

const SIMILAR = `query Similar($input: SimilarCasesInput!) {
  similarCases(input: $input) {
    modelVersion
    query { id patient { id } }
    hits { rank similarity case { id isSynthetic image { eye } patient { id sex birthYear } referenceGrading { drGrade } visit { date } treatments { type eye } followUp { treatments { type eye } } } }
  }
}`;

/** Everything the brute force needs, read straight from the tables. */
async function loadUniverse(db) {
  const rows = await db.sql.query(`
    SELECT fi.id, fi.patient_id, fi.eye::text AS eye, fi.dr_grade, p.sex::text AS sex, p.birth_year,
           EXTRACT(YEAR FROM v.visit_date)::int AS visit_year, e.embedding::text AS embedding, e.model_version
    FROM fundus_image fi JOIN patient p ON p.id = fi.patient_id JOIN visit v ON v.id = fi.visit_id
    JOIN image_embedding e ON e.image_id = fi.id`);
  const treatments = await db.sql.query(`SELECT patient_id, type::text AS type, eye::text AS eye FROM treatment`);
  return rows.map((row) => ({
    ...row,
    vector: JSON.parse(row.embedding),
    treatments: treatments.filter((t) => t.patient_id === row.patient_id && (t.eye === row.eye || t.eye === 'BOTH' || t.eye === 'UNSPECIFIED')).map((t) => t.type),
  }));
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i += 1) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.sqrt(na * nb);
}

function bruteForce(universe, queryId, { k, filters = {}, excludeSamePatient = true }) {
  const query = universe.find((row) => row.id === queryId);
  return universe
    .filter((row) => row.id !== queryId && row.model_version === query.model_version)
    .filter((row) => !excludeSamePatient || row.patient_id !== query.patient_id)
    .filter((row) => !filters.drGrades || filters.drGrades.includes(row.dr_grade))
    .filter((row) => !filters.eye || row.eye === filters.eye)
    .filter((row) => !filters.sex || row.sex === filters.sex)
    .filter((row) => filters.ageMin == null || (row.birth_year != null && row.visit_year - row.birth_year >= filters.ageMin))
    .filter((row) => filters.ageMax == null || (row.birth_year != null && row.visit_year - row.birth_year <= filters.ageMax))
    .filter((row) => !filters.treatmentTypes || row.treatments.some((type) => filters.treatmentTypes.includes(type)))
    .map((row) => ({ id: row.id, similarity: cosine(query.vector, row.vector) }))
    .sort((a, b) => b.similarity - a.similarity || (a.id < b.id ? -1 : 1))
    .slice(0, k);
}

const CASES = [
  { name: 'no filter, k=10', k: 10 },
  { name: 'no filter, k=1', k: 1 },
  { name: 'k=100 exceeds the matches: every match is returned', k: 100, filters: { drGrades: [4] } },
  { name: 'one grade', k: 10, filters: { drGrades: [0] } },
  { name: 'rare grades', k: 10, filters: { drGrades: [3, 4] } },
  { name: 'grade set with duplicates', k: 7, filters: { drGrades: [2, 2, 1] } },
  { name: 'left eye', k: 10, filters: { eye: 'LEFT' } },
  { name: 'female', k: 10, filters: { sex: 'FEMALE' } },
  { name: 'age range', k: 10, filters: { ageMin: 50, ageMax: 70 } },
  { name: 'age minimum only', k: 10, filters: { ageMin: 65 } },
  { name: 'anti-VEGF treated eyes', k: 10, filters: { treatmentTypes: ['ANTI_VEGF'] } },
  { name: 'laser or vitrectomy', k: 10, filters: { treatmentTypes: ['PRP_LASER', 'VITRECTOMY'] } },
  { name: 'every filter at once', k: 10, filters: { drGrades: [2, 3, 4], eye: 'RIGHT', sex: 'MALE', ageMin: 40, ageMax: 90, treatmentTypes: ['OBSERVATION', 'PRP_LASER', 'ANTI_VEGF'] } },
  { name: 'a filter nothing matches', k: 10, filters: { sex: 'OTHER', drGrades: [4], treatmentTypes: ['VITRECTOMY'], eye: 'LEFT' } },
  { name: 'same patient included', k: 10, excludeSamePatient: false },
];

for (const backend of BACKENDS) {
  describe(`similarCases on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let universe;
    before(async () => {
      api = await startApi(backend);
      universe = await loadUniverse(api.db);
    });
    after(async () => api?.close());

    test('the fixture cohort has every filter value the table below relies on', () => {
      assert.ok(universe.length >= 100, `expected >= 100 embedded images, got ${universe.length}`);
      for (const grade of [0, 1, 2, 3, 4]) assert.ok(universe.some((row) => row.dr_grade === grade), `grade ${grade} missing`);
      for (const type of ['ANTI_VEGF', 'PRP_LASER', 'OBSERVATION']) assert.ok(universe.some((row) => row.treatments.includes(type)), `${type} missing`);
    });

    for (const scenario of CASES) {
      test(`returns the brute-force top-k: ${scenario.name}`, async () => {
        // Three different queries per scenario: grade 0, a middle grade and a PDR photograph.
        const queries = [0, 2, 4].map((grade) => universe.filter((row) => row.dr_grade === grade).sort((a, b) => (a.id < b.id ? -1 : 1))[0]);
        for (const query of queries) {
          const input = { imageId: query.id, k: scenario.k, filters: scenario.filters ?? null };
          if (scenario.excludeSamePatient !== undefined) input.excludeSamePatient = scenario.excludeSamePatient;
          const { body } = await api.graphql(SIMILAR, { input });
          assert.equal(body.errors, undefined, JSON.stringify(body.errors));
          const expected = bruteForce(universe, query.id, { k: scenario.k, filters: scenario.filters, excludeSamePatient: scenario.excludeSamePatient ?? true });
          const hits = body.data.similarCases.hits;
          assert.equal(hits.length, expected.length, 'never fewer than k when k rows match, never more than match');
          hits.forEach((hit, index) => {
            assert.equal(hit.rank, index + 1);
            assert.ok(Math.abs(hit.similarity - expected[index].similarity) < 1e-5, `similarity at rank ${index + 1}: ${hit.similarity} vs ${expected[index].similarity}`);
          });
          // Order by id where two similarities tie within float precision; otherwise the exact brute-force order.
          assert.deepEqual(hits.map((hit) => hit.case.id).sort(), expected.map((row) => row.id).sort());
          for (let index = 0; index < hits.length; index += 1) {
            if (hits[index].case.id !== expected[index].id) {
              assert.ok(Math.abs(expected[index].similarity - hits[index].similarity) < 1e-6, `order differs at rank ${index + 1} without a tie`);
            }
          }
          if ((scenario.excludeSamePatient ?? true) === true) {
            assert.ok(hits.every((hit) => hit.case.patient.id !== body.data.similarCases.query.patient.id), 'the query patient never appears');
          }
        }
      });
    }

    test('hits carry their patient, grading and treatments for the matching eye (at the visit or after it)', async () => {
      const query = universe.find((row) => row.dr_grade === 4);
      const { body } = await api.graphql(SIMILAR, { input: { imageId: query.id, k: 20, filters: { treatmentTypes: ['PRP_LASER'] } } });
      assert.equal(body.errors, undefined);
      assert.ok(body.data.similarCases.hits.length > 0);
      for (const hit of body.data.similarCases.hits) {
        assert.equal(hit.case.isSynthetic, true);
        // The filter asks whether the eye ever received the treatment; a later one is the case's follow-up.
        const received = [...hit.case.treatments, ...hit.case.followUp.treatments];
        assert.ok(received.some((t) => t.type === 'PRP_LASER' && (t.eye === hit.case.image.eye || t.eye === 'BOTH' || t.eye === 'UNSPECIFIED')));
        const row = universe.find((candidate) => candidate.id === hit.case.id);
        assert.equal(hit.case.referenceGrading.drGrade, row.dr_grade);
      }
    });

    test('the number of database statements does not grow with k (no N+1)', async () => {
      const query = universe[0];
      const statementsFor = async (k) => {
        const before = api.db.statementCount();
        const { body } = await api.graphql(SIMILAR, { input: { imageId: query.id, k } });
        assert.equal(body.errors, undefined);
        assert.equal(body.data.similarCases.hits.length, k);
        return api.db.statementCount() - before;
      };
      await statementsFor(1); // warm-up: first-use queries of the driver
      const one = await statementsFor(1);
      const fifty = await statementsFor(50);
      assert.ok(one > 0, 'the statement counter must see this backend\'s queries');
      assert.equal(fifty, one, `k=1 took ${one} statements, k=50 took ${fifty}`);
    });
  });
}
