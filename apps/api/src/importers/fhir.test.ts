// The FHIR R4 importer on a hand-made bundle: patient identity, grades per eye (SNOMED, then ICD-10-CM
// severity), diagnoses with laterality, treatments with agents, visit date from the ImagingStudy, images from
// Binary and local files, and network URLs refused.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importFhirBundle, parseDiabeticRetinopathyCode, readBundle } from './fhir.js';
import type { ImportItem, ImportRecord, ImportRowError } from './import-record.js';

const SNOMED = 'http://snomed.info/sct';
const LEFT_EYE = { coding: [{ system: SNOMED, code: '362503005', display: 'Entire left eye' }] };
const RIGHT_EYE = { coding: [{ system: SNOMED, code: '362502000', display: 'Entire right eye' }] };
const LEFT_BYTES = Buffer.from('left photograph bytes');

function makeBundle(localFile: string) {
  const entry = (resource: Record<string, unknown>) => ({ fullUrl: `urn:uuid:${String(resource['id'])}`, resource });
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      entry({
        resourceType: 'Patient',
        id: 'p1',
        identifier: [
          { system: 'urn:oid:2.16.840.1.113883.19.5', value: 'SSN-IGNORED', type: { coding: [{ code: 'SS' }] } },
          { system: 'urn:oid:1.2.3.4.clinic', value: 'MRN-0042', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } },
        ],
        gender: 'female',
        birthDate: '1961-07-04',
      }),
      entry({
        resourceType: 'ImagingStudy',
        id: 'study1',
        status: 'available',
        subject: { reference: 'Patient/p1' },
        started: '2024-05-14T09:30:00Z',
        identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.840.99.1' }],
        series: [
          { uid: '1.2.840.99.1.1', laterality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'L' } },
          { uid: '1.2.840.99.1.2', laterality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'R' } },
        ],
      }),
      entry({
        resourceType: 'Observation',
        id: 'grade-left',
        status: 'final',
        subject: { reference: 'Patient/p1' },
        code: { text: 'Diabetic retinopathy severity' },
        valueCodeableConcept: { coding: [{ system: SNOMED, code: '312904009', display: 'Moderate nonproliferative diabetic retinopathy' }] },
        bodySite: LEFT_EYE,
        effectiveDateTime: '2024-05-14',
        performer: [{ display: 'Dr. A. Grader' }],
      }),
      entry({
        resourceType: 'Observation',
        id: 'grade-left-old',
        status: 'final',
        subject: { reference: 'Patient/p1' },
        code: { coding: [{ system: SNOMED, code: '312903003' }] },
        bodySite: LEFT_EYE,
        effectiveDateTime: '2022-01-10',
      }),
      entry({
        resourceType: 'Condition',
        id: 'dx-right',
        subject: { reference: 'Patient/p1' },
        code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'E11.3411', display: 'Type 2 diabetes mellitus with severe nonproliferative diabetic retinopathy with macular edema, right eye' }] },
        onsetDateTime: '2024-05-14',
      }),
      entry({
        resourceType: 'Procedure',
        id: 'ivt',
        status: 'completed',
        subject: { reference: 'Patient/p1' },
        code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '67028', display: 'Intravitreal injection of a pharmacologic agent' }] },
        usedCode: [{ text: 'aflibercept 2 mg' }],
        bodySite: [RIGHT_EYE],
        performedDateTime: '2024-05-14',
      }),
      entry({
        resourceType: 'MedicationAdministration',
        id: 'ma1',
        status: 'completed',
        subject: { reference: 'Patient/p1' },
        medicationCodeableConcept: { text: 'Aflibercept 2 mg/0.05 mL intravitreal' },
        effectiveDateTime: '2024-05-14',
        dosage: { site: RIGHT_EYE },
      }),
      entry({
        resourceType: 'Procedure',
        id: 'prp',
        status: 'completed',
        subject: { reference: 'Patient/p1' },
        code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '67228' }] },
        bodySite: [RIGHT_EYE],
        performedDateTime: '2024-06-01',
      }),
      entry({
        resourceType: 'Procedure',
        id: 'not-done',
        status: 'not-done',
        subject: { reference: 'Patient/p1' },
        code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '67228' }] },
        performedDateTime: '2024-07-01',
      }),
      entry({ resourceType: 'Binary', id: 'img-left', contentType: 'image/jpeg', data: LEFT_BYTES.toString('base64') }),
      entry({ resourceType: 'Media', id: 'm-left', status: 'completed', subject: { reference: 'Patient/p1' }, partOf: [{ reference: 'ImagingStudy/study1' }], bodySite: LEFT_EYE, content: { contentType: 'image/jpeg', url: 'Binary/img-left' } }),
      entry({ resourceType: 'Media', id: 'm-right', status: 'completed', subject: { reference: 'Patient/p1' }, partOf: [{ reference: 'ImagingStudy/study1' }], bodySite: RIGHT_EYE, content: { contentType: 'image/png', url: localFile } }),
      entry({ resourceType: 'Media', id: 'm-remote', status: 'completed', subject: { reference: 'Patient/p1' }, bodySite: RIGHT_EYE, content: { url: 'https://pacs.example.org/wado/123' } }),
    ],
  };
}

