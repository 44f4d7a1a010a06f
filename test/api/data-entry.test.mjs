// Data-entry checks end to end, on PGlite and PostgreSQL: what a clinician sends to ingestCase (and what an
// importer hands to ingestRecords) is refused with a stable code and a message naming the code or date, and
// nothing is written (countRows unchanged); the same photograph for another patient or eye is CONFLICT naming the
// stored case; a case shows the records known at its visit and the later ones as its follow-up; the fixture
// cohort holds no duplicated rows.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeUndatedImportRecord } from '../support/records.mjs';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, countRows, repositoryRoot, startApi } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { makeSyntheticFundusPng } = await dist('embedding/testing/fixtures.js');
const { ingestRecords } = await dist('modules/ingest/ingest.service.js');

/** POST /uploads: the one request of this file that does not go through api.graphql (credentials go here). */
async function uploadPhotograph(api, bytes) {
  const response = await api.fetch('/uploads', { method: 'POST', headers: { 'content-type': 'image/png' }, body: bytes });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  return body.uploadToken;
}

let photographsMade = 0;
/** A synthetic fundus photograph no other test of this file uses (distinct size and tint, so distinct bytes). */
function makePhotograph() {
  photographsMade += 1;
  return makeSyntheticFundusPng({ width: 220 + 6 * photographsMade, height: 170 + 4 * photographsMade, tint: (photographsMade * 0.137) % 1 });
}

const CASE_FIELDS = `id image { eye } patient { mrn birthYear } visit { date } ageAtVisit referenceGrading { drGrade }
  diagnoses { code eye date } treatments { type eye date }
  followUp { gradings { imageId visitDate date drGrade source } diagnoses { code eye date } treatments { type eye date } }`;
