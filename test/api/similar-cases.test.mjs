// similarCases under every filter, on PGlite and on PostgreSQL + pgvector, against a brute-force cosine ranking
// computed here from the stored embeddings and records: with `exact: true` the hits are the brute-force top-k;
// by default (the approximate per-grade HNSW path) every hit matches the filters, as many hits come back, each
// with its true similarity, in order, and the recall against the brute force is measured.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKENDS, POSTGRES_SKIP_REASON, startApi } from '../support/backends.mjs';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const search = await import(path.join(repositoryRoot, 'apps/api/dist/search/similar-images.js'));
const driverRows = await import(path.join(repositoryRoot, 'apps/api/dist/db/driver-rows.js'));
const { Prisma } = await import(path.join(repositoryRoot, 'apps/api/dist/generated/prisma/client.js'));

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

/** Whether a row passes the filters (and is not the query or, unless asked, its patient's). */
function matches(row, query, filters = {}, excludeSamePatient = true) {
  const age = row.birth_year == null ? null : row.visit_year - row.birth_year;
  return row.id !== query.id && row.model_version === query.model_version
    && (!excludeSamePatient || row.patient_id !== query.patient_id)
    && (!filters.drGrades || filters.drGrades.includes(row.dr_grade))
    && (!filters.eye || row.eye === filters.eye)
    && (!filters.sex || row.sex === filters.sex)
    && (filters.ageMin == null || (age !== null && age >= filters.ageMin))
    && (filters.ageMax == null || (age !== null && age <= filters.ageMax))
    && (!filters.treatmentTypes || row.treatments.some((type) => filters.treatmentTypes.includes(type)));
}

