// The ingest service's pure parts: record validation (table-driven: each bad record and the problem it names)
// and media-type sniffing. Writing to the database is tested end to end in test/api/ingest.test.mjs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ImportRecord } from '../../importers/import-record.js';
import { sha256Hex } from '../common/content-hash.js';
import { findRecordProblems, sniffImageMimeType } from './ingest.service.js';

function makeRecord(): ImportRecord {
  return {
    row: 2,
    dataset: { name: 'unit', description: null, isSynthetic: false },
    patient: { mrn: 'p-1', mrnSystem: 'urn:fundus-cbr:dataset:unit', isPerImagePatient: false, birthYear: null, sex: null, diabetesType: null },
    visitDate: '1900-01-01',
    isVisitDateKnown: false,
    eye: 'LEFT',
    isEyeAssumed: false,
    image: { kind: 'file', path: '/nonexistent.png' },
    quality: 'UNKNOWN',
    grading: { drGrade: 2, maculopathy: null, macularEdemaRisk: null, source: 'DATASET_LABEL', grader: null, originalScale: null, originalValue: null, gradedOn: '1900-01-01' },
    diagnoses: [],
    treatments: [],
    externalLinks: [],
  };
}

const BAD_RECORDS: { name: string; change: (record: ImportRecord) => void; problem: RegExp }[] = [
  { name: 'grade above 4', change: (r) => void (r.grading!.drGrade = 7), problem: /DR grade must be ICDR 0-4, got 7/ },
  { name: 'fractional grade', change: (r) => void (r.grading!.drGrade = 1.5), problem: /DR grade must be ICDR 0-4/ },
  { name: 'oedema risk 3', change: (r) => void (r.grading!.macularEdemaRisk = 3), problem: /macular edema risk must be 0-2/ },
  { name: 'eye not LEFT/RIGHT', change: (r) => void (r.eye = 'BOTH' as never), problem: /eye must be LEFT or RIGHT/ },
  { name: 'visit date not a date', change: (r) => void (r.visitDate = '2024-02-30'), problem: /visit date "2024-02-30"/ },
  { name: 'empty mrn', change: (r) => void (r.patient.mrn = ' '), problem: /mrn is empty/ },
  { name: 'agent on a laser', change: (r) => void r.treatments.push({ type: 'PRP_LASER', agent: 'AFLIBERCEPT', eye: 'LEFT', performedOn: '2024-01-01', notes: null }), problem: /agent is only recorded for ANTI_VEGF/ },
  { name: 'undated diagnosis', change: (r) => void r.diagnoses.push({ icd10Code: 'E11.9', text: 'x', eye: 'UNSPECIFIED', diagnosedOn: '' }), problem: /diagnosis E11.9 date/ },
];

describe('findRecordProblems', () => {
  test('a valid record has no problem', () => {
    assert.deepEqual(findRecordProblems(makeRecord()), []);
  });
  for (const { name, change, problem } of BAD_RECORDS) {
    test(`names the problem: ${name}`, () => {
      const record = makeRecord();
      change(record);
      const problems = findRecordProblems(record);
      assert.equal(problems.length, 1, problems.join('; '));
      assert.match(problems[0]!, problem);
    });
  }
});

describe('sniffImageMimeType', () => {
  test('recognises JPEG, PNG, TIFF and WebP by their magic numbers, anything else is octet-stream', () => {
    assert.equal(sniffImageMimeType(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'image/jpeg');
    assert.equal(sniffImageMimeType(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a])), 'image/png');
    assert.equal(sniffImageMimeType(Buffer.from([0x49, 0x49, 0x2a, 0x00])), 'image/tiff');
    assert.equal(sniffImageMimeType(Buffer.from('RIFF\0\0\0\0WEBPVP8 ')), 'image/webp');
    assert.equal(sniffImageMimeType(Buffer.from('hello')), 'application/octet-stream');
  });

  test('recognises GIF and AVIF too (preprocessing accepts them on every path); an SVG or PDF is no stored image type', () => {
    assert.equal(sniffImageMimeType(Buffer.from('GIF89a\x50\x00')), 'image/gif');
    assert.equal(sniffImageMimeType(Buffer.from('\0\0\0\x1cftypavif\0\0\0\0', 'latin1')), 'image/avif');
    assert.equal(sniffImageMimeType(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')), 'application/octet-stream');
    assert.equal(sniffImageMimeType(Buffer.from('%PDF-1.7')), 'application/octet-stream');
  });
});

test('sha256Hex is the lowercase hex digest the image_blob CHECK expects', () => {
  assert.equal(sha256Hex(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