async function collect(items: AsyncIterable<ImportItem>) {
  const records: ImportRecord[] = [];
  const errors: ImportRowError[] = [];
  for await (const item of items) {
    if (item.ok) records.push(item.record);
    else errors.push(item.error);
  }
  return { records, errors };
}

let folder: string;
before(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'fundus-fhir-'));
  await writeFile(path.join(folder, 'right.png'), 'right photograph bytes');
});
after(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('FHIR R4 bundle', () => {
  test('reads patient, grades per eye, diagnoses, treatments, visit date and images', async () => {
    const file = path.join(folder, 'bundle.json');
    await writeFile(file, JSON.stringify(makeBundle('right.png')));
    const { records, errors } = await collect(importFhirBundle(file, { datasetName: 'clinic' }));

    assert.equal(errors.length, 1);
    assert.match(errors[0]!.reason, /network URL; the importer reads local files only/);
    assert.equal(records.length, 2);
    const [left, right] = records as [ImportRecord, ImportRecord];

    for (const record of records) {
      assert.deepEqual(record.patient, { mrn: 'MRN-0042', mrnSystem: 'urn:oid:1.2.3.4.clinic', isPerImagePatient: false, birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_2' });
      assert.equal(record.dataset.name, 'clinic');
      assert.deepEqual([record.visitDate, record.isVisitDateKnown], ['2024-05-14', true]);
      assert.deepEqual(record.diagnoses, [{ icd10Code: 'E11.3411', text: 'Type 2 diabetes mellitus with severe nonproliferative diabetic retinopathy with macular edema, right eye', eye: 'RIGHT', diagnosedOn: '2024-05-14' }]);
      assert.deepEqual(
        record.treatments.map((treatment) => [treatment.type, treatment.agent, treatment.eye, treatment.performedOn]),
        [
          ['ANTI_VEGF', 'AFLIBERCEPT', 'RIGHT', '2024-05-14'],
          ['PRP_LASER', null, 'RIGHT', '2024-06-01'],
        ],
        'the injection recorded as Procedure and MedicationAdministration is one treatment; the not-done procedure is left out',
      );
    }

    assert.deepEqual(left.externalLinks, [{ system: 'urn:dicom:uid', identifier: 'urn:oid:1.2.840.99.1', target: 'patient' }]);
    assert.equal(left.eye, 'LEFT');
    assert.deepEqual(left.image, { kind: 'bytes', bytes: LEFT_BYTES, name: 'Binary/img-left', mimeType: 'image/jpeg' });
    assert.deepEqual(
      [left.grading?.drGrade, left.grading?.source, left.grading?.gradedOn, left.grading?.originalScale],
      [2, 'CLINICIAN', '2024-05-14', null],
      'the SNOMED grade of the visit date wins over the older one',
    );
    assert.match(left.grading?.grader ?? '', /Dr\. A\. Grader \(Observation\/grade-left\)/);

    assert.equal(right.eye, 'RIGHT');
    assert.deepEqual(right.image, { kind: 'file', path: path.join(folder, 'right.png') });
    assert.deepEqual(
      [right.grading?.drGrade, right.grading?.maculopathy, right.grading?.originalScale, right.grading?.originalValue],
      [3, true, 'icd-10-cm', 'E11.3411'],
      'without a SNOMED grade for the right eye, the ICD-10-CM severity (severe NPDR) is the grade',
    );
  });

  test('a patient without an MR identifier gets a row error per photograph, and nothing else', async () => {
    const bundle = makeBundle(path.join(folder, 'right.png'));
    const patient = bundle.entry[0]!.resource as Record<string, unknown>;
    patient['identifier'] = [{ system: 'urn:x', value: '1' }];
    const { records, errors } = await collect(readBundle(bundle, { imageDirectory: folder }));
    assert.equal(records.length, 0);
    assert.equal(errors.length, 3);
    assert.ok(errors.every((error) => /no identifier of type MR/.test(error.reason)), "one error per Media, none imported");
  });

  test('a file that is not a Bundle is refused as a whole', async () => {
    const file = path.join(folder, 'patient.json');
    await writeFile(file, JSON.stringify({ resourceType: 'Patient' }));
    await assert.rejects(collect(importFhirBundle(file)), /not a FHIR Bundle/);
  });

  test('ICD-10-CM E1x.3 codes give severity, oedema, eye and diabetes type', () => {
    assert.deepEqual(parseDiabeticRetinopathyCode('E11.3412'), { severity: 4, oedema: true, eye: 'LEFT', diabetesType: 'TYPE_2' });
    assert.deepEqual(parseDiabeticRetinopathyCode('E10.3293'), { severity: 2, oedema: false, eye: 'BOTH', diabetesType: 'TYPE_1' });
    assert.deepEqual(parseDiabeticRetinopathyCode('E11.319'), { severity: 1, oedema: false, eye: 'UNSPECIFIED', diabetesType: 'TYPE_2' });
    assert.equal(parseDiabeticRetinopathyCode('E11.9'), null);
    assert.equal(parseDiabeticRetinopathyCode('H35.00'), null);
  });
});
