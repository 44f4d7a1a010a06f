// Each CSV importer on a small hand-written labels file: the records it yields, and every bad row reported with
// its line and reason while the rest of the file is still read.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importAptosLabels } from './aptos.js';
import { importDeepdridLabels } from './deepdrid.js';
import { detectFormat, detectFormatFromHeader, openImport } from './detect-format.js';
import { importEyepacsLabels } from './eyepacs.js';
import { importIdridLabels } from './idrid.js';
import { UNDATED_VISIT_DATE, type ImportItem, type ImportRecord, type ImportRowError } from './import-record.js';
import { parseCsvWithLines } from './labels-file.js';
import { importMessidorLabels, MESSIDOR_TO_ICDR } from './messidor.js';
import { importSharedLabels } from './shared-labels.js';

let root: string;
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'fundus-importers-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A folder with the labels file and empty placeholder images (importers only check that images exist). */
async function makeSet(name: string, labelsName: string, labels: string, images: string[]): Promise<string> {
  const folder = path.join(root, name);
  for (const image of images) {
    await mkdir(path.dirname(path.join(folder, image)), { recursive: true });
    await writeFile(path.join(folder, image), 'x');
  }
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, labelsName), labels);
  return path.join(folder, labelsName);
}

async function collect(items: AsyncIterable<ImportItem>): Promise<{ records: ImportRecord[]; errors: ImportRowError[] }> {
  const records: ImportRecord[] = [];
  const errors: ImportRowError[] = [];
  for await (const item of items) {
    if (item.ok) records.push(item.record);
    else errors.push(item.error);
  }
  return { records, errors };
}

describe('parseCsvWithLines', () => {
  test('numbers rows by the line they start on, skipping blank lines and counting quoted newlines', () => {
    const rows = parseCsvWithLines('a,b\n\n"x\ny",2\r\nz,3\n');
    assert.deepEqual(rows, [
      { line: 1, fields: ['a', 'b'] },
      { line: 3, fields: ['x\ny', '2'] },
      { line: 5, fields: ['z', '3'] },
    ]);
  });
});

