// case(id), patient(mrn) and Relay pagination against the fixture cohort, checked against the tables.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, startApi } from '../support/backends.mjs';

const CASE = `query C($id: ID!) { case(id: $id) {
  id isSynthetic ageAtVisit visit { date } image { id eye width height contentHash }
  patient { mrn mrnSystem birthYear dataset { name isSynthetic } hba1cReadings { date percent } }
  referenceGrading { drGrade drGradeName source } gradings { drGrade date }
  diagnoses { code text eye date } treatments { type agent eye date }
  followUp { diagnoses { code date } treatments { type date } gradings { imageId visitDate drGrade } } } }`;

for (const backend of BACKENDS) {
  describe(`cases and patients on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend);
    });
    after(async () => api?.close());

    test('case(id) joins the photograph with its patient, grading and the records of that eye', async () => {
      const [row] = await api.db.sql.query(`
        SELECT fi.id::text AS id, fi.eye::text AS eye, fi.dr_grade, p.id::text AS patient_id, p.mrn, p.birth_year, v.visit_date::text AS visit_date
        FROM fundus_image fi JOIN patient p ON p.id = fi.patient_id JOIN visit v ON v.id = fi.visit_id
        WHERE EXISTS (SELECT 1 FROM treatment t WHERE t.patient_id = p.id) ORDER BY fi.id LIMIT 1`);
      const { body, headers } = await api.graphql(CASE, { id: row.id });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      assert.equal(headers.get('cache-control'), 'private, no-store', 'a patient record is never cached');
      const found = body.data.case;
      assert.equal(found.id, row.id);
      assert.equal(found.image.eye, row.eye);
      assert.equal(found.patient.mrn, row.mrn);
      assert.equal(found.isSynthetic, true);
      assert.equal(found.patient.dataset.name, 'test-clinic');
      assert.equal(found.visit.date, row.visit_date.slice(0, 10));
      assert.equal(found.ageAtVisit, Number(row.visit_date.slice(0, 4)) - row.birth_year);
      assert.equal(found.referenceGrading.drGrade, row.dr_grade);
      // Records dated on or before the visit are the case's; later ones are its follow-up.
      const visitDate = row.visit_date.slice(0, 10);
      const treatments = await api.db.sql.query(`SELECT type::text AS type, performed_on::text AS date FROM treatment WHERE patient_id = $1 AND (eye::text = $2 OR eye IN ('BOTH', 'UNSPECIFIED'))`, [row.patient_id, row.eye]);
      assert.deepEqual(found.treatments.map((t) => t.type).sort(), treatments.filter((t) => t.date.slice(0, 10) <= visitDate).map((t) => t.type).sort());
      assert.deepEqual(found.followUp.treatments.map((t) => t.type).sort(), treatments.filter((t) => t.date.slice(0, 10) > visitDate).map((t) => t.type).sort());
      assert.ok(found.treatments.every((t) => [row.eye, 'BOTH', 'UNSPECIFIED'].includes(t.eye)));
      const diagnoses = await api.db.sql.query(`SELECT icd10_code, diagnosed_on::text AS date FROM diagnosis WHERE patient_id = $1 AND (eye::text = $2 OR eye IN ('BOTH', 'UNSPECIFIED'))`, [row.patient_id, row.eye]);
      assert.deepEqual(found.diagnoses.map((d) => d.code).sort(), diagnoses.filter((d) => d.date.slice(0, 10) <= visitDate).map((d) => d.icd10_code).sort());
      assert.deepEqual(found.followUp.diagnoses.map((d) => d.code).sort(), diagnoses.filter((d) => d.date.slice(0, 10) > visitDate).map((d) => d.icd10_code).sort());
      const later = await api.db.sql.query(
        `SELECT fi.id::text AS id FROM fundus_image fi JOIN visit v ON v.id = fi.visit_id WHERE fi.patient_id = $1 AND fi.eye::text = $2 AND v.visit_date > $3::date`,
        [row.patient_id, row.eye, visitDate],
      );
      assert.deepEqual(found.followUp.gradings.map((g) => g.imageId).sort(), later.map((image) => image.id).sort(), 'one grading per later photograph of the eye');
      for (const diagnosis of found.diagnoses) assert.match(diagnosis.code, /^E1[01]\.(9|3[2-5][19][123])$/);
    });

    test('patient(mrn) returns the patient, and paging through their cases visits each photograph once', async () => {
      const [row] = await api.db.sql.query(`SELECT p.mrn, count(fi.id)::int AS images FROM patient p JOIN fundus_image fi ON fi.patient_id = p.id GROUP BY p.mrn HAVING count(fi.id) >= 4 ORDER BY p.mrn LIMIT 1`);
      const seen = [];
      let after = null;
      for (let page = 0; page < 10; page += 1) {
        const { body } = await api.graphql('query P($mrn: String!, $after: String) { patient(mrn: $mrn) { mrn cases(first: 3, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } } }', { mrn: row.mrn, after });
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        assert.equal(body.data.patient.mrn, row.mrn);
        seen.push(...body.data.patient.cases.nodes.map((node) => node.id));
        if (!body.data.patient.cases.pageInfo.hasNextPage) break;
        after = body.data.patient.cases.pageInfo.endCursor;
      }
      assert.equal(seen.length, row.images);
      assert.equal(new Set(seen).size, row.images);
    });

    test('no GraphQL answer may be cached, an error included; answers are compact JSON', async () => {
      const { body, headers } = await api.graphql('query { case(id: "not-a-uuid") { id } }', {});
      assert.ok(body.errors?.length, 'an error');
      assert.equal(headers.get('cache-control'), 'private, no-store');
      const response = await api.fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ health { database } }' }) });
      const text = await response.text();
      assert.equal(text, JSON.stringify(JSON.parse(text)), 'no indentation');
    });

    test('patients() pages through the whole cohort without gaps or repeats', async () => {
      const [{ n }] = await api.db.sql.query('SELECT count(*)::int AS n FROM patient');
      const seen = [];
      let after = null;
      for (let page = 0; page < 50; page += 1) {
        const { body } = await api.graphql('query L($after: String) { patients(first: 7, after: $after, dataset: "test-clinic") { nodes { mrn isSynthetic } pageInfo { hasNextPage endCursor } } }', { after });
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        assert.ok(body.data.patients.nodes.length <= 7);
        seen.push(...body.data.patients.nodes.map((node) => node.mrn));
        if (!body.data.patients.pageInfo.hasNextPage) break;
        after = body.data.patients.pageInfo.endCursor;
      }
      assert.equal(seen.length, n);
      assert.equal(new Set(seen).size, n);
    });

    test('health reports the database kind and the search model version', async () => {
      const { body } = await api.graphql('{ health { status database searchModelVersion } }');
      assert.deepEqual(body.data.health, { status: 'ok', database: backend, searchModelVersion: 'fixture-clustered-v1' });
    });

    test('with no model loaded or pinned, searches compare on the version of the newest embedding, found by one step down the created_at index', async () => {
      const version = async () => (await api.graphql('{ health { searchModelVersion } }')).body.data.health.searchModelVersion;
      const copyAs = (name, at) => api.db.sql.query(`INSERT INTO image_embedding (image_id, model_version, embedding, created_at) SELECT image_id, $1, embedding, ${at} FROM image_embedding WHERE model_version = 'fixture-clustered-v1' ORDER BY image_id LIMIT 3`, [name]);
      try {
        await copyAs('b-newer', "TIMESTAMPTZ '2100-01-01 00:00:00+00'");
        assert.equal(await version(), 'b-newer');
        await copyAs('a-same-instant', "TIMESTAMPTZ '2100-01-01 00:00:00+00'");
        assert.equal(await version(), 'b-newer', 'a tie in time goes to the last name');
        await copyAs('c-same-instant', "TIMESTAMPTZ '2100-01-01 00:00:00+00'");
        assert.equal(await version(), 'c-same-instant');
        await copyAs('d-older', "TIMESTAMPTZ '2000-01-01 00:00:00+00'");
        assert.equal(await version(), 'c-same-instant', 'a version written later but dated earlier does not win');
        const plan = (await api.db.sql.query('EXPLAIN SELECT model_version FROM image_embedding ORDER BY created_at DESC, model_version DESC LIMIT 1')).map((row) => row['QUERY PLAN']).join('\n');
        assert.match(plan, /Index Only Scan Backward using image_embedding_created_at_model_version_idx/);
        assert.doesNotMatch(plan, /Sort/, 'no sort: the index gives the order, ties included');
      } finally {
        await api.db.sql.query("DELETE FROM image_embedding WHERE model_version IN ('b-newer', 'a-same-instant', 'c-same-instant', 'd-older')");
      }
      assert.equal(await version(), 'fixture-clustered-v1');
    });
  });
}
