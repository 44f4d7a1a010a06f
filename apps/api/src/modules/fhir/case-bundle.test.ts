// caseToFhirBundle on hand-built cases: validity against the official FHIR R4 JSON schema (and that the check
// refuses broken bundles), the elements and codes of each resource, and the round trip through our own FHIR
// importer back into an equivalent ImportRecord.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bundle, FhirResource, ImagingStudy, Media, MedicationAdministration, Observation, Patient, Procedure } from 'fhir/r4.js';
import { importFhirBundle, SNOMED_DR_GRADES } from '../../importers/fhir.js';
import type { ImportItem, ImportRecord } from '../../importers/import-record.js';
import { caseToFhirBundle, nameBasedUuid, type ExportableCase } from './case-bundle.js';
import { createFhirSchemaValidator, type FhirSchemaValidator } from './testing/fhir-schema.js';

const EXPORTED_AT = new Date('2026-11-30T12:00:00.000Z');
const PHOTOGRAPH = Buffer.from('not really a JPEG, but bytes the importer hands on unchanged');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Moderate NPDR of the left eye with maculopathy, an aflibercept injection, PRP of both eyes, and an observation. */
function makeCase(overrides: Partial<ExportableCase> = {}): ExportableCase {
  return {
    id: '0b9e2a52-6f0c-4a8e-9f31-1c5c2f9d7a10',
    isSynthetic: false,
    image: { id: '0b9e2a52-6f0c-4a8e-9f31-1c5c2f9d7a10', eye: 'LEFT', width: 512, height: 480, quality: 'GOOD', contentHash: sha256(PHOTOGRAPH) },
    patient: {
      id: '4a7d9c1e-2b3f-4e5a-8c6d-7e8f9a0b1c2d',
      mrn: 'MRN-0042',
      mrnSystem: 'urn:oid:1.2.3.4.clinic',
      birthYear: 1961,
      sex: 'FEMALE',
      diabetesType: 'TYPE_2',
      diabetesDiagnosisYear: 2001,
      dataset: { name: 'clinic', isSynthetic: false },
      isSynthetic: false,
      hba1cReadings: [{ date: '2024-03-01', percent: 7.9 }],
      externalLinks: [
        { system: 'https://ehr.example.org/patients', identifier: 'E-991' },
        { system: 'fhir', identifier: 'https://fhir.example.org/Patient/17' },
        { system: 'urn:dicom:uid', identifier: 'urn:oid:1.2.840.99.1' },
      ],
    },
    visit: { id: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', date: '2024-05-14' },
    ageAtVisit: 63,
    referenceGrading: {
      id: 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f',
      drGrade: 2,
      drGradeName: 'Moderate NPDR',
      maculopathy: true,
      macularEdemaRisk: null,
      source: 'CLINICIAN',
      grader: 'Dr. A. Grader',
      originalScale: null,
      originalValue: null,
      date: '2024-05-15',
    },
    gradings: [],
    diagnoses: [
      { id: 'd0000000-0000-4000-8000-000000000001', code: 'E11.3312', text: 'Type 2 diabetes mellitus with moderate nonproliferative diabetic retinopathy with macular edema, left eye', eye: 'LEFT', date: '2024-05-14' },
      { id: 'd0000000-0000-4000-8000-000000000002', code: 'E11.9', text: 'Type 2 diabetes mellitus without complications', eye: 'UNSPECIFIED', date: '2019-02-01' },
    ],
    treatments: [
      { id: 'e0000000-0000-4000-8000-000000000001', type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', eye: 'LEFT', date: '2024-05-14', notes: null },
      { id: 'e0000000-0000-4000-8000-000000000002', type: 'PRP_LASER', agent: null, eye: 'BOTH', date: '2024-06-01', notes: 'two sessions' },
      { id: 'e0000000-0000-4000-8000-000000000003', type: 'OBSERVATION', agent: null, eye: 'LEFT', date: '2023-05-02', notes: null },
    ],
    followUp: { gradings: [], diagnoses: [], treatments: [] },
    ...overrides,
  };
}

type Resource = FhirResource & { id: string };
const resources = (bundle: Bundle<FhirResource>) => (bundle.entry ?? []).map((entry) => entry.resource as Resource);
const ofType = <T extends FhirResource>(bundle: Bundle<FhirResource>, type: T['resourceType']) => resources(bundle).filter((resource): resource is Resource & T => resource.resourceType === type);
const only = <T extends FhirResource>(bundle: Bundle<FhirResource>, type: T['resourceType']) => {
  const found = ofType<T>(bundle, type);
  assert.equal(found.length, 1, `one ${type}`);
  return found[0]!;
};
/** What a receiver sees: the JSON text, parsed. */
const asJson = (value: unknown) => JSON.parse(JSON.stringify(value)) as Bundle<FhirResource>;

let schema: FhirSchemaValidator;
let folder: string;
before(async () => {
  schema = createFhirSchemaValidator();
  folder = await mkdtemp(path.join(os.tmpdir(), 'fundus-fhir-export-'));
});
after(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('the FHIR R4 JSON schema check', () => {
  const variants: [string, ExportableCase, Parameters<typeof caseToFhirBundle>[1]][] = [
    ['a graded case with treatments', makeCase(), { exportedAt: EXPORTED_AT }],
    ['with the photograph inline', makeCase(), { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', data: PHOTOGRAPH } }],
    ['with the photograph by URL', makeCase(), { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', url: 'photo.jpg' } }],
    ['synthetic, ungraded, no birth year, no records', makeCase({ isSynthetic: true, referenceGrading: null, diagnoses: [], treatments: [], patient: { ...makeCase().patient, birthYear: null, sex: 'UNKNOWN', externalLinks: [], hba1cReadings: [] } }), { exportedAt: EXPORTED_AT }],
    ['a study UID on the image, a Messidor grade with oedema risk', makeCase({ image: { ...makeCase().image, eye: 'RIGHT', externalLinks: [{ system: 'urn:dicom:uid', identifier: '1.2.840.99.7' }] }, referenceGrading: { ...makeCase().referenceGrading!, drGrade: 0, maculopathy: null, macularEdemaRisk: 1, source: 'DATASET_LABEL', grader: null, originalScale: 'messidor-0-3', originalValue: '0' } }), { exportedAt: EXPORTED_AT }],
  ];
  for (const [name, found, options] of variants) {
    test(`accepts the bundle of ${name}`, () => {
      const bundle = caseToFhirBundle(found, options);
      assert.deepEqual(asJson(bundle), bundle, 'no undefined members: the object is exactly its JSON');
      const result = schema.validate(asJson(bundle));
      assert.deepEqual(result.errors, []);
      assert.equal(result.valid, true);
    });
  }

  for (let grade = 0; grade <= 4; grade += 1) {
    test(`accepts ICDR grade ${grade} on either eye`, () => {
      for (const eye of ['LEFT', 'RIGHT'] as const) {
        const found = makeCase({ image: { ...makeCase().image, eye }, referenceGrading: { ...makeCase().referenceGrading!, drGrade: grade } });
        assert.deepEqual(schema.validate(asJson(caseToFhirBundle(found, { exportedAt: EXPORTED_AT }))).errors, []);
      }
    });
  }

  // Each row breaks one valid bundle in one way; the schema must refuse it and point at the place.
  const BROKEN: { name: string; breakIt: (bundle: Bundle<FhirResource>) => void; error: RegExp }[] = [
    { name: 'a misspelt Patient element', breakIt: (bundle) => Object.assign(only<Patient>(bundle, 'Patient'), { brithDate: '1961' }), error: /entry\/0\/resource\/? must NOT have additional properties \(brithDate\)/ },
    { name: 'a gender outside the value set', breakIt: (bundle) => Object.assign(only<Patient>(bundle, 'Patient'), { gender: 'F' }), error: /entry\/0\/resource\/gender must be equal to one of the allowed values/ },
    { name: 'a birth date that is not a FHIR date', breakIt: (bundle) => Object.assign(only<Patient>(bundle, 'Patient'), { birthDate: '14/05/1961' }), error: /\/birthDate must match pattern/ },
    { name: 'a Bundle type that does not exist', breakIt: (bundle) => Object.assign(bundle, { type: 'export' }), error: /^\/type must be equal to one of the allowed values/ },
    { name: 'series.bodySite as a CodeableConcept (R4 has a Coding)', breakIt: (bundle) => { const series = only<ImagingStudy>(bundle, 'ImagingStudy').series![0]!; Object.assign(series, { bodySite: { coding: [series.bodySite] } }); }, error: /series\/0\/bodySite must NOT have additional properties \(coding\)/ },
    { name: 'an unknown resource type', breakIt: (bundle) => Object.assign(bundle.entry![1]!, { resource: { resourceType: 'Visit', id: 'x' } }), error: /entry\/1\/resource has no known resourceType \(Visit\)/ },
    { name: 'an Observation without its code (a required complex element)', breakIt: (bundle) => { delete (ofType<Observation>(bundle, 'Observation')[0] as Partial<Observation>).code; }, error: /must have required property 'code'/ },
  ];
  for (const row of BROKEN) {
    test(`refuses ${row.name}`, () => {
      const bundle = asJson(caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT }));
      row.breakIt(bundle);
      const result = schema.validate(bundle);
      assert.equal(result.valid, false);
      assert.ok(result.errors.some((error) => row.error.test(error)), `expected ${row.error} among ${JSON.stringify(result.errors)}`);
    });
  }
});

describe('caseToFhirBundle', () => {
  test('is a collection of urn:uuid entries whose every reference resolves inside the bundle', () => {
    const bundle = caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', url: 'photo.jpg' } });
    assert.equal(bundle.type, 'collection');
    assert.equal(bundle.timestamp, '2026-11-30T12:00:00.000Z');
    const fullUrls = new Set<string>();
    for (const entry of bundle.entry!) {
      assert.equal(entry.fullUrl, `urn:uuid:${entry.resource!.id!}`);
      assert.match(entry.resource!.id!, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      fullUrls.add(entry.fullUrl);
    }
    assert.equal(fullUrls.size, bundle.entry!.length, 'ids are unique');
    const references = JSON.stringify(bundle).match(/"reference":"[^"]*"/g)!.map((match) => match.slice(13, -1));
    assert.ok(references.length >= 15, `references found: ${references.length}`);
    for (const reference of references) assert.ok(fullUrls.has(reference), `${reference} resolves`);
    assert.deepEqual(
      resources(bundle).map((resource) => resource.resourceType),
      ['Patient', 'Encounter', 'ImagingStudy', 'Media', 'Observation', 'Observation', 'Condition', 'Condition', 'Procedure', 'MedicationAdministration', 'Procedure', 'Procedure'],
    );
  });

  test('gives the same ids on every export, and other ids for another case', () => {
    const first = caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT });
    const again = caseToFhirBundle(makeCase(), { exportedAt: new Date('2027-01-01T00:00:00Z') });
    assert.deepEqual({ ...again, timestamp: first.timestamp }, first);
    assert.equal(only<Patient>(first, 'Patient').id, nameBasedUuid('Patient/4a7d9c1e-2b3f-4e5a-8c6d-7e8f9a0b1c2d'));
    const other = caseToFhirBundle(makeCase({ image: { ...makeCase().image, id: '1b9e2a52-6f0c-4a8e-9f31-1c5c2f9d7a10' } }), { exportedAt: EXPORTED_AT });
    assert.notEqual(only<ImagingStudy>(other, 'ImagingStudy').id, only<ImagingStudy>(first, 'ImagingStudy').id);
    assert.equal(only<Patient>(other, 'Patient').id, only<Patient>(first, 'Patient').id, 'the same patient keeps its id across cases');
  });

  test('Patient: MR identifier in the MRN system, links as identifiers (not the study UID), year of birth, gender', () => {
    const patient = only<Patient>(caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT }), 'Patient');
    assert.deepEqual(patient.identifier, [
      { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }] }, system: 'urn:oid:1.2.3.4.clinic', value: 'MRN-0042' },
      { system: 'https://ehr.example.org/patients', value: 'E-991' },
      { system: 'urn:ietf:rfc:3986', value: 'https://fhir.example.org/Patient/17' },
    ]);
    assert.equal(patient.birthDate, '1961');
    assert.equal(patient.gender, 'female');
    assert.equal(patient.meta?.security, undefined, 'a real patient carries no test-data label');
    const bare = only<Patient>(caseToFhirBundle(makeCase({ patient: { ...makeCase().patient, birthYear: null, sex: 'OTHER', externalLinks: [{ system: 'pacs accession', identifier: 'A1' }] } }), { exportedAt: EXPORTED_AT }), 'Patient');
    assert.equal('birthDate' in bare, false);
    assert.equal(bare.gender, 'other');
    assert.deepEqual(bare.identifier?.[1], { system: 'urn:fundus-cbr:link-system:pacs%20accession', value: 'A1' }, 'a system that is not a URI is made one');
  });

  test('synthetic patients: every resource and the bundle carry HTEST and the synthetic tag', () => {
    const bundle = caseToFhirBundle(makeCase({ isSynthetic: true }), { exportedAt: EXPORTED_AT });
    for (const item of [bundle, ...resources(bundle)]) {
      assert.deepEqual(item.meta?.security, [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HTEST', display: 'test health data' }], item.resourceType);
      assert.equal(item.meta?.tag?.[0]?.code, 'synthetic');
    }
  });

  test('ImagingStudy: available, modality OP, one series with eye and laterality, study UID only from the image', () => {
    const study = only<ImagingStudy>(caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT }), 'ImagingStudy');
    assert.equal(study.status, 'available');
    assert.deepEqual(study.modality, [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'OP', display: 'Ophthalmic Photography' }]);
    assert.equal(study.started, '2024-05-14');
    assert.deepEqual(study.identifier, [{ system: 'urn:fundus-cbr:case', value: '0b9e2a52-6f0c-4a8e-9f31-1c5c2f9d7a10' }], "the patient's study UID may be another study's");
    const [series] = study.series!;
    assert.deepEqual([series!.bodySite?.code, series!.laterality?.code, series!.modality.code], ['8966001', '7771000', 'OP']);
    assert.match(series!.uid, /^2\.25\.\d{1,39}$/);
    const withUid = only<ImagingStudy>(caseToFhirBundle(makeCase({ image: { ...makeCase().image, externalLinks: [{ system: 'urn:dicom:uid', identifier: '1.2.840.99.7' }] } }), { exportedAt: EXPORTED_AT }), 'ImagingStudy');
    assert.deepEqual(withUid.identifier?.[1], { system: 'urn:dicom:uid', value: 'urn:oid:1.2.840.99.7' });
  });

  test('DR severity Observation: LOINC code of the eye, SNOMED CT and ICDR (LOINC answer) value, eye, derived from the study', () => {
    const bundle = caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT });
    const [grading, hba1c] = ofType<Observation>(bundle, 'Observation');
    assert.equal(grading!.status, 'final');
    assert.deepEqual(grading!.code.coding?.map((coding) => coding.code), ['71490-7']);
    assert.deepEqual(grading!.valueCodeableConcept?.coding?.map((coding) => [coding.system, coding.code]), [['http://snomed.info/sct', '312904009'], ['http://loinc.org', 'LA18645-4']]);
    assert.deepEqual(grading!.bodySite?.coding?.map((coding) => coding.code), ['8966001']);
    assert.deepEqual(grading!.derivedFrom, [{ reference: `urn:uuid:${only<ImagingStudy>(bundle, 'ImagingStudy').id}` }]);
    assert.equal(grading!.effectiveDateTime, '2024-05-14', 'the visit date');
    assert.deepEqual(grading!.performer, [{ display: 'Dr. A. Grader' }]);
    assert.equal(grading!.method?.coding?.[0]?.code, 'CLINICIAN');
    assert.deepEqual(grading!.component?.map((component) => [component.code.coding?.[0]?.code, component.valueBoolean]), [['maculopathy', true]]);
    assert.deepEqual([hba1c!.code.coding?.[0]?.code, hba1c!.valueQuantity], ['4548-4', { value: 7.9, unit: '%', system: 'http://unitsofmeasure.org', code: '%' }]);
    const right = ofType<Observation>(caseToFhirBundle(makeCase({ image: { ...makeCase().image, eye: 'RIGHT' }, referenceGrading: { ...makeCase().referenceGrading!, drGrade: 0 } }), { exportedAt: EXPORTED_AT }), 'Observation')[0]!;
    assert.deepEqual([right.code.coding?.[0]?.code, right.bodySite?.coding?.[0]?.code], ['71491-5', '18944008']);
    assert.deepEqual(right.valueCodeableConcept?.coding?.map((coding) => coding.code), ['LA18643-9'], 'no SNOMED CT concept for grade 0, only the ICDR answer');
  });

  test('every exported SNOMED CT grade is the one the importer reads as that grade', () => {
    for (let grade = 1; grade <= 4; grade += 1) {
      const observation = ofType<Observation>(caseToFhirBundle(makeCase({ referenceGrading: { ...makeCase().referenceGrading!, drGrade: grade } }), { exportedAt: EXPORTED_AT }), 'Observation')[0]!;
      const snomed = observation.valueCodeableConcept!.coding!.find((coding) => coding.system === 'http://snomed.info/sct')!;
      assert.equal(SNOMED_DR_GRADES[snomed.code!], grade);
    }
  });

  test('treatments: anti-VEGF as Procedure CPT 67028 plus a MedicationAdministration of the agent, laser and observation as Procedures', () => {
    const bundle = caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT });
    const procedures = ofType<Procedure>(bundle, 'Procedure');
    assert.deepEqual(
      procedures.map((procedure) => [procedure.code?.coding?.find((coding) => coding.system === 'http://www.ama-assn.org/go/cpt')?.code ?? null, procedure.code?.coding?.at(-1)?.code, procedure.bodySite?.[0]?.coding?.[0]?.code ?? procedure.bodySite?.[0]?.text, procedure.performedDateTime]),
      [
        ['67028', 'ANTI_VEGF', '8966001', '2024-05-14'],
        ['67228', 'PRP_LASER', 'Both eyes', '2024-06-01'],
        [null, 'OBSERVATION', '8966001', '2023-05-02'],
      ],
    );
    const administration = only<MedicationAdministration>(bundle, 'MedicationAdministration');
    assert.equal(administration.medicationCodeableConcept?.text, 'aflibercept');
    assert.deepEqual(administration.partOf, [{ reference: `urn:uuid:${procedures[0]!.id}` }]);
    assert.equal(administration.dosage?.site?.coding?.[0]?.code, '8966001');
    assert.equal(administration.dosage?.dose?.extension?.[0]?.valueCode, 'unknown', 'the dose is not recorded: declared absent, not invented');
  });
});

