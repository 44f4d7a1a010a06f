import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DatasetError, formatCsvRow, parseCsv, readLabelsCsv } from './dataset.js';

describe('CSV', () => {
  it('parses quoted fields, doubled quotes and CRLF, and round-trips through formatCsvRow', () => {
    assert.deepEqual(parseCsv('a,b\r\n"x, y","say ""hi"""\n3,\n'), [
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['3', ''],
    ]);
    const fields = ['images/a,b.png', 'q"uote', '', 4];
    assert.deepEqual(parseCsv(formatCsvRow(fields)), [fields.map(String)]);
  });
});

describe('readLabelsCsv', () => {
  it('resolves image paths against the CSV folder and parses grades', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'labels-'));
    try {
      const csv = path.join(directory, 'labels.csv');
      await writeFile(csv, 'image,patient_id,eye,grade,extra\nimages/a.jpg,p-1,L,0,x\nimages/b.jpg,p-1,r,4,y\n');
      const labels = await readLabelsCsv(csv);
      assert.deepEqual(labels, [
        { file: path.join(directory, 'images/a.jpg'), image: 'images/a.jpg', patientId: 'p-1', eye: 'L', grade: 0 },
        { file: path.join(directory, 'images/b.jpg'), image: 'images/b.jpg', patientId: 'p-1', eye: 'R', grade: 4 },
      ]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  const badFiles: [string, string, RegExp][] = [
    ['missing column', 'image,patient_id,grade\na.jpg,p,0\n', /lacks column\(s\) eye/],
    ['grade out of range', 'image,patient_id,eye,grade\na.jpg,p,L,5\n', /row 2: grade must be 0-4/],
    ['empty patient', 'image,patient_id,eye,grade\na.jpg,,L,1\n', /empty patient_id/],
    ['bad eye', 'image,patient_id,eye,grade\na.jpg,p,X,1\n', /eye must be L or R/],
    ['a photograph listed twice', 'image,patient_id,eye,grade\na.jpg,p,L,1\nb.jpg,p,R,1\n./a.jpg,p,L,3\n', /row 4: \.\/a\.jpg is already listed in row 2/],
  ];
  for (const [name, content, message] of badFiles) {
    it(`rejects a labels file with ${name}`, async () => {
      const directory = await mkdtemp(path.join(tmpdir(), 'labels-'));
      try {
        await writeFile(path.join(directory, 'labels.csv'), content);
        await assert.rejects(readLabelsCsv(path.join(directory, 'labels.csv')), (error) => error instanceof DatasetError && message.test(error.message));
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    });
  }
});