function bruteForce(universe, queryId, { k, filters = {}, excludeSamePatient = true }) {
  const query = universe.find((row) => row.id === queryId);
  return universe
    .filter((row) => matches(row, query, filters, excludeSamePatient))
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

    // Three different queries per scenario: grade 0, a middle grade and a PDR photograph.
    const queriesOf = () => [0, 2, 4].map((grade) => universe.filter((row) => row.dr_grade === grade).sort((a, b) => (a.id < b.id ? -1 : 1))[0]);

    for (const scenario of CASES) {
      test(`exact: returns the brute-force top-k: ${scenario.name}`, async () => {
        for (const query of queriesOf()) {
          const input = { imageId: query.id, k: scenario.k, filters: scenario.filters ?? null, exact: true };
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

    for (const scenario of CASES) {
      test(`approximate: only matching rows, as many as the brute force, true similarities in order: ${scenario.name}`, async () => {
        let found = 0;
        let relevant = 0;
        for (const query of queriesOf()) {
          const input = { imageId: query.id, k: scenario.k, filters: scenario.filters ?? null };
          if (scenario.excludeSamePatient !== undefined) input.excludeSamePatient = scenario.excludeSamePatient;
          const { body } = await api.graphql(SIMILAR, { input });
          assert.equal(body.errors, undefined, JSON.stringify(body.errors));
          const expected = bruteForce(universe, query.id, { k: scenario.k, filters: scenario.filters, excludeSamePatient: scenario.excludeSamePatient ?? true });
          const hits = body.data.similarCases.hits;
          assert.equal(hits.length, expected.length, 'never fewer than k when k rows match, never more than match');
          for (const [index, hit] of hits.entries()) {
            const row = universe.find((candidate) => candidate.id === hit.case.id);
            assert.ok(matches(row, query, scenario.filters, scenario.excludeSamePatient ?? true), `hit ${hit.case.id} does not match the filters`);
            assert.ok(Math.abs(hit.similarity - cosine(query.vector, row.vector)) < 1e-5, `similarity of ${hit.case.id}`);
            assert.equal(hit.rank, index + 1);
            if (index > 0) assert.ok(hit.similarity <= hits[index - 1].similarity + 1e-9, `rank ${index + 1} is more similar than rank ${index}`);
          }
          const truth = new Set(expected.map((row) => row.id));
          found += hits.filter((hit) => truth.has(hit.case.id)).length;
          relevant += truth.size;
        }
        // At this size (a few hundred rows, ef_search 100) the graphs are searched nearly exhaustively.
        if (relevant > 0) assert.ok(found / relevant >= 0.95, `recall ${found}/${relevant} against the brute force`);
      });
    }

    test('the exact statement never walks an HNSW index, the approximate one walks the grade\'s partial index', async () => {
      const query = universe.find((row) => row.dr_grade === 0);
      const explain = async (sql, settings = []) => {
        const set = settings.map((name) => Prisma.sql`set_config(${name}, 'off', true)`);
        const [, plan] = await api.db.prisma.$transaction([
          api.db.prisma.$queryRaw`SELECT ${set.length > 0 ? Prisma.join(set) : Prisma.sql`1`}`,
          api.db.prisma.$queryRaw(Prisma.sql`EXPLAIN ${sql}`),
        ]);
        return plan.map((row) => row['QUERY PLAN']).join('\n');
      };
      for (const drGrades of [[], [1], [4], [3, 4]]) {
        // A vector query, as from an upload: a constant the planner could match to an index's ordering.
        const input = { modelVersion: query.model_version, query: { vector: query.vector, contentHash: 'f'.repeat(64) }, k: 10, filters: { drGrades, eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] }, excludePatientId: null };
        // With sequential scans and full sorts priced out, any index ordering the statement allows is taken: a
        // bare `ORDER BY <=>, id` then became an incremental sort over the grade's HNSW walk (approximate).
        assert.doesNotMatch(await explain(search.exactSearchSql(input), ['enable_seqscan', 'enable_sort']), /hnsw/, `exact, grades ${drGrades}`);
        // The same pricing shows that the grade's partial index can serve the approximate branch (at this size the
        // planner would rather sort a few hundred rows, which is exact).
        if (drGrades.length === 1) assert.match(await explain(search.approximateSearchSql(input), ['enable_seqscan', 'enable_sort']), new RegExp(`image_embedding_hnsw_grade_${drGrades[0]}`));
      }
    });

    test('a regraded photograph is searched under its new grade (the grade copy follows fundus_image.dr_grade)', async () => {
      const query = universe.find((row) => row.dr_grade === 0);
      const moved = bruteForce(universe, query.id, { k: 1, filters: { drGrades: [1] } })[0];
      assert.ok(universe.filter((row) => row.dr_grade === 3).length < 99, 'k = 100 returns every grade-3 photograph');
      const gradeOf = async () => (await api.db.sql.query(`SELECT dr_grade FROM image_embedding WHERE image_id = '${moved.id}'`))[0].dr_grade;
      const search = async (grade) => (await api.graphql(SIMILAR, { input: { imageId: query.id, k: 100, filters: { drGrades: [grade] } } })).body.data.similarCases.hits.map((hit) => hit.case.id);
      assert.equal(await gradeOf(), 1);
      assert.ok((await search(1)).includes(moved.id));
      await api.db.sql.exec(`UPDATE fundus_image SET dr_grade = 3 WHERE id = '${moved.id}'`);
      try {
        assert.equal(await gradeOf(), 3);
        assert.ok(!(await search(1)).includes(moved.id), 'gone from its old grade');
        assert.ok((await search(3)).includes(moved.id), 'found under its new grade');
      } finally {
        await api.db.sql.exec(`UPDATE fundus_image SET dr_grade = 1 WHERE id = '${moved.id}'`);
      }
      assert.equal(await gradeOf(), 1);
    });

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

    test('a search loads only the case parts its selection reads, with the same answers as a search that reads them all, fragments, the query case and the suggestion included', async () => {
      const FULL_CASE = 'id referenceGrading { drGrade source } gradings { id drGrade } diagnoses { id code date } treatments { id type date } followUp { gradings { imageId drGrade } diagnoses { id } treatments { id type } } patient { id mrn hba1cReadings { date percent } externalLinks { system identifier } }';
      const full = `query Full($input: SimilarCasesInput!) { similarCases(input: $input) { query { ${FULL_CASE} } hits { case { ${FULL_CASE} } } } }`;
      const lean = 'query Lean($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank case { id referenceGrading { drGrade source } treatments { type } } } } }';
      // Parts asked for only through a named fragment and an inline one.
      const fragments = `query Fragments($input: SimilarCasesInput!) { similarCases(input: $input) { hits { case { id ...Later } } } }
        fragment Later on Case { followUp { gradings { imageId drGrade } } diagnoses { id code date } patient { ... on Patient { hba1cReadings { date percent } externalLinks { system identifier } } } }`;
      // Parts asked for of the query case alone.
      const queryOnly = 'query QueryOnly($input: SimilarCasesInput!) { similarCases(input: $input) { query { id diagnoses { id code date } followUp { gradings { imageId drGrade } treatments { id type } } patient { hba1cReadings { date percent } externalLinks { system identifier } } } hits { case { id } } } }';
      // The suggestion with no case field at all: its outcomes summarise the hits' follow-up.
      const suggestionOnly = 'query SuggestionOnly($input: SimilarCasesInput!) { similarCases(input: $input) { suggestion { outcomes { hits treatedAfter treatments { type hits } worsening { years followedUp worsened } } } } }';
      const suggestionWithCases = 'query SuggestionWithCases($input: SimilarCasesInput!) { similarCases(input: $input) { suggestion { outcomes { hits treatedAfter treatments { type hits } worsening { years followedUp worsened } } } hits { case { followUp { gradings { imageId } treatments { id } } } } } }';
      let input;
      // The case loading's statement text, seen where it leaves: the driver runner of the API's client on
      // PostgreSQL, Prisma's $queryRaw on PGlite (db/driver-rows.ts).
      const runner = driverRows.driverRunnerFor(api.db.prisma);
      const seen = [];
      const watched = runner ?? api.db.prisma;
      const method = runner ? 'query' : '$queryRaw';
      const original = watched[method];
      watched[method] = function (statement, ...rest) {
        // A string (the runner), a Prisma.Sql (queryRows) or a tagged template's strings (other $queryRaw calls).
        seen.push(typeof statement === 'string' ? statement : (statement.sql ?? Array.from(statement).join('?')));
        return original.call(this, statement, ...rest);
      };
      after(() => { watched[method] = original; });
      const run = async (query) => {
        const before = api.db.statementCount();
        seen.length = 0;
        const { body } = await api.graphql(query, { input });
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        const caseLoads = seen.filter((text) => text.includes(' AS gradings'));
        assert.equal(caseLoads.length, 1, 'one case-loading statement');
        return { result: body.data.similarCases, statements: api.db.statementCount() - before, caseLoad: caseLoads[0] };
      };
      const reads = (text) => ({
        diagnoses: /FROM diagnosis\b/.test(text), treatments: /FROM treatment\b/.test(text), hba1c: /FROM hba1c_reading\b/.test(text),
        links: /FROM external_link\b/.test(text), followUpGradings: /fi2\.patient_id = fi\.patient_id/.test(text),
      });
      // A query some of whose hits were followed up on photographs that are neither hits nor the query: those
      // gradings come only from the patients' other photographs, which the lean search leaves unread.
      let all;
      for (const candidate of universe.slice(0, 30)) {
        input = { imageId: candidate.id, k: 5 };
        all = await run(full);
        const loaded = new Set([candidate.id, ...all.result.hits.map((hit) => hit.case.id)]);
        if (all.result.hits.some((hit) => hit.case.followUp.gradings.some((grading) => !loaded.has(grading.imageId)))) break;
        all = null;
      }
      assert.ok(all, 'a query with hits followed up on photographs outside the results');
      // An external link for the query's patient and for one hit's, so the links part has rows to lose.
      for (const patientId of new Set([all.result.query.patient.id, all.result.hits[0].case.patient.id])) {
        await api.db.sql.query('INSERT INTO external_link (system, identifier, patient_id) VALUES ($1, $2, $3::uuid)', ['urn:test:ehr', `parts-${patientId}`, patientId]);
      }
      all = await run(full);
      const fullHits = all.result.hits.map((hit) => hit.case);
      const everyCase = [all.result.query, ...fullHits];
      for (const [part, count] of Object.entries({
        diagnoses: (c) => c.diagnoses.length + c.followUp.diagnoses.length, treatments: (c) => c.treatments.length + c.followUp.treatments.length,
        followUpGradings: (c) => c.followUp.gradings.length, hba1cReadings: (c) => c.patient.hba1cReadings.length, externalLinks: (c) => c.patient.externalLinks.length,
      })) assert.ok(fullHits.some((c) => count(c) > 0) && count(all.result.query) > 0, `the query and some hit have ${part}`);
      assert.ok(everyCase.length === 6);

      const few = await run(lean);
      assert.deepEqual(few.result.hits.map((hit) => ({ id: hit.case.id, referenceGrading: hit.case.referenceGrading, treatments: hit.case.treatments })),
        fullHits.map((hit) => ({ id: hit.id, referenceGrading: hit.referenceGrading, treatments: hit.treatments.map(({ type }) => ({ type })) })));
      // Diagnoses, HbA1c readings, external links and the patients' other photographs are not read for the lean
      // search: its one case-loading statement leaves those parts out (the full search's reads them all), and it
      // never costs more statements than the full one.
      assert.deepEqual(reads(all.caseLoad), { diagnoses: true, treatments: true, hba1c: true, links: true, followUpGradings: true });
      assert.deepEqual(reads(few.caseLoad), { diagnoses: false, treatments: true, hba1c: false, links: false, followUpGradings: false });
      assert.ok(few.statements <= all.statements, `the lean search took ${few.statements} statements, the full one ${all.statements}`);

      const byFragment = await run(fragments);
      assert.deepEqual(byFragment.result.hits.map((hit) => hit.case), fullHits.map((hit) => ({
        id: hit.id, followUp: { gradings: hit.followUp.gradings }, diagnoses: hit.diagnoses,
        patient: { hba1cReadings: hit.patient.hba1cReadings, externalLinks: hit.patient.externalLinks },
      })));

      const ofQuery = await run(queryOnly);
      const q = all.result.query;
      assert.deepEqual(ofQuery.result.query, {
        id: q.id, diagnoses: q.diagnoses, followUp: { gradings: q.followUp.gradings, treatments: q.followUp.treatments },
        patient: { hba1cReadings: q.patient.hba1cReadings, externalLinks: q.patient.externalLinks },
      });

      const suggestion = await run(suggestionOnly);
      const withCases = await run(suggestionWithCases);
      assert.ok(withCases.result.hits.some((hit) => hit.case.followUp.gradings.length > 0 || hit.case.followUp.treatments.length > 0), 'the hits were followed up');
      assert.deepEqual(suggestion.result.suggestion.outcomes, withCases.result.suggestion.outcomes, 'the outcomes do not depend on which case fields are selected');
      assert.ok(suggestion.result.suggestion.outcomes.treatedAfter > 0 || suggestion.result.suggestion.outcomes.worsening.some((w) => w.followedUp > 0), 'the outcomes saw the follow-up');
    });

    test('a stored case without an embedding of the searched version is EMBEDDING_UNAVAILABLE, and an unknown one NOT_FOUND', async () => {
      const [query] = queriesOf();
      const [saved] = await api.db.sql.query('SELECT embedding::text AS embedding, model_version, attention_map, attention_width, attention_height FROM image_embedding WHERE image_id = $1::uuid', [query.id]);
      await api.db.sql.query('DELETE FROM image_embedding WHERE image_id = $1::uuid', [query.id]);
      try {
        const { body } = await api.graphql(SIMILAR, { input: { imageId: query.id, k: 5 } });
        assert.equal(body.errors?.[0]?.extensions?.code, 'EMBEDDING_UNAVAILABLE', JSON.stringify(body));
        assert.match(body.errors[0].message, /has no embedding for model version/);
        const unknown = await api.graphql(SIMILAR, { input: { imageId: '00000000-0000-4000-8000-000000000000', k: 5 } });
        assert.equal(unknown.body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
      } finally {
        await api.db.sql.query('INSERT INTO image_embedding (image_id, model_version, embedding, attention_map, attention_width, attention_height) VALUES ($1::uuid, $2, $3::vector, $4, $5, $6)',
          [query.id, saved.model_version, saved.embedding, saved.attention_map, saved.attention_width, saved.attention_height]);
      }
    });
  });
}
