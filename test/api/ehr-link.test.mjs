// EHR linking end to end on PGlite and PostgreSQL: find patients and cases by their identifiers, create and
// update patients, link and unlink Study UIDs, write gradings back, ingest a photograph with its Study UID in one
// call, keep an ehr-service credential inside its identifier system, and refuse bad input with a stable code
// while writing nothing. Every request is checked for exactly one audit_event row of its operation and outcome
// (found by the x-request-id header), and the audit chain must hold at the end.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, TINY_MODEL, countRows, repositoryRoot, startApi } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { buildCohort, FIXTURE_MODEL_VERSION } = await dist('fixtures/cohort.js');
const { makeSyntheticFundusPng } = await dist('embedding/testing/fixtures.js');
const { verifyAuditChain } = await dist('audit/audit.service.js');
const { readBundle } = await dist('importers/fhir.js');
const { ingestRecords } = await dist('modules/ingest/ingest.service.js');

const COHORT = buildCohort('test-clinic');
/** The system the demo-ehr token is bound to in tests (test/support/backends.mjs): the fixture cohort's MRNs. */
const EHR_SYSTEM = COHORT.mrnSystem;
const OTHER_HOSPITAL = 'urn:oid:2.16.840.1.113883.19.5';
const FHIR_HOSPITAL = 'urn:oid:2.16.840.1.113883.19.6';
const DICOM = 'urn:dicom:uid';
const NEXT_YEAR = new Date().getUTCFullYear() + 1;
const TOMORROW = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

const PATIENT_FIELDS = 'id mrn mrnSystem birthYear sex diabetesType diabetesDiagnosisYear isSynthetic dataset { name } externalLinks { system identifier }';
const CASE_FIELDS = 'id image { eye } patient { id mrn mrnSystem } visit { date } referenceGrading { drGrade source grader date maculopathy macularEdemaRisk } gradings { drGrade source grader }';

const PATIENT_BY_IDENTIFIER = `query P($identifier: IdentifierInput!) { patientByIdentifier(identifier: $identifier) { ${PATIENT_FIELDS} } }`;
const CASE_BY_EXTERNAL_ID = `query C($identifier: IdentifierInput!) { caseByExternalId(identifier: $identifier) { ${CASE_FIELDS} } }`;
const UPSERT_PATIENT = `mutation U($identifier: IdentifierInput!, $demographics: DemographicsInput! = {}, $dataset: String! = "clinic") {
  upsertPatient(identifier: $identifier, demographics: $demographics, dataset: $dataset) { status patient { ${PATIENT_FIELDS} } } }`;
