// EyePACS (Kaggle 2015) trainLabels.csv: image,level. "10_left" is patient 10's left eye, file 10_left.jpeg in
// the CSV's folder, its train/ or images/ subfolder. Patient ids are written "eyepacs-<n>" in the system
// urn:fundus-cbr:dataset:eyepacs, exactly as ../shared/data writes them, so both imports meet in one patient.
// The competition notes some images are inverted or mirrored; nothing here can detect that.
import path from 'node:path';
import { datasetRecord, datasetSystem, parseIcdrGrade, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { findImageFile, readLabelsTable, requireColumns } from './labels-file.js';

export const EYEPACS_COLUMNS = ['image', 'level'] as const;

export async function* importEyepacsLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, EYEPACS_COLUMNS, 'EyePACS trainLabels');
  const name = options.datasetName ?? 'eyepacs';
  const dataset = { name, description: 'EyePACS, Kaggle 2015 diabetic retinopathy detection (one grader per image)', isSynthetic: false as const };
  const folders = [options.imageDirectory, table.folder, path.join(table.folder, 'train'), path.join(table.folder, 'images')].filter((f): f is string => !!f);
  for (const { line, values } of table.rows) {
    const image = values['image'] ?? '';
    if (image === '') {
      yield rowError(line, 'missing image');
      continue;
    }
    const match = /^(\d+)_(left|right)$/i.exec(image);
    if (!match) {
      yield rowError(line, `bad image name "${image}" (<patient>_left or <patient>_right expected)`, image);
      continue;
    }
    const grade = parseIcdrGrade(values['level']);
    if ('reason' in grade) {
      yield rowError(line, grade.reason, image);
      continue;
    }
    const imagePath = await findImageFile(folders, [`${image}.jpeg`, `${image}.jpg`]);
    if (!imagePath) {
      yield rowError(line, `image file not found: ${image}.jpeg`, image);
      continue;
    }
    yield toCheckedItem(
      datasetRecord({
        row: line,
        dataset,
        mrn: `eyepacs-${match[1]}`,
        mrnSystem: datasetSystem('eyepacs'),
        isPerImagePatient: false,
        eye: match[2]!.toLowerCase() === 'left' ? 'LEFT' : 'RIGHT',
        isEyeAssumed: false,
        imagePath,
        visitDate: options.visitDate,
        grading: { drGrade: grade.grade, maculopathy: null, macularEdemaRisk: null, grader: 'EyePACS label (single grader)', originalScale: null, originalValue: null },
      }),
      image,
    );
  }
}