const INGEST = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { ${CASE_FIELDS} } } }`;
const CASE = `query C($id: ID!) { case(id: $id) { ${CASE_FIELDS} } }`;

const MRN_SYSTEM = 'urn:oid:1.2.3.4.99';
const tomorrowUtc = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

function caseInput(uploadToken, overrides = {}) {
  return {
    uploadToken,
    dataset: 'data-entry',
    patient: { mrn: 'DE-0001', mrnSystem: MRN_SYSTEM, birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_2' },
    visitDate: '2024-05-14',
    eye: 'LEFT',
    grading: { drGrade: 2, grader: 'Dr Test' },
    diagnoses: [{ icd10Code: 'E11.3392', text: 'Type 2 DM with moderate NPDR without macular edema, left eye', eye: 'LEFT', date: '2024-05-14' }],
    treatments: [{ type: 'OBSERVATION', eye: 'LEFT', date: '2024-05-14' }],
    ...overrides,
  };
}

const withDiagnosis = (fields) => ({ diagnoses: [{ icd10Code: 'E11.3392', text: 'moderate NPDR', eye: 'LEFT', date: '2024-05-14', ...fields }] });
const withTreatment = (fields) => ({ treatments: [{ type: 'OBSERVATION', eye: 'LEFT', date: '2024-05-14', ...fields }] });

/** Each bad input, and what the BAD_USER_INPUT message must say about it. */
const BAD_INPUTS = [
  { name: 'a code that is no ICD-10-CM code', overrides: withDiagnosis({ icd10Code: 'NOTACODE' }), message: /ICD-10-CM code "NOTACODE" is not well-formed/ },
  { name: 'an E12 code (not in ICD-10-CM)', overrides: withDiagnosis({ icd10Code: 'E12.3392' }), message: /"E12\.3392" does not exist: E12 is a WHO ICD-10 diabetes category/ },
  { name: 'the DR subcategory header E11.3', overrides: withDiagnosis({ icd10Code: 'E11.3' }), message: /"E11\.3" is incomplete/ },
  { name: 'an NPDR code without its eye', overrides: withDiagnosis({ icd10Code: 'E11.339' }), message: /"E11\.339" is not a complete E11\.33 code/ },
  { name: 'a PDR code with a 6th character that does not exist', overrides: withDiagnosis({ icd10Code: 'E11.3572' }), message: /"E11\.3572" is not a complete E11\.35 code/ },
  { name: 'a lower-case code', overrides: withDiagnosis({ icd10Code: 'e11.3392' }), message: /"e11\.3392" is not well-formed.*write it as E11\.3392/ },
  { name: 'a visit in 2099', overrides: { visitDate: '2099-01-01' }, message: /visit date 2099-01-01 is in the future \(today is \d{4}-\d{2}-\d{2}, UTC\)/ },
  { name: 'a visit tomorrow (UTC)', overrides: () => ({ visitDate: tomorrowUtc() }), message: /visit date \d{4}-\d{2}-\d{2} is in the future/ },
  { name: 'a visit before the birth year', overrides: { visitDate: '1958-06-01' }, message: /visit date 1958-06-01 is before the patient's birth year 1961/ },
  { name: 'the undated placeholder as a visit date', overrides: { visitDate: '1900-01-01' }, message: /visit date 1900-01-01 is the placeholder for undated labels, not a date/ },
  { name: 'a diagnosis dated in the future', overrides: withDiagnosis({ date: '2099-02-01' }), message: /diagnosis E11\.3392 date 2099-02-01 is in the future/ },
  { name: 'a diagnosis before the birth year', overrides: withDiagnosis({ date: '1950-02-01' }), message: /diagnosis E11\.3392 date 1950-02-01 is before the patient's birth year 1961/ },
  { name: 'a treatment dated in the future', overrides: withTreatment({ type: 'PRP_LASER', date: '2099-03-01' }), message: /treatment PRP_LASER date 2099-03-01 is in the future/ },
  { name: 'a treatment before the birth year', overrides: withTreatment({ type: 'PRP_LASER', date: '1959-03-01' }), message: /treatment PRP_LASER date 1959-03-01 is before the patient's birth year 1961/ },
];

/** A record as an importer builds one: the undated placeholder, no birth year. */
function makeImportRecord(bytes, { mrn, eye = 'LEFT', row = 2, birthYear = null, mrnSystem = 'urn:fundus-cbr:dataset:data-entry' }) {
  return makeUndatedImportRecord(bytes, { mrn, eye, row, birthYear, mrnSystem, dataset: 'data-entry-import', mimeType: 'image/png' });
}

for (const backend of BACKENDS) {
  describe(`data-entry checks on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    before(async () => {
      api = await startApi(backend, { modelPath: TINY_MODEL });
    });
    after(async () => api?.close());

    const save = (input) => api.graphql(INGEST, { input });

    /** The call must fail with `code`, and not one row may have been written by it. */
    async function assertRefused(work, code, message) {
      const before = await countRows(api.db);
      const { body } = await work();
      const error = body.errors?.[0];
      assert.equal(error?.extensions?.code, code, JSON.stringify(body));
      if (message) assert.match(error.message, message);
      assert.equal(body.data?.ingestCase ?? null, null);
      assert.deepEqual(await countRows(api.db), before, 'nothing was written');
      return error;
    }

    test('a valid case is saved (the baseline every bad input below differs from in one field)', async () => {
      const { body } = await save(caseInput(await uploadPhotograph(api, await makePhotograph()), { patient: { mrn: 'DE-BASE', mrnSystem: MRN_SYSTEM, birthYear: 1961 } }));
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      assert.equal(body.data.ingestCase.status, 'ADDED');
      assert.deepEqual(body.data.ingestCase.case.diagnoses.map((d) => d.code), ['E11.3392']);
    });

    for (const row of BAD_INPUTS) {
      test(`ingestCase: ${row.name} -> BAD_USER_INPUT naming it, nothing written`, async () => {
        const token = await uploadPhotograph(api, await makePhotograph());
        const overrides = typeof row.overrides === 'function' ? row.overrides() : row.overrides;
        await assertRefused(() => save(caseInput(token, overrides)), 'BAD_USER_INPUT', row.message);
      });
    }

    test('dates are checked against the birth year the stored patient has, when the input gives none', async () => {
      const patient = { mrn: 'DE-STORED', mrnSystem: MRN_SYSTEM, birthYear: 1970 };
      const first = await save(caseInput(await uploadPhotograph(api, await makePhotograph()), { patient, visitDate: '2020-02-02', diagnoses: [], treatments: [] }));
      assert.equal(first.body.data?.ingestCase?.status, 'ADDED', JSON.stringify(first.body));
      const token = await uploadPhotograph(api, await makePhotograph());
      await assertRefused(
        () => save(caseInput(token, { patient: { ...patient, birthYear: null }, visitDate: '1965-03-01', diagnoses: [], treatments: [] })),
        'BAD_USER_INPUT',
        /the stored patient's birth year is 1970; visit date 1965-03-01 is before the patient's birth year 1970/,
      );
    });

    test('undated labels keep their placeholder while the birth year is unknown; a birth year makes them refuse, and cannot be given later', async () => {
      const db = api.db;
      const undated = await ingestRecords({ prisma: db.prisma, embedder: api.embedder, items: [{ ok: true, record: makeImportRecord(await makePhotograph(), { mrn: 'DE-UNDATED' }) }] });
      assert.deepEqual([undated.added, undated.rejected], [1, {}]);
      const stored = await db.prisma.patient.findFirstOrThrow({ where: { mrn: 'DE-UNDATED' }, include: { visits: true } });
      assert.deepEqual(stored.visits.map((visit) => visit.visitDate.toISOString().slice(0, 10)), ['1900-01-01']);

      const before = await countRows(db);
      const withBirthYear = await ingestRecords({ prisma: db.prisma, embedder: api.embedder, items: [{ ok: true, record: makeImportRecord(await makePhotograph(), { mrn: 'DE-UNDATED-2', birthYear: 1961 }) }] });
      assert.deepEqual([withBirthYear.added, withBirthYear.rejected], [0, { INVALID_RECORD: 1 }]);
      assert.match(withBirthYear.problems[0].reason, /visit date is unknown .*birth year 1961 is known.*--visit-date/);
      assert.deepEqual(await countRows(db), before);

      // The stored patient's 1900-01-01 visit and a birth year given now cannot both be right.
      const token = await uploadPhotograph(api, await makePhotograph());
      await assertRefused(
        () => save(caseInput(token, { patient: { mrn: 'DE-UNDATED', mrnSystem: 'urn:fundus-cbr:dataset:data-entry', birthYear: 1961 }, diagnoses: [], treatments: [] })),
        'BAD_USER_INPUT',
        /gives the patient birth year 1961, but the patient's stored records begin on 1900-01-01, before it \(1900-01-01 is the placeholder of undated labels\)/,
      );
    });

    test('the same photograph: another patient or the other eye is CONFLICT naming the stored case; the same eye is DUPLICATE; bad input is refused first', async () => {
      const token = await uploadPhotograph(api, await makePhotograph());
      const owner = { mrn: 'DE-OWNER', mrnSystem: MRN_SYSTEM, birthYear: 1961 };
      const first = await save(caseInput(token, { patient: owner }));
      assert.equal(first.body.data?.ingestCase?.status, 'ADDED', JSON.stringify(first.body));
      const storedId = first.body.data.ingestCase.case.id;

      const otherPatient = await assertRefused(() => save(caseInput(token, { patient: { ...owner, mrn: 'DE-OTHER' } })), 'CONFLICT', new RegExp(`already stored as case ${storedId}, of another patient`));
      assert.equal(otherPatient.extensions.caseId, storedId);
      assert.doesNotMatch(otherPatient.message, /DE-OWNER/, "the stored patient's identity is not disclosed");
      const otherEye = await assertRefused(() => save(caseInput(token, { patient: owner, eye: 'RIGHT', diagnoses: [], treatments: [] })), 'CONFLICT', /of the same patient's LEFT eye, not the RIGHT eye/);
      assert.equal(otherEye.extensions.caseId, storedId);
      const otherSystem = await assertRefused(() => save(caseInput(token, { patient: { ...owner, mrnSystem: 'urn:oid:9.9.9' } })), 'CONFLICT');
      assert.equal(otherSystem.extensions.caseId, storedId);

      await assertRefused(() => save(caseInput(token, { patient: owner, ...withDiagnosis({ icd10Code: 'NOTACODE' }) })), 'BAD_USER_INPUT', /"NOTACODE"/);
      await assertRefused(() => save(caseInput(token, { patient: { ...owner, mrn: 'DE-OTHER' }, visitDate: '2099-01-01' })), 'BAD_USER_INPUT', /2099-01-01 is in the future/);

      const before = await countRows(api.db);
      const again = await save(caseInput(token, { patient: owner }));
      assert.equal(again.body.data?.ingestCase?.status, 'DUPLICATE', JSON.stringify(again.body));
      assert.equal(again.body.data.ingestCase.case.id, storedId);
      assert.deepEqual(await countRows(api.db), before);
    });

    test('importers: the same photograph for another patient is rejected as CONFLICT (its own count and problem), also when both arrive in one run', async () => {
      const db = api.db;
      const stored = await makePhotograph();
      const first = await ingestRecords({ prisma: db.prisma, embedder: api.embedder, items: [{ ok: true, record: makeImportRecord(stored, { mrn: 'DE-IMP-1' }) }] });
      assert.equal(first.added, 1);
      const [{ id: storedId }] = await db.sql.query(`SELECT fi.id::text AS id FROM fundus_image fi JOIN patient p ON p.id = fi.patient_id WHERE p.mrn = 'DE-IMP-1'`);

      const before = await countRows(db);
      const fresh = await makePhotograph();
      const summary = await ingestRecords({
        prisma: db.prisma,
        embedder: api.embedder,
        items: [
          { ok: true, record: makeImportRecord(stored, { mrn: 'DE-IMP-2', row: 2 }) },
          { ok: true, record: makeImportRecord(stored, { mrn: 'DE-IMP-1', eye: 'RIGHT', row: 3 }) },
          { ok: true, record: makeImportRecord(stored, { mrn: 'DE-IMP-1', row: 4 }) },
          // Both prepared before either is written: the second meets the first on the unique content hash.
          { ok: true, record: makeImportRecord(fresh, { mrn: 'DE-IMP-3', row: 5 }) },
          { ok: true, record: makeImportRecord(fresh, { mrn: 'DE-IMP-4', row: 6 }) },
        ],
        lookahead: 4,
      });
      assert.deepEqual([summary.added, summary.duplicates, summary.rejected, summary.badRows], [1, 1, { CONFLICT: 3 }, 0]);
      assert.deepEqual(summary.problems.map((problem) => [problem.row, problem.code]), [[2, 'CONFLICT'], [3, 'CONFLICT'], [6, 'CONFLICT']]);
      assert.match(summary.problems[0].reason, new RegExp(`already stored as case ${storedId}, of another patient`));
      assert.match(summary.problems[1].reason, /of the same patient's LEFT eye, not the RIGHT eye/);
      const after = await countRows(db);
      for (const table of ['patient', 'visit', 'fundus_image', 'image_blob', 'grading', 'image_embedding']) assert.equal(after[table], before[table] + 1, `${table}: only DE-IMP-3 was written`);
    });

    test('a case carries the records known at its visit; later gradings of the eye, diagnoses and treatments are its follow-up', async () => {
      const patient = { mrn: 'DE-HISTORY', mrnSystem: MRN_SYSTEM, birthYear: 1958, diabetesType: 'TYPE_2' };
      const saveCase = async (overrides) => {
        const { body } = await save(caseInput(await uploadPhotograph(api, await makePhotograph()), { patient, ...overrides }));
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        return body.data.ingestCase.case;
      };
      const first = await saveCase({
        visitDate: '2021-03-10',
        grading: { drGrade: 1 },
        // Entered afterwards: a diagnosis and a laser session that came later than this photograph.
        diagnoses: [
          { icd10Code: 'E11.3292', text: 'mild NPDR, left eye', eye: 'LEFT', date: '2021-03-10' },
          { icd10Code: 'E11.3392', text: 'moderate NPDR, left eye', eye: 'LEFT', date: '2022-08-01' },
        ],
        treatments: [
          { type: 'OBSERVATION', eye: 'LEFT', date: '2021-03-10' },
          { type: 'PRP_LASER', eye: 'LEFT', date: '2023-01-15' },
        ],
      });
      const second = await saveCase({ visitDate: '2022-08-01', grading: { drGrade: 2 }, diagnoses: [{ icd10Code: 'E11.3392', text: 'moderate NPDR, left eye', eye: 'LEFT', date: '2022-08-01' }], treatments: [] });
      const rightEye = await saveCase({ visitDate: '2023-01-15', eye: 'RIGHT', grading: { drGrade: 0 }, diagnoses: [], treatments: [] });

      assert.deepEqual(first.diagnoses.map((d) => [d.code, d.date]), [['E11.3292', '2021-03-10']], 'what was known at the first visit');
      assert.deepEqual(first.treatments.map((t) => [t.type, t.date]), [['OBSERVATION', '2021-03-10']]);

      const { body } = await api.graphql(CASE, { id: first.id });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const reloaded = body.data.case;
      assert.deepEqual(reloaded.followUp.gradings, [{ imageId: second.id, visitDate: '2022-08-01', date: '2022-08-01', drGrade: 2, source: 'CLINICIAN' }], 'the later photograph of the LEFT eye only');
      assert.deepEqual(reloaded.followUp.diagnoses, [{ code: 'E11.3392', eye: 'LEFT', date: '2022-08-01' }], 'entered twice, stored once');
      assert.deepEqual(reloaded.followUp.treatments, [{ type: 'PRP_LASER', eye: 'LEFT', date: '2023-01-15' }]);

      const { body: secondBody } = await api.graphql(CASE, { id: second.id });
      const later = secondBody.data.case;
      assert.deepEqual(later.diagnoses.map((d) => d.code), ['E11.3292', 'E11.3392'], 'a diagnosis on the visit date belongs to the visit');
      assert.deepEqual(later.followUp.treatments.map((t) => t.type), ['PRP_LASER']);
      assert.deepEqual(later.followUp.gradings, []);

      const { body: rightBody } = await api.graphql(CASE, { id: rightEye.id });
      assert.deepEqual([rightBody.data.case.diagnoses, rightBody.data.case.treatments, rightBody.data.case.followUp.gradings], [[], [], []], "the LEFT eye's records are not the RIGHT eye's");
    });

    test('the fixture cohort holds no duplicated records, and no grade-0 case lists a retinopathy code known at its visit', async () => {
      const db = api.db;
      const repeats = await db.sql.query(`
        SELECT 'diagnosis' AS kind, count(*)::int AS n FROM diagnosis GROUP BY patient_id, icd10_code, eye, diagnosed_on HAVING count(*) > 1
        UNION ALL
        SELECT 'treatment', count(*)::int FROM treatment GROUP BY patient_id, type, agent, eye, performed_on HAVING count(*) > 1
        UNION ALL
        SELECT 'grading', count(*)::int FROM grading g JOIN fundus_image fi ON fi.id = g.image_id JOIN visit v ON v.id = fi.visit_id
        GROUP BY fi.patient_id, fi.eye, v.visit_date, g.source HAVING count(*) > 1`);
      assert.deepEqual(repeats, []);
      const gradeZero = await db.sql.query(`
        SELECT fi.id::text AS id FROM fundus_image fi JOIN patient p ON p.id = fi.patient_id JOIN dataset d ON d.id = p.dataset_id
        WHERE d.name = 'test-clinic' AND fi.dr_grade = 0 ORDER BY fi.id`);
      assert.ok(gradeZero.length > 0);
      for (const { id } of gradeZero) {
        const { body } = await api.graphql(CASE, { id });
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        assert.deepEqual(body.data.case.diagnoses.filter((d) => /^E1[0-3]\.3[1-5]/.test(d.code)), [], `case ${id}`);
      }
    });
  });
}