const LINK_CASE = `mutation L($caseId: String!, $identifier: IdentifierInput!) { linkCase(caseId: $caseId, identifier: $identifier) { status case { ${CASE_FIELDS} } } }`;
const UNLINK_CASE = `mutation X($identifier: IdentifierInput!) { unlinkCase(identifier: $identifier) { ${CASE_FIELDS} } }`;
const RECORD_GRADING = `mutation G($input: RecordGradingInput!) { recordGrading(input: $input) { ${CASE_FIELDS} } }`;
const INGEST_CASE = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { ${CASE_FIELDS} } } }`;
const SIMILAR_CASES = 'query S($input: SimilarCasesInput!) { similarCases(input: $input) { modelVersion hits { case { id referenceGrading { drGrade } } } } }';

const SQL_INJECTION = "1'; DROP TABLE patient;--";
const HTML_INJECTION = '<script>alert(1)</script>';

for (const backend of BACKENDS) {
  describe(`EHR linking on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    /** Fixture scenario ids, filled in before(): two test-clinic patients with their photographs. */
    const fixture = {};

    /** The audit rows of one request, by the x-request-id header its response carried. */
    const auditRowsOf = (requestId) =>
      api.db.sql.query('SELECT operation, outcome, subject, role, patient_ids::text AS patient_ids, image_ids::text AS image_ids FROM audit_event WHERE request_id = $1 ORDER BY seq', [requestId]);

    /**
     * Sends one GraphQL request as `as` and checks its outcome: `expect` is 'OK' (no errors) or the error code;
     * the request must have left exactly one audit row, of `operation` with that outcome.
     */
    async function perform({ query, variables, as = 'demo-clinician', operation, expect = 'OK' }) {
      const response = await api.graphql(query, variables, { as });
      const requestId = response.headers.get('x-request-id');
      assert.ok(requestId, 'every response carries x-request-id');
      const errors = response.body.errors ?? [];
      if (expect === 'OK') assert.deepEqual(errors, [], `expected success, got ${JSON.stringify(errors)}`);
      else assert.equal(errors[0]?.extensions?.code, expect, `expected ${expect}, got ${JSON.stringify(response.body)}`);
      const rows = await auditRowsOf(requestId);
      assert.deepEqual(rows.map((row) => [row.operation, row.outcome]), [[operation, expect]], `audit rows of request ${requestId}`);
      return { data: response.body.data, error: errors[0], audit: rows[0] };
    }

    async function upload(as, tint, { width = 220, height = 180 } = {}) {
      const png = await makeSyntheticFundusPng({ width, height, tint });
      const response = await api.fetch('/uploads', { method: 'POST', headers: { 'content-type': 'image/png' }, body: png }, { as });
      const body = await response.json();
      assert.equal(response.status, 201, JSON.stringify(body));
      const rows = await auditRowsOf(response.headers.get('x-request-id'));
      assert.deepEqual(rows.map((row) => [row.operation, row.outcome]), [['upload', 'OK']]);
      return body.uploadToken;
    }

    const ingestInput = (uploadToken, overrides = {}) => ({
      uploadToken,
      patient: { mrn: 'EHR-INGEST-1', mrnSystem: EHR_SYSTEM, birthYear: 1962, sex: 'MALE', diabetesType: 'TYPE_2' },
      visitDate: '2025-03-14',
      eye: 'LEFT',
      grading: { drGrade: 2, grader: 'EHR import' },
      ...overrides,
    });

    const patientRow = async (id) => (await api.db.sql.query('SELECT xmin::text AS xmin, birth_year, sex::text AS sex, diabetes_type::text AS diabetes_type, diabetes_diagnosis_year FROM patient WHERE id = $1', [id]))[0];
    const imageGrade = async (id) => (await api.db.sql.query('SELECT dr_grade FROM fundus_image WHERE id = $1', [id]))[0].dr_grade;
    const auditCount = async () => (await api.db.sql.query('SELECT count(*)::int AS n FROM audit_event'))[0].n;

    before(async () => {
      // Searches compare the fixture's clustered embeddings; the tiny model embeds what ingestCase saves.
      api = await startApi(backend, { modelPath: TINY_MODEL, env: { SEARCH_MODEL_VERSION: FIXTURE_MODEL_VERSION } });
      const patientsWithImages = await api.db.sql.query(
        `SELECT p.id::text AS id, p.mrn, array_agg(i.id::text ORDER BY i.id) AS image_ids
         FROM patient p JOIN fundus_image i ON i.patient_id = p.id GROUP BY p.id, p.mrn HAVING count(*) >= 2 ORDER BY p.mrn LIMIT 2`,
      );
      assert.equal(patientsWithImages.length, 2, 'the test-clinic cohort has patients with two photographs');
      const ids = (value) => (Array.isArray(value) ? value : value.replace(/^\{|\}$/g, '').split(','));
      [fixture.first, fixture.second] = patientsWithImages.map((row) => ({ id: row.id, mrn: row.mrn, imageIds: ids(row.image_ids), record: COHORT.patients.find((patient) => patient.mrn === row.mrn) }));
      assert.ok(fixture.first.record && fixture.second.record, 'the stored MRNs are the fixture cohort\'s');
    });
    after(async () => api?.close());

    test('patientByIdentifier finds a fixture patient by MRN system and value, for a clinician and for the EHR bound to that system', async () => {
      const { record } = fixture.first;
      for (const as of ['demo-clinician', 'demo-ehr']) {
        const { data, audit } = await perform({ query: PATIENT_BY_IDENTIFIER, variables: { identifier: { system: EHR_SYSTEM, value: record.mrn } }, as, operation: 'read-patient' });
        const patient = data.patientByIdentifier;
        assert.deepEqual(
          [patient.id, patient.mrn, patient.mrnSystem, patient.birthYear, patient.sex, patient.diabetesType, patient.isSynthetic],
          [fixture.first.id, record.mrn, EHR_SYSTEM, record.birthYear, record.sex, record.diabetesType, true],
        );
        assert.equal(audit.patient_ids, `{${fixture.first.id}}`, 'the audit row names the patient read');
      }
      await perform({ query: PATIENT_BY_IDENTIFIER, variables: { identifier: { system: EHR_SYSTEM, value: 'NO-SUCH-MRN' } }, as: 'demo-ehr', operation: 'read-patient', expect: 'NOT_FOUND' });
    });

    test('upsertPatient: CREATED, the same demographics again UNCHANGED (no row touched), a changed field UPDATED with the others kept', async () => {
      const identifier = { system: EHR_SYSTEM, value: 'EHR-NEW-0001' };
      const demographics = { birthYear: 1970, sex: 'FEMALE', diabetesType: 'TYPE_2', diabetesDiagnosisYear: 2001 };
      const before = await countRows(api.db);
      const created = await perform({ query: UPSERT_PATIENT, variables: { identifier, demographics, dataset: 'ehr-clinic' }, as: 'demo-ehr', operation: 'write-patient' });
      assert.equal(created.data.upsertPatient.status, 'CREATED');
      const patient = created.data.upsertPatient.patient;
      assert.deepEqual(
        [patient.mrn, patient.mrnSystem, patient.birthYear, patient.sex, patient.diabetesType, patient.diabetesDiagnosisYear, patient.dataset.name, patient.isSynthetic],
        ['EHR-NEW-0001', EHR_SYSTEM, 1970, 'FEMALE', 'TYPE_2', 2001, 'ehr-clinic', false],
      );
      const afterCreate = await countRows(api.db);
      assert.deepEqual([afterCreate.patient - before.patient, afterCreate.dataset - before.dataset], [1, 1]);
      fixture.upserted = patient.id;

      const stored = await patientRow(patient.id);
      for (const again of [demographics, { sex: 'FEMALE' }, {}]) {
        const unchanged = await perform({ query: UPSERT_PATIENT, variables: { identifier, demographics: again, dataset: 'ehr-clinic' }, as: 'demo-ehr', operation: 'write-patient' });
        assert.equal(unchanged.data.upsertPatient.status, 'UNCHANGED', JSON.stringify(again));
        assert.deepEqual(await patientRow(patient.id), stored, 'UNCHANGED wrote nothing (same xmin)');
        assert.deepEqual(await countRows(api.db), afterCreate);
      }

      const updated = await perform({ query: UPSERT_PATIENT, variables: { identifier, demographics: { birthYear: 1971 } }, as: 'demo-ehr', operation: 'write-patient' });
      assert.equal(updated.data.upsertPatient.status, 'UPDATED');
      const row = await patientRow(patient.id);
      assert.notEqual(row.xmin, stored.xmin, 'the row was written');
      assert.deepEqual([row.birth_year, row.sex, row.diabetes_type, row.diabetes_diagnosis_year], [1971, 'FEMALE', 'TYPE_2', 2001], 'fields left out kept their values');
      assert.deepEqual(await countRows(api.db), afterCreate, 'an update adds no row (not even a dataset for the default "clinic")');

      const found = await perform({ query: PATIENT_BY_IDENTIFIER, variables: { identifier }, as: 'demo-ehr', operation: 'read-patient' });
      assert.deepEqual([found.data.patientByIdentifier.id, found.data.patientByIdentifier.birthYear], [patient.id, 1971], 'patientByIdentifier finds the upserted patient');
    });

    test('linkCase: LINKED, the same link again UNCHANGED, the same Study UID on another case CONFLICT naming the linked case; caseByExternalId follows the link', async () => {
      const [caseA, caseB] = fixture.first.imageIds;
      const identifier = { system: DICOM, value: '1.2.840.113619.2.55.3.604688119.971.1001' };
      const before = await countRows(api.db);
      const linked = await perform({ query: LINK_CASE, variables: { caseId: caseA, identifier }, as: 'demo-ehr', operation: 'link' });
      assert.equal(linked.data.linkCase.status, 'LINKED');
      assert.equal(linked.data.linkCase.case.id, caseA);
      assert.equal(linked.audit.image_ids, `{${caseA}}`);
      const afterLink = await countRows(api.db);
      assert.equal(afterLink.external_link - before.external_link, 1);

      for (const as of ['demo-ehr', 'demo-clinician']) {
        const found = await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier }, as, operation: 'read-case' });
        assert.deepEqual([found.data.caseByExternalId.id, found.data.caseByExternalId.patient.id], [caseA, fixture.first.id]);
      }

      const again = await perform({ query: LINK_CASE, variables: { caseId: caseA, identifier }, as: 'demo-ehr', operation: 'link' });
      assert.equal(again.data.linkCase.status, 'UNCHANGED');
      assert.deepEqual(await countRows(api.db), afterLink);

      const clash = await perform({ query: LINK_CASE, variables: { caseId: caseB, identifier }, as: 'demo-ehr', operation: 'link', expect: 'CONFLICT' });
      assert.equal(clash.error.extensions.linkedCaseId, caseA);
      assert.match(clash.error.message, new RegExp(caseA));
      assert.deepEqual(await countRows(api.db), afterLink, 'a CONFLICT changes nothing');
      const still = await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier }, as: 'demo-ehr', operation: 'read-case' });
      assert.equal(still.data.caseByExternalId.id, caseA, 'the identifier still points to the first case');

      // The EHR's own encounter id (its system) linked to a case; an MRN of that system cannot also be a link.
      const encounter = await perform({ query: LINK_CASE, variables: { caseId: caseB, identifier: { system: EHR_SYSTEM, value: 'ENC-2025-0001' } }, as: 'demo-ehr', operation: 'link' });
      assert.equal(encounter.data.linkCase.status, 'LINKED');
      const mrnClash = await perform({ query: LINK_CASE, variables: { caseId: caseB, identifier: { system: EHR_SYSTEM, value: fixture.second.mrn } }, as: 'demo-ehr', operation: 'link', expect: 'CONFLICT' });
      assert.equal(mrnClash.error.extensions.linkedPatientId, fixture.second.id);
      assert.equal((await countRows(api.db)).external_link, afterLink.external_link + 1);
      fixture.linked = { identifier, caseA, caseB };
    });

    test('unlinkCase: refused to the ehr-service (FORBIDDEN, nothing changed), done by an admin, after which the Study UID can point elsewhere', async () => {
      const { identifier, caseA, caseB } = fixture.linked;
      const before = await countRows(api.db);
      const refused = await perform({ query: UNLINK_CASE, variables: { identifier }, as: 'demo-ehr', operation: 'unlink', expect: 'FORBIDDEN' });
      assert.deepEqual(await countRows(api.db), before);
      await perform({ query: UNLINK_CASE, variables: { identifier }, as: 'demo-clinician', operation: 'unlink', expect: 'FORBIDDEN' });

      const unlinked = await perform({ query: UNLINK_CASE, variables: { identifier }, as: 'demo-admin', operation: 'unlink' });
      assert.equal(unlinked.data.unlinkCase.id, caseA);
      assert.equal((await countRows(api.db)).external_link, before.external_link - 1);
      await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier }, as: 'demo-ehr', operation: 'read-case', expect: 'NOT_FOUND' });
      await perform({ query: UNLINK_CASE, variables: { identifier }, as: 'demo-admin', operation: 'unlink', expect: 'NOT_FOUND' });

      const relinked = await perform({ query: LINK_CASE, variables: { caseId: caseB, identifier }, as: 'demo-ehr', operation: 'link' });
      assert.equal(relinked.data.linkCase.status, 'LINKED');
      const found = await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier }, as: 'demo-ehr', operation: 'read-case' });
      assert.equal(found.data.caseByExternalId.id, caseB);
    });

    test('recordGrading by the EHR: source EHR, it becomes the reference grade, and the grade filter of similarCases sees it', async () => {
      const target = fixture.first.imageIds[0];
      const oldGrade = await imageGrade(target);
      const newGrade = (oldGrade + 2) % 5;
      const query = fixture.second.imageIds[0];
      const search = async (grade) => {
        const { data } = await perform({ query: SIMILAR_CASES, variables: { input: { imageId: query, k: 100, filters: { drGrades: [grade] } } }, operation: 'search' });
        assert.equal(data.similarCases.modelVersion, FIXTURE_MODEL_VERSION);
        assert.ok(data.similarCases.hits.every((hit) => hit.case.referenceGrading.drGrade === grade));
        return data.similarCases.hits.map((hit) => hit.case.id);
      };
      const [{ n: withOldGrade }] = await api.db.sql.query('SELECT count(*)::int AS n FROM fundus_image WHERE dr_grade = $1', [oldGrade]);
      assert.ok(withOldGrade < 100, 'k = 100 returns every case of the grade');
      assert.ok((await search(oldGrade)).includes(target));
      assert.ok(!(await search(newGrade)).includes(target));

      const before = await countRows(api.db);
      const { data, audit } = await perform({ query: RECORD_GRADING, variables: { input: { caseId: target, drGrade: newGrade, maculopathy: true, macularEdemaRisk: 1, grader: "Dr O'Neil @ EHR" } }, as: 'demo-ehr', operation: 'write-grading' });
      const graded = data.recordGrading;
      assert.deepEqual(graded.referenceGrading, { drGrade: newGrade, source: 'EHR', grader: "Dr O'Neil @ EHR", date: new Date().toISOString().slice(0, 10), maculopathy: true, macularEdemaRisk: 1 });
      assert.deepEqual(graded.gradings.at(-1), { drGrade: newGrade, source: 'EHR', grader: "Dr O'Neil @ EHR" });
      assert.equal(audit.image_ids, `{${target}}`);
      assert.equal(await imageGrade(target), newGrade, 'fundus_image.dr_grade follows the new grading');
      const afterGrading = await countRows(api.db);
      assert.deepEqual({ ...afterGrading, grading: afterGrading.grading - 1 }, before, 'one grading row and nothing else');
      assert.ok((await search(newGrade)).includes(target));
      assert.ok(!(await search(oldGrade)).includes(target));

      const byClinician = await perform({ query: RECORD_GRADING, variables: { input: { caseId: target, drGrade: oldGrade, grader: 'Dr Revise' } }, operation: 'write-grading' });
      assert.deepEqual([byClinician.data.recordGrading.referenceGrading.drGrade, byClinician.data.recordGrading.referenceGrading.source], [oldGrade, 'CLINICIAN']);
      assert.equal(await imageGrade(target), oldGrade);

      const beforeResearcher = await countRows(api.db);
      const refused = await perform({ query: RECORD_GRADING, variables: { input: { caseId: target, drGrade: 4 } }, as: 'demo-researcher', operation: 'write-grading', expect: 'FORBIDDEN' });
      assert.deepEqual(await countRows(api.db), beforeResearcher);
      assert.equal(await imageGrade(target), oldGrade);
    });

    test('ingestCase by the EHR with its MRN and a Study UID in one call: the case is found by the UID; a second photograph with the same UID is CONFLICT and writes nothing', async () => {
      const studyUid = { system: DICOM, value: '1.2.840.113619.2.55.3.604688119.971.2001' };
      const accession = { system: EHR_SYSTEM, value: 'ACC-2001' };
      const token = await upload('demo-ehr', 0.42);
      const before = await countRows(api.db);
      const { data } = await perform({ query: INGEST_CASE, variables: { input: ingestInput(token, { studyIdentifiers: [studyUid, accession] }) }, as: 'demo-ehr', operation: 'ingest' });
      assert.equal(data.ingestCase.status, 'ADDED');
      const saved = data.ingestCase.case;
      assert.deepEqual([saved.patient.mrn, saved.patient.mrnSystem, saved.image.eye], ['EHR-INGEST-1', EHR_SYSTEM, 'LEFT']);
      const afterIngest = await countRows(api.db);
      assert.deepEqual(
        ['patient', 'fundus_image', 'grading', 'image_embedding', 'external_link'].map((table) => afterIngest[table] - before[table]),
        [1, 1, 1, 1, 2],
      );
      for (const identifier of [studyUid, accession]) {
        const found = await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier }, as: 'demo-ehr', operation: 'read-case' });
        assert.equal(found.data.caseByExternalId.id, saved.id);
      }

      const secondToken = await upload('demo-ehr', 0.77);
      const clash = await perform({ query: INGEST_CASE, variables: { input: ingestInput(secondToken, { eye: 'RIGHT', studyIdentifiers: [studyUid] }) }, as: 'demo-ehr', operation: 'ingest', expect: 'CONFLICT' });
      assert.equal(clash.error.extensions.linkedCaseId, saved.id);
      assert.deepEqual(await countRows(api.db), afterIngest, 'the CONFLICT wrote nothing: no image, visit, grading or link');
      fixture.ingested = { caseId: saved.id, studyUid };
    });

    test('an ehr-service credential cannot touch another identifier system, nor a case whose patient lacks its system (FORBIDDEN, nothing written)', async () => {
      // Another hospital's patient, saved by an admin with a Study UID; and one imported from a FHIR bundle,
      // whose ImagingStudy UID the importer links to the patient (urn:dicom:uid, a system no credential owns).
      const adminToken = await upload('demo-admin', 0.15);
      const foreignUid = { system: DICOM, value: '1.2.840.113619.2.55.3.604688119.971.3001' };
      const { data } = await perform({
        query: INGEST_CASE,
        variables: { input: ingestInput(adminToken, { patient: { mrn: 'OTHER-0001', mrnSystem: OTHER_HOSPITAL }, studyIdentifiers: [foreignUid] }) },
        as: 'demo-admin',
        operation: 'ingest',
      });
      const foreignCase = data.ingestCase.case.id;
      const fhirStudyUid = { system: DICOM, value: '1.2.840.99.4242' };
      const bundle = {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          { resource: { resourceType: 'Patient', id: 'p', identifier: [{ system: FHIR_HOSPITAL, value: 'FHIR-0042', type: { coding: [{ code: 'MR' }] } }], gender: 'female', birthDate: '1958-04-01' } },
          { resource: { resourceType: 'ImagingStudy', id: 's', subject: { reference: 'Patient/p' }, started: '2024-05-14T10:00:00Z', identifier: [fhirStudyUid] } },
          { resource: { resourceType: 'Media', id: 'l', subject: { reference: 'Patient/p' }, bodySite: { coding: [{ system: 'http://snomed.info/sct', code: '362503005', display: 'left eye' }] }, content: { contentType: 'image/png', data: (await makeSyntheticFundusPng({ width: 200, height: 160, tint: 0.55 })).toString('base64') } } },
        ],
      };
      const imported = await ingestRecords({ prisma: api.db.prisma, embedder: api.embedder, items: readBundle(bundle, { datasetName: 'fhir-other' }) });
      assert.equal(imported.added, 1);
      const found = await perform({ query: PATIENT_BY_IDENTIFIER, variables: { identifier: fhirStudyUid }, as: 'demo-clinician', operation: 'read-patient' });
      assert.equal(found.data.patientByIdentifier.mrnSystem, FHIR_HOSPITAL, 'the FHIR study UID finds its patient (for an unbound role)');

      const ehrToken = await upload('demo-ehr', 0.63);
      const refusals = [
        { name: 'patientByIdentifier in another system', query: PATIENT_BY_IDENTIFIER, variables: { identifier: { system: OTHER_HOSPITAL, value: 'OTHER-0001' } }, operation: 'read-patient', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: 'patientByIdentifier by the Study UID of a foreign patient', query: PATIENT_BY_IDENTIFIER, variables: { identifier: fhirStudyUid }, operation: 'read-patient', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: 'upsertPatient in another system', query: UPSERT_PATIENT, variables: { identifier: { system: OTHER_HOSPITAL, value: 'OTHER-0002' }, demographics: { birthYear: 1950 } }, operation: 'write-patient', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: "upsertPatient of another hospital's existing patient", query: UPSERT_PATIENT, variables: { identifier: { system: OTHER_HOSPITAL, value: 'OTHER-0001' }, demographics: { birthYear: 1950 } }, operation: 'write-patient', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: 'ingestCase with a patient of another system', query: INGEST_CASE, variables: { input: ingestInput(ehrToken, { patient: { mrn: 'OTHER-0003', mrnSystem: OTHER_HOSPITAL } }) }, operation: 'ingest', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: 'ingestCase with a study identifier of another system', query: INGEST_CASE, variables: { input: ingestInput(ehrToken, { studyIdentifiers: [{ system: OTHER_HOSPITAL, value: 'ACC-9' }] }) }, operation: 'ingest', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: "caseByExternalId of a foreign patient's Study UID", query: CASE_BY_EXTERNAL_ID, variables: { identifier: foreignUid }, operation: 'read-case', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: 'caseByExternalId in another system', query: CASE_BY_EXTERNAL_ID, variables: { identifier: { system: OTHER_HOSPITAL, value: 'ACC-1' } }, operation: 'read-case', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: "linkCase of a Study UID to a foreign patient's case", query: LINK_CASE, variables: { caseId: foreignCase, identifier: { system: DICOM, value: '1.2.840.113619.2.55.3.604688119.971.3002' } }, operation: 'link', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: "linkCase of its own system's id to a foreign patient's case", query: LINK_CASE, variables: { caseId: foreignCase, identifier: { system: EHR_SYSTEM, value: 'ENC-STOLEN-1' } }, operation: 'link', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
        { name: "recordGrading of a foreign patient's case", query: RECORD_GRADING, variables: { input: { caseId: foreignCase, drGrade: 4 } }, operation: 'write-grading', reason: 'FOREIGN_IDENTIFIER_SYSTEM' },
      ];
      const rowsBefore = await countRows(api.db);
      const gradeBefore = await imageGrade(foreignCase);
      for (const refusal of refusals) {
        const { error, data: leaked } = await perform({ query: refusal.query, variables: refusal.variables, as: 'demo-ehr', operation: refusal.operation, expect: 'FORBIDDEN' });
        assert.equal(error.extensions.reason, refusal.reason, refusal.name);
        assert.equal(leaked, null, `${refusal.name}: no data`);
        assert.deepEqual(await countRows(api.db), rowsBefore, `${refusal.name}: nothing written`);
      }
      assert.equal(await imageGrade(foreignCase), gradeBefore);

      // The same requests inside its own system still work: the refusals were about the system, not the role.
      const own = await perform({ query: CASE_BY_EXTERNAL_ID, variables: { identifier: fixture.ingested.studyUid }, as: 'demo-ehr', operation: 'read-case' });
      assert.equal(own.data.caseByExternalId.id, fixture.ingested.caseId);
    });

    // Each bad input: the code, a message naming the field, nothing written, one audit row with that outcome.
    // `as` is a role the request would otherwise be allowed for (an ehr-service asking about a non-URI system
    // is refused as foreign before the input is read, so those rows run as the admin).
    const fixtureCase = () => fixture.first.imageIds[1];
    const identifierCases = (makeIdentifier, label) => [
      ...['hospital', 'urn:', 'javascript:alert(1)', 'urn:oid:', 'http://', SQL_INJECTION, HTML_INJECTION, ' '].map((system) => ({ name: `${label} with system ${JSON.stringify(system)}`, identifier: makeIdentifier({ system, value: 'MRN-1' }), field: 'identifier.system' })),
      ...['', 'x'.repeat(10 * 1024), SQL_INJECTION, HTML_INJECTION, ' MRN-1', '-leading-dash'].map((value) => ({ name: `${label} with value ${JSON.stringify(value.length > 40 ? `${value.slice(0, 10)}... (${value.length} chars)` : value)}`, identifier: makeIdentifier({ system: EHR_SYSTEM, value }), field: 'identifier.value' })),
    ];
    const BAD_INPUTS = [
      ...identifierCases((identifier) => identifier, 'patientByIdentifier').map((row) => ({ ...row, query: PATIENT_BY_IDENTIFIER, variables: () => ({ identifier: row.identifier }), operation: 'read-patient', as: 'demo-admin' })),
      ...identifierCases((identifier) => identifier, 'caseByExternalId').map((row) => ({ ...row, query: CASE_BY_EXTERNAL_ID, variables: () => ({ identifier: row.identifier }), operation: 'read-case', as: 'demo-admin' })),
      ...identifierCases((identifier) => identifier, 'upsertPatient').map((row) => ({ ...row, query: UPSERT_PATIENT, variables: () => ({ identifier: row.identifier, demographics: { birthYear: 1960 } }), operation: 'write-patient', as: 'demo-admin' })),
      ...identifierCases((identifier) => identifier, 'linkCase').map((row) => ({ ...row, query: LINK_CASE, variables: () => ({ caseId: fixtureCase(), identifier: row.identifier }), operation: 'link', as: 'demo-admin' })),
      ...identifierCases((identifier) => identifier, 'unlinkCase').map((row) => ({ ...row, query: UNLINK_CASE, variables: () => ({ identifier: row.identifier }), operation: 'unlink', as: 'demo-admin' })),
      ...identifierCases((identifier) => [identifier], 'ingestCase studyIdentifiers').map((row) => ({
        ...row,
        field: row.field.replace('identifier', 'studyIdentifiers[0]'),
        query: INGEST_CASE,
        variables: (context) => ({ input: ingestInput(context.adminToken, { patient: { mrn: 'BAD-INPUT-1', mrnSystem: EHR_SYSTEM }, studyIdentifiers: row.identifier }) }),
        operation: 'ingest',
        as: 'demo-admin',
      })),
      // The ehr-service sending bad values in its own system gets the same answers.
      ...[['', 'identifier.value'], [SQL_INJECTION, 'identifier.value'], [HTML_INJECTION, 'identifier.value']].flatMap(([value, field]) => [
        { name: `patientByIdentifier (ehr-service) with value ${JSON.stringify(value)}`, query: PATIENT_BY_IDENTIFIER, variables: () => ({ identifier: { system: EHR_SYSTEM, value } }), operation: 'read-patient', as: 'demo-ehr', field },
        { name: `upsertPatient (ehr-service) with value ${JSON.stringify(value)}`, query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value } }), operation: 'write-patient', as: 'demo-ehr', field },
        { name: `linkCase (ehr-service) with value ${JSON.stringify(value)}`, query: LINK_CASE, variables: () => ({ caseId: fixtureCase(), identifier: { system: DICOM, value } }), operation: 'link', as: 'demo-ehr', field },
      ]),
      ...[SQL_INJECTION, HTML_INJECTION, 'Clinic', 'a b', '-clinic', 'x'.repeat(64)].map((dataset) => ({ name: `upsertPatient with dataset ${JSON.stringify(dataset)}`, query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value: 'EHR-BAD-DATASET' }, dataset }), operation: 'write-patient', as: 'demo-ehr', field: 'dataset' })),
      ...[SQL_INJECTION, HTML_INJECTION].map((dataset) => ({ name: `ingestCase with dataset ${JSON.stringify(dataset)}`, query: INGEST_CASE, variables: (context) => ({ input: ingestInput(context.adminToken, { dataset }) }), operation: 'ingest', as: 'demo-admin', field: 'dataset' })),
      { name: 'upsertPatient with birthYear 1800', query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value: 'EHR-BAD-YEAR' }, demographics: { birthYear: 1800 } }), operation: 'write-patient', as: 'demo-ehr', field: 'demographics.birthYear' },
      { name: 'upsertPatient with birthYear next year', query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value: 'EHR-BAD-YEAR' }, demographics: { birthYear: NEXT_YEAR } }), operation: 'write-patient', as: 'demo-ehr', field: 'demographics.birthYear' },
      { name: 'upsertPatient with diabetesDiagnosisYear next year', query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value: 'EHR-BAD-YEAR' }, demographics: { diabetesDiagnosisYear: NEXT_YEAR } }), operation: 'write-patient', as: 'demo-ehr', field: 'demographics.diabetesDiagnosisYear' },
      { name: 'upsertPatient with diabetesDiagnosisYear before birthYear', query: UPSERT_PATIENT, variables: () => ({ identifier: { system: EHR_SYSTEM, value: 'EHR-BAD-YEAR' }, demographics: { birthYear: 1980, diabetesDiagnosisYear: 1979 } }), operation: 'write-patient', as: 'demo-ehr', field: 'demographics.diabetesDiagnosisYear' },
      {
        name: "upsertPatient with diabetesDiagnosisYear before the stored patient's birthYear",
        query: UPSERT_PATIENT,
        variables: () => ({ identifier: { system: EHR_SYSTEM, value: fixture.first.record.mrn }, demographics: { diabetesDiagnosisYear: fixture.first.record.birthYear - 1 } }),
        operation: 'write-patient',
        as: 'demo-ehr',
        field: 'demographics.diabetesDiagnosisYear',
        unchangedPatient: () => fixture.first.id,
      },
      {
        name: "upsertPatient with a birthYear after the stored patient's diabetesDiagnosisYear",
        query: UPSERT_PATIENT,
        variables: () => ({ identifier: { system: EHR_SYSTEM, value: fixture.first.record.mrn }, demographics: { birthYear: fixture.first.record.diabetesDiagnosisYear + 1 } }),
        operation: 'write-patient',
        as: 'demo-ehr',
        field: 'demographics.diabetesDiagnosisYear',
        unchangedPatient: () => fixture.first.id,
      },
      { name: 'ingestCase with patient.birthYear 1800', query: INGEST_CASE, variables: (context) => ({ input: ingestInput(context.adminToken, { patient: { mrn: 'BAD-INPUT-2', mrnSystem: EHR_SYSTEM, birthYear: 1800 } }) }), operation: 'ingest', as: 'demo-admin', field: 'patient.birthYear' },
      { name: 'ingestCase with patient.birthYear next year', query: INGEST_CASE, variables: (context) => ({ input: ingestInput(context.adminToken, { patient: { mrn: 'BAD-INPUT-2', mrnSystem: EHR_SYSTEM, birthYear: NEXT_YEAR } }) }), operation: 'ingest', as: 'demo-admin', field: 'patient.birthYear' },
      ...[7, -1].map((drGrade) => ({ name: `recordGrading with grade ${drGrade}`, query: RECORD_GRADING, variables: () => ({ input: { caseId: fixtureCase(), drGrade } }), operation: 'write-grading', as: 'demo-ehr', field: 'drGrade' })),
      { name: 'recordGrading with macularEdemaRisk 3', query: RECORD_GRADING, variables: () => ({ input: { caseId: fixtureCase(), drGrade: 1, macularEdemaRisk: 3 } }), operation: 'write-grading', as: 'demo-ehr', field: 'macularEdemaRisk' },
      ...[SQL_INJECTION, HTML_INJECTION, 'x'.repeat(101)].map((grader) => ({ name: `recordGrading with grader ${JSON.stringify(grader.slice(0, 30))}`, query: RECORD_GRADING, variables: () => ({ input: { caseId: fixtureCase(), drGrade: 1, grader } }), operation: 'write-grading', as: 'demo-ehr', field: 'grader' })),
      { name: 'recordGrading with gradedOn in the future', query: RECORD_GRADING, variables: () => ({ input: { caseId: fixtureCase(), drGrade: 1, gradedOn: TOMORROW } }), operation: 'write-grading', as: 'demo-ehr', field: 'gradedOn' },
      { name: 'recordGrading with gradedOn before the visit', query: RECORD_GRADING, variables: (context) => ({ input: { caseId: fixtureCase(), drGrade: 1, gradedOn: context.dayBeforeVisit } }), operation: 'write-grading', as: 'demo-ehr', field: 'gradedOn' },
      // Not a date at all: refused by the LocalDate scalar before any resolver runs (audited as "graphql").
      ...[SQL_INJECTION, HTML_INJECTION, '2025-02-30'].map((gradedOn) => ({ name: `recordGrading with gradedOn ${JSON.stringify(gradedOn)}`, query: RECORD_GRADING, variables: () => ({ input: { caseId: fixtureCase(), drGrade: 1, gradedOn } }), operation: 'graphql', as: 'demo-ehr', field: 'gradedOn' })),
      ...['not-a-uuid', SQL_INJECTION, HTML_INJECTION, ''].flatMap((caseId) => [
        { name: `recordGrading with caseId ${JSON.stringify(caseId)}`, query: RECORD_GRADING, variables: () => ({ input: { caseId, drGrade: 1 } }), operation: 'write-grading', as: 'demo-ehr', field: 'caseId' },
        { name: `linkCase with caseId ${JSON.stringify(caseId)}`, query: LINK_CASE, variables: () => ({ caseId, identifier: { system: DICOM, value: '1.2.840.1.9.1' } }), operation: 'link', as: 'demo-ehr', field: 'caseId' },
      ]),
      { name: 'recordGrading of an unknown case', query: RECORD_GRADING, variables: () => ({ input: { caseId: randomUUID(), drGrade: 1 } }), operation: 'write-grading', as: 'demo-ehr', field: 'case', code: 'NOT_FOUND' },
      { name: 'linkCase of an unknown case', query: LINK_CASE, variables: () => ({ caseId: randomUUID(), identifier: { system: DICOM, value: '1.2.840.1.9.2' } }), operation: 'link', as: 'demo-ehr', field: 'case', code: 'NOT_FOUND' },
      { name: 'linkCase of an unknown case by an admin', query: LINK_CASE, variables: () => ({ caseId: randomUUID(), identifier: { system: DICOM, value: '1.2.840.1.9.3' } }), operation: 'link', as: 'demo-admin', field: 'case', code: 'NOT_FOUND' },
    ];

    test(`bad input (${BAD_INPUTS.length} requests): each gets its stable code and a message naming the field, writes nothing, and leaves one audit row`, async () => {
      const [visit] = await api.db.sql.query('SELECT v.visit_date::text AS date FROM fundus_image i JOIN visit v ON v.id = i.visit_id WHERE i.id = $1', [fixtureCase()]);
      const context = { adminToken: await upload('demo-admin', 0.91), dayBeforeVisit: new Date(Date.parse(`${visit.date.slice(0, 10)}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10) };
      const failures = [];
      for (const row of BAD_INPUTS) {
        const code = row.code ?? 'BAD_USER_INPUT';
        const before = await countRows(api.db);
        const patientBefore = row.unchangedPatient ? await patientRow(row.unchangedPatient()) : null;
        try {
          const { error, data } = await perform({ query: row.query, variables: row.variables(context), as: row.as, operation: row.operation, expect: code });
          assert.equal(data ?? null, null, 'no data');
          assert.match(error.message, new RegExp(row.field.replace(/[[\]]/g, '\\$&'), 'i'), 'the message names the field');
          assert.ok(!/prisma|sql|stack|\bat \w+ \(/i.test(error.message.replace(SQL_INJECTION.slice(0, 40), '')), `no internals in ${JSON.stringify(error.message)}`);
          assert.deepEqual(await countRows(api.db), before, 'nothing written');
          if (patientBefore) assert.deepEqual(await patientRow(row.unchangedPatient()), patientBefore, 'the stored patient is untouched');
        } catch (failure) {
          failures.push(`${row.name}: ${failure.message}`);
        }
      }
      assert.deepEqual(failures, []);
      const [{ n }] = await api.db.sql.query("SELECT count(*)::int AS n FROM patient WHERE mrn IN ('BAD-INPUT-1', 'BAD-INPUT-2', 'EHR-BAD-DATASET', 'EHR-BAD-YEAR')");
      assert.equal(n, 0);
    });

    // ingestCase checks the patient's identifier and the grader as upsertPatient and recordGrading do; it used to
    // store a patient MRN, MRN system and grader that upsertPatient and recordGrading refuse.
    const INGEST_PATIENT_BAD_INPUTS = [
      { name: 'patient.mrnSystem "hospital"', patient: { mrn: 'BAD-INGEST-1', mrnSystem: 'hospital' }, field: 'patient.mrnSystem' },
      { name: 'patient.mrnSystem "javascript:alert(1)"', patient: { mrn: 'BAD-INGEST-2', mrnSystem: 'javascript:alert(1)' }, field: 'patient.mrnSystem' },
      { name: 'patient.mrn with SQL', patient: { mrn: SQL_INJECTION, mrnSystem: OTHER_HOSPITAL }, field: 'patient.mrn' },
      { name: 'patient.mrn with HTML', patient: { mrn: HTML_INJECTION, mrnSystem: OTHER_HOSPITAL }, field: 'patient.mrn' },
      { name: 'patient.mrn of 10 kB', patient: { mrn: 'x'.repeat(10 * 1024), mrnSystem: OTHER_HOSPITAL }, field: 'patient.mrn' },
      { name: 'grading.grader with HTML', patient: { mrn: 'BAD-INGEST-3', mrnSystem: OTHER_HOSPITAL }, grading: { drGrade: 1, grader: HTML_INJECTION }, field: 'grading.grader' },
    ];
    test('ingestCase refuses a patient MRN, MRN system or grader that upsertPatient / recordGrading refuse', async () => {
      const failures = [];
      let tint = 0.05;
      for (const row of INGEST_PATIENT_BAD_INPUTS) {
        tint += 0.07;
        const token = await upload('demo-admin', tint, { width: 230, height: 170 });
        const before = await countRows(api.db);
        try {
          const { error } = await perform({ query: INGEST_CASE, variables: { input: ingestInput(token, { patient: row.patient, ...(row.grading ? { grading: row.grading } : {}) }) }, as: 'demo-admin', operation: 'ingest', expect: 'BAD_USER_INPUT' });
          assert.match(error.message, new RegExp(row.field.replace('.', '\\.')));
          assert.deepEqual(await countRows(api.db), before);
        } catch (failure) {
          failures.push(`${row.name}: ${failure.message.split('\n')[0]}`);
        }
      }
      assert.deepEqual(failures, []);
    });

    test("ingestCase by the ehr-service of a photograph already stored for a foreign patient does not return that patient's case", async () => {
      // The admin's foreign case above was saved from this synthetic photograph (same size and tint: same bytes).
      const token = await upload('demo-ehr', 0.15);
      // Another patient's photograph is CONFLICT (data-entry checks), naming the stored case's id only: no patient data.
      const { data, error } = await perform({ query: INGEST_CASE, variables: { input: ingestInput(token, { patient: { mrn: 'EHR-DUP-1', mrnSystem: EHR_SYSTEM } }) }, as: 'demo-ehr', operation: 'ingest', expect: 'CONFLICT' });
      assert.equal(data, null);
      assert.deepEqual(Object.keys(error.extensions).sort(), ['caseId', 'code', 'field']);
      assert.equal(JSON.stringify(error).includes(OTHER_HOSPITAL), false);
    });

    test('the audit log holds every request above, newest first in numeric order, and its hash chain has no break', async () => {
      const total = await auditCount();
      const AUDIT_PAGE = 'query A($before: String) { auditEvents(first: 7, before: $before) { nodes { seq } nextBefore } }';
      const first = await perform({ query: AUDIT_PAGE, variables: {}, as: 'demo-admin', operation: 'read-audit' });
      const second = await perform({ query: AUDIT_PAGE, variables: { before: first.data.auditEvents.nextBefore }, as: 'demo-admin', operation: 'read-audit' });
      const seqs = [...first.data.auditEvents.nodes, ...second.data.auditEvents.nodes].map((node) => Number(node.seq));
      // The first page is read before its own request's row is written; the second page continues below it.
      assert.deepEqual(seqs, Array.from({ length: 14 }, (_, index) => total - index), 'two pages of seq, newest first, numerically');
      const result = await verifyAuditChain(api.db.sql);
      assert.equal(result.firstBroken, null, JSON.stringify(result.firstBroken));
      assert.equal(result.rows, await auditCount());
      assert.ok(result.rows > BAD_INPUTS.length, `${result.rows} rows`);
      const subjects = await api.db.sql.query("SELECT DISTINCT subject FROM audit_event WHERE operation IN ('read-patient', 'read-case', 'write-patient', 'link', 'unlink', 'write-grading', 'ingest') ORDER BY subject");
      assert.deepEqual(subjects.map((row) => row.subject), ['demo-admin', 'demo-clinician', 'demo-ehr', 'demo-researcher']);
    });
  });
}