async function importBack(bundle: Bundle<FhirResource>, name: string): Promise<{ records: ImportRecord[]; errors: string[] }> {
  const file = path.join(folder, name);
  await writeFile(file, JSON.stringify(bundle));
  const records: ImportRecord[] = [];
  const errors: string[] = [];
  for await (const item of importFhirBundle(file) as AsyncIterable<ImportItem>) {
    if (item.ok) records.push(item.record);
    else errors.push(item.error.reason);
  }
  return { records, errors };
}

describe('round trip through the FHIR importer', () => {
  test('a bundle written beside its photograph imports as the same patient, eye, grade, diagnoses and treatments', async () => {
    const found = makeCase();
    await writeFile(path.join(folder, 'photo.jpg'), PHOTOGRAPH);
    const { records, errors } = await importBack(caseToFhirBundle(found, { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', url: 'photo.jpg' } }), 'bundle.json');
    assert.deepEqual(errors, []);
    assert.equal(records.length, 1);
    const record = records[0]!;
    assert.deepEqual(record.patient, { mrn: 'MRN-0042', mrnSystem: 'urn:oid:1.2.3.4.clinic', isPerImagePatient: false, birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_2' });
    assert.deepEqual([record.eye, record.isEyeAssumed, record.visitDate, record.isVisitDateKnown], ['LEFT', false, '2024-05-14', true]);
    assert.deepEqual(record.image, { kind: 'file', path: path.join(folder, 'photo.jpg') });
    assert.equal(sha256(await readFile(path.join(folder, 'photo.jpg'))), found.image.contentHash);
    assert.deepEqual([record.grading?.drGrade, record.grading?.source, record.grading?.maculopathy], [2, 'CLINICIAN', true]);
    assert.match(record.grading?.grader ?? '', /^Dr\. A\. Grader \(Observation\//);
    assert.deepEqual(
      record.diagnoses,
      found.diagnoses.map((diagnosis) => ({ icd10Code: diagnosis.code, text: diagnosis.text, eye: diagnosis.eye, diagnosedOn: diagnosis.date })),
    );
    // The importer reads CPT 67028/67228 and named agents; other procedure types, and BOTH as an eye, it does not.
    assert.deepEqual(
      record.treatments.map((treatment) => [treatment.type, treatment.agent, treatment.eye, treatment.performedOn]),
      [
        ['ANTI_VEGF', 'AFLIBERCEPT', 'LEFT', '2024-05-14'],
        ['PRP_LASER', null, 'UNSPECIFIED', '2024-06-01'],
      ],
      'the injection (Procedure + MedicationAdministration) is one treatment',
    );
  });

  test('the photograph embedded inline imports with its bytes; a right eye and a severe grade survive', async () => {
    const found = makeCase({ image: { ...makeCase().image, eye: 'RIGHT' }, referenceGrading: { ...makeCase().referenceGrading!, drGrade: 3 }, diagnoses: [], treatments: [{ id: 'e0000000-0000-4000-8000-000000000009', type: 'ANTI_VEGF', agent: 'FARICIMAB', eye: 'RIGHT', date: '2024-05-14', notes: null }] });
    const { records, errors } = await importBack(caseToFhirBundle(found, { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', data: PHOTOGRAPH } }), 'inline.json');
    assert.deepEqual(errors, []);
    const record = records[0]!;
    assert.equal(record.image.kind, 'bytes');
    assert.ok(record.image.kind === 'bytes' && record.image.bytes.equals(PHOTOGRAPH));
    assert.deepEqual([record.eye, record.grading?.drGrade], ['RIGHT', 3]);
    assert.deepEqual(record.treatments.map((treatment) => [treatment.type, treatment.agent, treatment.eye]), [['ANTI_VEGF', 'FARICIMAB', 'RIGHT']]);
  });

  test(
    'a photograph without its own body site takes the eye of the ImagingStudy series',
    async () => {
      const bundle = caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT, photograph: { contentType: 'image/jpeg', url: 'photo.jpg' } });
      delete only<Media>(bundle, 'Media').bodySite;
      const { records, errors } = await importBack(bundle, 'series-eye.json');
      assert.deepEqual(errors, []);
      assert.deepEqual([records[0]?.eye, records[0]?.isEyeAssumed], ['LEFT', false]);
    },
  );

  test('without a photograph the importer refuses the bundle, and says why', async () => {
    const { records, errors } = await importBack(caseToFhirBundle(makeCase(), { exportedAt: EXPORTED_AT }), 'no-photo.json');
    assert.equal(records.length, 0);
    assert.match(errors.join('\n'), /has no photograph in the bundle/);
  });
});