describe('shared-data labels.csv', () => {
  test('yields records with eye, grade, maculopathy and the patient system from the id prefix; bad rows are reported with their line', async () => {
    const file = await makeSet(
      'srahim',
      'labels.csv',
      [
        'image,patient_id,eye,grade,maculopathy,aded',
        'images/P1_L.jpg,srahim-001,L,2,1,0',
        'images/P1_R.jpg,srahim-001,R,4,,1',
        'images/P2_L.jpg,srahim-002,L,7,0,0',
        ',srahim-003,L,1,0,0',
        'images/P4_L.jpg,srahim-004,X,1,0,0',
        'images/missing.jpg,srahim-005,R,0,0,0',
        'images/P6_L.jpg,006,l,0,,',
      ].join('\n'),
      ['images/P1_L.jpg', 'images/P1_R.jpg', 'images/P2_L.jpg', 'images/P4_L.jpg', 'images/P6_L.jpg'],
    );
    const { records, errors } = await collect(importSharedLabels(file));
    assert.deepEqual(
      errors.map((error) => [error.row, error.reason]),
      [
        [4, 'unknown grade "7" (ICDR 0-4 expected)'],
        [5, 'missing image'],
        [6, 'bad eye "X" (L or R expected)'],
        [7, 'image file not found: images/missing.jpg'],
      ],
    );
    assert.equal(records.length, 3);
    const [left, right, unprefixed] = records as [ImportRecord, ImportRecord, ImportRecord];
    assert.equal(left.row, 2);
    assert.equal(left.dataset.name, 'srahim');
    assert.deepEqual([left.patient.mrn, left.patient.mrnSystem], ['srahim-001', 'urn:fundus-cbr:dataset:srahim']);
    assert.equal(left.eye, 'LEFT');
    assert.deepEqual(left.image, { kind: 'file', path: path.join(root, 'srahim', 'images/P1_L.jpg') });
    assert.equal(left.grading?.drGrade, 2);
    assert.equal(left.grading?.maculopathy, true);
    assert.equal(left.grading?.source, 'DATASET_LABEL');
    assert.equal(left.visitDate, UNDATED_VISIT_DATE);
    assert.equal(left.isVisitDateKnown, false);
    assert.deepEqual([right.eye, right.grading?.drGrade, right.grading?.maculopathy, right.grading?.originalScale], ['RIGHT', 4, null, 'srahim-aded']);
    assert.equal(unprefixed.patient.mrnSystem, 'urn:fundus-cbr:dataset:srahim', 'an id without a source prefix belongs to the dataset');
  });

  test('a set without laterality (aptos, idrid): a blank eye takes eye_inferred and is marked inferred; blank without it is a bad row', async () => {
    const file = await makeSet(
      'aptos-like',
      'labels.csv',
      [
        'image,patient_id,eye,grade,eye_inferred',
        'images/a.jpg,aptos-a,,4,R',
        'images/b.jpg,aptos-b,,1,',
        'images/c.jpg,aptos-c,L,0,R',
      ].join('\n'),
      ['images/a.jpg', 'images/b.jpg', 'images/c.jpg'],
    );
    const { records, errors } = await collect(importSharedLabels(file));
    assert.deepEqual(
      errors.map((error) => [error.row, error.reason]),
      [[3, 'no eye: eye is blank and eye_inferred is "" (L or R expected)']],
    );
    const [inferred, given] = records as [ImportRecord, ImportRecord];
    assert.deepEqual([inferred.eye, inferred.isEyeAssumed, inferred.grading?.drGrade], ['RIGHT', true, 4]);
    assert.match(inferred.grading?.grader ?? '', /RIGHT inferred from the optic disc's side/);
    assert.deepEqual([given.eye, given.isEyeAssumed, given.grading?.grader], ['LEFT', false, 'aptos-like label'], 'a published eye wins over eye_inferred');
  });

  test('--visit-date replaces the undated sentinel on the visit and the grading', async () => {
    const file = await makeSet('dated', 'labels.csv', 'image,patient_id,eye,grade\na.png,p-1,R,0\n', ['a.png']);
    const { records } = await collect(importSharedLabels(file, { visitDate: '2024-03-01' }));
    assert.deepEqual([records[0]?.visitDate, records[0]?.grading?.gradedOn], ['2024-03-01', '2024-03-01']);
  });
});

describe('EyePACS trainLabels.csv', () => {
  test('patient from the number before "_", eye from _left/_right, image <image>.jpeg in train/', async () => {
    const file = await makeSet('eyepacs', 'trainLabels.csv', 'image,level\n10_left,0\n10_right,3\n13_up,1\n15_left,5\n16_left,2\n', ['train/10_left.jpeg', 'train/10_right.jpeg', 'train/15_left.jpeg']);
    const { records, errors } = await collect(importEyepacsLabels(file));
    assert.deepEqual(
      records.map((record) => [record.patient.mrn, record.patient.mrnSystem, record.eye, record.grading?.drGrade, path.basename(record.image.kind === 'file' ? record.image.path : '')]),
      [
        ['eyepacs-10', 'urn:fundus-cbr:dataset:eyepacs', 'LEFT', 0, '10_left.jpeg'],
        ['eyepacs-10', 'urn:fundus-cbr:dataset:eyepacs', 'RIGHT', 3, '10_right.jpeg'],
      ],
    );
    assert.deepEqual(
      errors.map((error) => error.row),
      [4, 5, 6],
    );
    assert.match(errors[0]!.reason, /bad image name "13_up"/);
    assert.match(errors[1]!.reason, /unknown grade "5"/);
    assert.match(errors[2]!.reason, /image file not found: 16_left.jpeg/);
  });
});

describe('APTOS train.csv', () => {
  const labels = 'id_code,diagnosis\nabc123,2\ndef456,9\n';
  test('without --assume-eye every row is refused with the option to pass', async () => {
    const file = await makeSet('aptos', 'train.csv', labels, ['train_images/abc123.png']);
    const { records, errors } = await collect(importAptosLabels(file));
    assert.equal(records.length, 0);
    assert.deepEqual(errors[0], { row: 2, reason: 'APTOS has no laterality; pass --assume-eye LEFT|RIGHT to import', image: 'abc123' });
    assert.match(errors[1]!.reason, /unknown grade "9"/, 'grade is checked before the eye');
  });

  test('with --assume-eye each image is its own patient and the grading says the eye was assumed', async () => {
    const file = await makeSet('aptos2', 'train.csv', labels, ['train_images/abc123.png']);
    const { records, errors } = await collect(importAptosLabels(file, { assumeEye: 'LEFT' }));
    assert.equal(errors.length, 1);
    const record = records[0]!;
    assert.deepEqual([record.patient.mrn, record.patient.isPerImagePatient, record.eye, record.isEyeAssumed, record.grading?.drGrade], ['abc123', true, 'LEFT', true, 2]);
    assert.match(record.grading?.grader ?? '', /LEFT assumed at import/);
  });
});

describe('IDRiD grading CSV', () => {
  test('reads the header with its trailing space, the oedema risk 0-2, and needs --assume-eye', async () => {
    const file = await makeSet(
      'idrid',
      'a. IDRiD_Disease Grading_Training Labels.csv',
      'Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,3,2\nIDRiD_002,2,5\nIDRiD_003,,0\n',
      ['IDRiD_001.jpg', 'IDRiD_002.jpg'],
    );
    const refused = await collect(importIdridLabels(file));
    assert.equal(refused.records.length, 0);
    assert.match(refused.errors[0]!.reason, /IDRiD has no laterality; pass --assume-eye/);
    const { records, errors } = await collect(importIdridLabels(file, { assumeEye: 'RIGHT' }));
    assert.deepEqual(
      records.map((record) => [record.patient.mrn, record.eye, record.grading?.drGrade, record.grading?.macularEdemaRisk, record.patient.isPerImagePatient]),
      [['IDRiD_001', 'RIGHT', 3, 2, true]],
    );
    assert.deepEqual(
      errors.map((error) => [error.row, error.reason]),
      [
        [3, 'unknown risk of macular edema "5" (0-2 expected)'],
        [4, 'missing grade'],
      ],
    );
  });
});

describe('DeepDRiD regular fundus CSV', () => {
  test('eye from _l/_r, grade from that eye\'s column, backslash paths, quality kept', async () => {
    const header = 'patient_id,image_id,image_path,Overall quality,left_eye_DR_Level,right_eye_DR_Level,patient_DR_Level,Clarity,Field definition,Artifact';
    const file = await makeSet(
      'deepdrid/regular-fundus-training',
      'regular-fundus-training.csv',
      [
        header,
        '1,1_l1,\\regular-fundus-training\\1\\1_l1.jpg,1,2,,2,8,10,0',
        '1,1_r1,\\regular-fundus-training\\1\\1_r1.jpg,0,,1,2,6,8,2',
        '2,2_l1,\\regular-fundus-training\\2\\2_l1.jpg,1,,3,3,8,10,0',
        '3,3_x1,\\regular-fundus-training\\3\\3_x1.jpg,1,1,1,1,8,10,0',
      ].join('\n'),
      ['1/1_l1.jpg', '1/1_r1.jpg', '2/2_l1.jpg'],
    );
    const { records, errors } = await collect(importDeepdridLabels(file));
    assert.deepEqual(
      records.map((record) => [record.patient.mrn, record.eye, record.grading?.drGrade, record.quality]),
      [
        ['1', 'LEFT', 2, 'GOOD'],
        ['1', 'RIGHT', 1, 'USABLE'],
      ],
    );
    assert.match(records[0]!.grading?.grader ?? '', /clarity 8, field definition 10, artifact 0/);
    assert.deepEqual(
      errors.map((error) => error.row),
      [4, 5],
    );
    assert.match(errors[0]!.reason, /missing grade in left_eye_DR_Level/);
    assert.match(errors[1]!.reason, /bad eye/);
  });
});

describe('Messidor', () => {
  test('maps Messidor 0-3 to ICDR explicitly and keeps the original scale and value', async () => {
    assert.deepEqual(MESSIDOR_TO_ICDR, { 0: 0, 1: 1, 2: 2, 3: 3 });
    const file = await makeSet(
      'messidor',
      'Annotation_Base11.csv',
      'Image name, Ophthalmologic department, Retinopathy grade, Risk of macular edema\n' +
        'a.tif,Service Ophtalmologie Lariboisière,0,0\nb.tif,Service Ophtalmologie Lariboisière,1,0\nc.tif,LaTIM,2,1\nd.tif,LaTIM,3,2\ne.tif,LaTIM,4,0\n',
      ['a.tif', 'b.tif', 'c.tif', 'd.tif', 'e.tif'],
    );
    const { records, errors } = await collect(importMessidorLabels(file, { assumeEye: 'LEFT' }));
    assert.deepEqual(
      records.map((record) => [record.grading?.originalValue, record.grading?.drGrade, record.grading?.originalScale, record.grading?.macularEdemaRisk]),
      [
        ['0', 0, 'messidor-0-3', 0],
        ['1', 1, 'messidor-0-3', 0],
        ['2', 2, 'messidor-0-3', 1],
        ['3', 3, 'messidor-0-3', 2],
      ],
    );
    assert.deepEqual(errors, [{ row: 6, reason: 'unknown grade "4" (Messidor 0-3 expected)', image: 'e.tif' }]);
    assert.match(records[0]!.grading?.grader ?? '', /Lariboisière/);
  });
});

describe('format detection', () => {
  test('each published header maps to its importer; an unknown one names --format', async () => {
    assert.equal(detectFormatFromHeader(['image', 'patient_id', 'eye', 'grade', 'maculopathy']), 'shared');
    assert.equal(detectFormatFromHeader(['image', 'level']), 'eyepacs');
    assert.equal(detectFormatFromHeader(['id_code', 'diagnosis']), 'aptos');
    assert.equal(detectFormatFromHeader(['Image name', 'Retinopathy grade', 'Risk of macular edema ']), 'idrid');
    assert.equal(detectFormatFromHeader(['Image name', ' Ophthalmologic department', ' Retinopathy grade', ' Risk of macular edema']), 'messidor');
    assert.equal(detectFormatFromHeader(['patient_id', 'image_id', 'image_path', 'Overall quality', 'left_eye_DR_Level', 'right_eye_DR_Level']), 'deepdrid');
    assert.equal(detectFormatFromHeader(['file', 'score']), null);
    const unknown = await makeSet('unknown', 'labels.csv', 'file,score\na,1\n', []);
    await assert.rejects(detectFormat(unknown), /Cannot tell the format .* pass --format/);
  });

  test('a folder is opened through its labels file', async () => {
    await makeSet('folder', 'trainLabels.csv', 'image,level\n1_left,0\n', ['1_left.jpeg']);
    const opened = await openImport(path.join(root, 'folder'));
    assert.equal(opened.format, 'eyepacs');
    const { records } = await collect(opened.items);
    assert.equal(records.length, 1);
  });
});
