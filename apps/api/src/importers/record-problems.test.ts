// The record checks every importer and ingestCase share: table-driven over codes and dates (each bad record and
// the problem it names), then the importers reporting such records as bad rows and going on with the file.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readBundle } from './fhir.js';
import { UNDATED_VISIT_DATE, type ImportItem, type ImportRecord } from './import-record.js';
import { findRecordDateProblems, findRecordProblems } from './record-problems.js';
import { importSharedLabels } from './shared-labels.js';

const TODAY = '2026-06-15';

/** A dated clinical record of a patient born in 1961, as the ingestCase mutation builds one. */
function makeRecord(): ImportRecord {
  return {
    row: 1,
    dataset: { name: 'unit', description: null, isSynthetic: false },
    patient: { mrn: 'p-1', mrnSystem: 'urn:oid:1.2.3', isPerImagePatient: false, birthYear: 1961, sex: null, diabetesType: null },
    visitDate: '2024-05-14',
    isVisitDateKnown: true,
    eye: 'LEFT',
    isEyeAssumed: false,
    image: { kind: 'file', path: '/nonexistent.png' },
    quality: 'UNKNOWN',
    grading: { drGrade: 2, maculopathy: null, macularEdemaRisk: null, source: 'CLINICIAN', grader: null, originalScale: null, originalValue: null, gradedOn: '2024-05-14' },
    diagnoses: [{ icd10Code: 'E11.3392', text: 'moderate NPDR, left eye', eye: 'LEFT', diagnosedOn: '2024-05-14' }],
    treatments: [{ type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', eye: 'LEFT', performedOn: '2024-05-14', notes: null }],
    externalLinks: [],
  };
}

/** The record of an undated dataset label (no birth year, every date the placeholder). */
function makeUndatedRecord(): ImportRecord {
  const record = makeRecord();
  record.patient.birthYear = null;
  record.visitDate = UNDATED_VISIT_DATE;
  record.isVisitDateKnown = false;
  record.grading!.gradedOn = UNDATED_VISIT_DATE;
  record.diagnoses = [];
  record.treatments = [];
  return record;
}

const BAD_RECORDS: { name: string; change: (record: ImportRecord) => void; problem: RegExp }[] = [
  { name: 'not an ICD-10-CM code', change: (r) => void (r.diagnoses[0]!.icd10Code = 'NOTACODE'), problem: /ICD-10-CM code "NOTACODE" is not well-formed/ },
  { name: 'E12 (not in ICD-10-CM)', change: (r) => void (r.diagnoses[0]!.icd10Code = 'E12.3392'), problem: /"E12\.3392" does not exist: E12 is a WHO ICD-10 diabetes category/ },
  { name: 'DR code without its eye', change: (r) => void (r.diagnoses[0]!.icd10Code = 'E11.339'), problem: /"E11\.339" is not a complete E11\.33 code/ },
  { name: 'PDR code with an unknown 6th character', change: (r) => void (r.diagnoses[0]!.icd10Code = 'E11.3572'), problem: /"E11\.3572" is not a complete E11\.35 code/ },
  { name: 'visit in 2099', change: (r) => void (r.visitDate = '2099-01-01'), problem: /^visit date 2099-01-01 is in the future \(today is 2026-06-15, UTC\)$/ },
  { name: 'visit tomorrow', change: (r) => void (r.visitDate = '2026-06-16'), problem: /visit date 2026-06-16 is in the future/ },
  { name: 'visit before the birth year', change: (r) => void (r.visitDate = '1960-12-31'), problem: /^visit date 1960-12-31 is before the patient's birth year 1961$/ },
  { name: 'visit before 1900', change: (r) => void (r.visitDate = '1899-12-31'), problem: /visit date 1899-12-31 is before 1900/ },
  { name: 'dated record using the undated placeholder', change: (r) => void (r.visitDate = UNDATED_VISIT_DATE), problem: /visit date 1900-01-01 is the placeholder for undated labels, not a date/ },
  { name: 'grading in the future', change: (r) => void (r.grading!.gradedOn = '2030-02-01'), problem: /grading date 2030-02-01 is in the future/ },
  { name: 'diagnosis in the future', change: (r) => void (r.diagnoses[0]!.diagnosedOn = '2027-01-01'), problem: /diagnosis E11\.3392 date 2027-01-01 is in the future/ },
  { name: 'diagnosis before the birth year', change: (r) => void (r.diagnoses[0]!.diagnosedOn = '1950-03-01'), problem: /diagnosis E11\.3392 date 1950-03-01 is before the patient's birth year 1961/ },
  { name: 'treatment in the future', change: (r) => void (r.treatments[0]!.performedOn = '2099-12-31'), problem: /treatment ANTI_VEGF date 2099-12-31 is in the future/ },
  { name: 'treatment before the birth year', change: (r) => void (r.treatments[0]!.performedOn = '1955-07-01'), problem: /treatment ANTI_VEGF date 1955-07-01 is before the patient's birth year 1961/ },
  { name: 'birth year in the future', change: (r) => void (r.patient.birthYear = 2027), problem: /birth year 2027 is not plausible/ },
];

describe('findRecordProblems', () => {
  test('a dated record of a known patient has no problem, and today itself is not the future', () => {
    assert.deepEqual(findRecordProblems(makeRecord(), { today: TODAY }), []);
    const record = makeRecord();
    record.patient.birthYear = 2026;
    record.visitDate = record.grading!.gradedOn = record.diagnoses[0]!.diagnosedOn = record.treatments[0]!.performedOn = TODAY;
    assert.deepEqual(findRecordProblems(record, { today: TODAY }), [], 'a visit on today, in the birth year');
  });

  for (const { name, change, problem } of BAD_RECORDS) {
    test(`names the problem: ${name}`, () => {
      const record = makeRecord();
      change(record);
      const problems = findRecordProblems(record, { today: TODAY });
      assert.equal(problems.length, 1, problems.join('; '));
      assert.match(problems[0]!, problem);
    });
  }

  test('the undated placeholder keeps working while the birth year is unknown', () => {
    assert.deepEqual(findRecordProblems(makeUndatedRecord(), { today: TODAY }), []);
  });

  test('an undated record of a patient with a known birth year is one problem naming --visit-date', () => {
    const record = makeUndatedRecord();
    record.patient.birthYear = 1961;
    assert.deepEqual(findRecordProblems(record, { today: TODAY }), [
      "the visit date is unknown (undated labels get 1900-01-01) but the patient's birth year 1961 is known, so the placeholder would read as a visit before birth; give the visit date (--visit-date)",
    ]);
    record.visitDate = '2020-01-01';
    record.grading!.gradedOn = '2020-01-01';
    assert.deepEqual(findRecordProblems(record, { today: TODAY }), [], 'with --visit-date in its place it is a date like any other');
  });

  test('the dates are checked against another birth year (the stored patient\'s) on their own', () => {
    const record = makeRecord();
    record.patient.birthYear = null;
    assert.deepEqual(findRecordDateProblems(record, { today: TODAY, birthYear: 2025 }), [
      "visit date 2024-05-14 is before the patient's birth year 2025",
      "grading date 2024-05-14 is before the patient's birth year 2025",
      "diagnosis E11.3392 date 2024-05-14 is before the patient's birth year 2025",
      "treatment ANTI_VEGF date 2024-05-14 is before the patient's birth year 2025",
    ]);
    assert.match(findRecordDateProblems(makeUndatedRecord(), { today: TODAY, birthYear: 1970 })[0]!, /visit date is unknown .* birth year 1970 is known/);
  });
});

async function collect(items: AsyncIterable<ImportItem>) {
  const records: ImportRecord[] = [];
  const errors: { row: number; reason: string; image?: string }[] = [];
  for await (const item of items) {
    if (item.ok) records.push(item.record);
    else errors.push(item.error);
  }
  return { records, errors };
}

describe('importers report records that fail the checks as bad rows and go on', () => {
  let folder: string;
  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'fundus-record-checks-'));
    await writeFile(path.join(folder, 'a.png'), 'x');
    await writeFile(path.join(folder, 'labels.csv'), 'image,patient_id,eye,grade\na.png,p-1,L,1\n');
  });
  after(async () => rm(folder, { recursive: true, force: true }));

  test('a labels file with --visit-date in the future: every row is bad, naming the date', async () => {
    const { records, errors } = await collect(importSharedLabels(path.join(folder, 'labels.csv'), { visitDate: '2099-01-01' }));
    assert.equal(records.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.row, 2);
    assert.equal(errors[0]!.image, 'a.png');
    assert.match(errors[0]!.reason, /visit date 2099-01-01 is in the future/);
  });

  const photograph = Buffer.from('photograph').toString('base64');
  const patientBundle = (id: string, mrn: string, extra: Record<string, unknown>[], birthDate = '1961-07-04', started: string | null = '2024-05-14') => [
    { resource: { resourceType: 'Patient', id, birthDate, identifier: [{ system: 'urn:oid:1.2.3', value: mrn, type: { coding: [{ code: 'MR' }] } }] } },
    ...(started ? [{ resource: { resourceType: 'ImagingStudy', id: `${id}-study`, subject: { reference: `Patient/${id}` }, started } }] : []),
    { resource: { resourceType: 'Media', id: `${id}-photo`, subject: { reference: `Patient/${id}` }, bodySite: { text: 'left eye' }, content: { contentType: 'image/png', data: photograph } } },
    ...extra.map((resource) => ({ resource: { subject: { reference: `Patient/${id}` }, ...resource } })),
  ];
  const condition = (id: string, code: string, onsetDateTime = '2024-05-14') => ({ resourceType: 'Condition', id, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code }] }, onsetDateTime });

  test('a FHIR Condition with a code that is not ICD-10-CM makes that patient\'s photographs bad rows; the next patient is imported', async () => {
    const bundle = {
      resourceType: 'Bundle',
      entry: [...patientBundle('bad', 'MRN-BAD', [condition('c1', 'NOTACODE')]), ...patientBundle('good', 'MRN-GOOD', [condition('c2', 'E11.3292')])],
    };
    const { records, errors } = await collect(readBundle(bundle, { datasetName: 'fhir-checks' }));
    assert.deepEqual(records.map((record) => [record.patient.mrn, record.diagnoses.map((d) => d.icd10Code)]), [['MRN-GOOD', ['E11.3292']]]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.image, 'Media/bad-photo');
    assert.match(errors[0]!.reason, /ICD-10-CM code "NOTACODE" is not well-formed/);
  });

  const FHIR_BAD: { name: string; entries: () => unknown[]; reason: RegExp }[] = [
    { name: 'E12 code', entries: () => patientBundle('p', 'M', [condition('c', 'E12.3291')]), reason: /"E12\.3291" does not exist/ },
    { name: 'DR code without the eye', entries: () => patientBundle('p', 'M', [condition('c', 'E11.351')]), reason: /"E11\.351" is not a complete E11\.35 code/ },
    { name: 'diagnosis dated 2099', entries: () => patientBundle('p', 'M', [condition('c', 'E11.3292', '2099-05-01')]), reason: /diagnosis E11\.3292 date 2099-05-01 is in the future/ },
    {
      name: 'procedure before the birth year',
      entries: () => patientBundle('p', 'M', [{ resourceType: 'Procedure', id: 'x', status: 'completed', code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '67228' }] }, performedDateTime: '1950-01-01' }]),
      reason: /treatment PRP_LASER date 1950-01-01 is before the patient's birth year 1961/,
    },
    { name: 'imaging study in the future', entries: () => patientBundle('p', 'M', [], '1961-07-04', '2099-01-01'), reason: /visit date 2099-01-01 is in the future/ },
    { name: 'no imaging date, birth date known', entries: () => patientBundle('p', 'M', [], '1961-07-04', null), reason: /visit date is unknown .* birth year 1961 is known, .*; give the visit date \(--visit-date\)/ },
  ];
  for (const row of FHIR_BAD) {
    test(`FHIR: ${row.name} is a bad row naming it`, async () => {
      const { records, errors } = await collect(readBundle({ resourceType: 'Bundle', entry: row.entries() }, {}));
      assert.equal(records.length, 0);
      assert.equal(errors.length, 1);
      assert.match(errors[0]!.reason, row.reason);
    });
  }

  test('FHIR without any date and without a birth date still imports with the undated placeholder', async () => {
    const entries = patientBundle('p', 'M', [], '', null);
    const { records, errors } = await collect(readBundle({ resourceType: 'Bundle', entry: entries }, {}));
    assert.deepEqual(errors, []);
    assert.deepEqual([records[0]?.visitDate, records[0]?.isVisitDateKnown, records[0]?.patient.birthYear], [UNDATED_VISIT_DATE, false, null]);
  });
});
