// DeepDRiD regular fundus: patient_id,image_id,image_path,Overall quality,left_eye_DR_Level,right_eye_DR_Level,
// patient_DR_Level,Clarity,Field definition,Artifact. image_id "<patient>_l1" / "_r2" gives the eye; the grade
// sits in that eye's column (the other is empty). image_path uses backslashes ("\regular-fundus-training\1\
// 1_l1.jpg") and is resolved against the CSV's folder and its parent.
// Quality: DeepDRiD's binary "Overall quality" 1 -> GOOD, 0 -> USABLE (not UNGRADABLE: the dataset still
// graded the image). The sub-scores (clarity, field definition, artifact) have no column in the data model;
// they are kept on the grading's grader text so they are not lost.
import path from 'node:path';
import { datasetRecord, parseIcdrGrade, parseSmallInteger, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { findImageFile, readLabelsTable, requireColumns } from './labels-file.js';

export const DEEPDRID_COLUMNS = ['patient_id', 'image_id', 'image_path', 'left_eye_DR_Level', 'right_eye_DR_Level'] as const;

export async function* importDeepdridLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, DEEPDRID_COLUMNS, 'DeepDRiD regular fundus');
  const name = options.datasetName ?? 'deepdrid';
  const dataset = { name, description: 'DeepDRiD regular fundus images', isSynthetic: false as const };
  const folders = [options.imageDirectory, table.folder, path.dirname(table.folder)].filter((f): f is string => !!f);
  for (const { line, values } of table.rows) {
    const imageId = values['image_id'] ?? '';
    const patientId = values['patient_id'] ?? '';
    const rawPath = values['image_path'] ?? '';
    if (rawPath === '') {
      yield rowError(line, 'missing image', imageId || undefined);
      continue;
    }
    if (patientId === '') {
      yield rowError(line, 'missing patient_id', imageId);
      continue;
    }
    const side = /_([lr])\d*$/i.exec(imageId)?.[1]?.toLowerCase();
    if (!side) {
      yield rowError(line, `bad eye: image_id "${imageId}" does not end in _l<n> or _r<n>`, imageId);
      continue;
    }
    const eye = side === 'l' ? 'LEFT' : 'RIGHT';
    const column = eye === 'LEFT' ? 'left_eye_DR_Level' : 'right_eye_DR_Level';
    const grade = parseIcdrGrade(values[column]);
    if ('reason' in grade) {
      yield rowError(line, `${grade.reason} in ${column}`, imageId);
      continue;
    }
    const quality = parseSmallInteger(values['Overall quality'], 1);
    const relative = rawPath.replaceAll('\\', '/').replace(/^\/+/, '');
    const imagePath = relative.split('/').includes('..') ? null : await findImageFile(folders, [relative, path.basename(relative)]);
    if (!imagePath) {
      yield rowError(line, `image file not found: ${rawPath}`, imageId);
      continue;
    }
    const scores = ['Clarity', 'Field definition', 'Artifact'].filter((key) => (values[key] ?? '') !== '').map((key) => `${key.toLowerCase()} ${values[key]}`);
    yield toCheckedItem(
      datasetRecord({
        row: line,
        dataset,
        mrn: patientId,
        isPerImagePatient: false,
        eye,
        isEyeAssumed: false,
        imagePath,
        quality: quality === 1 ? 'GOOD' : quality === 0 ? 'USABLE' : 'UNKNOWN',
        visitDate: options.visitDate,
        grading: {
          drGrade: grade.grade,
          maculopathy: null,
          macularEdemaRisk: null,
          grader: scores.length > 0 ? `DeepDRiD label (quality: overall ${values['Overall quality'] || '?'}, ${scores.join(', ')})` : 'DeepDRiD label',
          originalScale: null,
          originalValue: null,
        },
      }),
      imageId,
    );
  }
}
