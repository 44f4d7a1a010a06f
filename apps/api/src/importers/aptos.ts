// APTOS 2019 train.csv: id_code,diagnosis (ICDR 0-4), images <id_code>.png. APTOS publishes neither patient
// ids nor laterality: every image becomes its own patient (mrn = id_code, isPerImagePatient), and because the
// data model requires an eye, a row is only imported when --assume-eye says which; the grading's grader text
// then states the assumption. Without it every row is an ImportRowError naming the option.
import path from 'node:path';
import { datasetRecord, describeGrader, missingEyeReason, parseIcdrGrade, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { findImageFile, readLabelsTable, requireColumns } from './labels-file.js';

export const APTOS_COLUMNS = ['id_code', 'diagnosis'] as const;

export async function* importAptosLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, APTOS_COLUMNS, 'APTOS 2019');
  const name = options.datasetName ?? 'aptos2019';
  const dataset = { name, description: 'APTOS 2019 blindness detection; no patient ids (one patient per image) and no laterality', isSynthetic: false as const };
  const folders = [options.imageDirectory, table.folder, path.join(table.folder, 'train_images'), path.join(table.folder, 'images')].filter((f): f is string => !!f);
  const assumedEye = options.assumeEye ?? null;
  for (const { line, values } of table.rows) {
    const id = values['id_code'] ?? '';
    if (id === '') {
      yield rowError(line, 'missing image (id_code)');
      continue;
    }
    const grade = parseIcdrGrade(values['diagnosis']);
    if ('reason' in grade) {
      yield rowError(line, grade.reason, id);
      continue;
    }
    if (!assumedEye) {
      yield rowError(line, missingEyeReason('APTOS'), id);
      continue;
    }
    const imagePath = await findImageFile(folders, [`${id}.png`, `${id}.jpg`]);
    if (!imagePath) {
      yield rowError(line, `image file not found: ${id}.png`, id);
      continue;
    }
    yield toCheckedItem(
      datasetRecord({
        row: line,
        dataset,
        mrn: id,
        isPerImagePatient: true,
        eye: assumedEye,
        isEyeAssumed: true,
        imagePath,
        visitDate: options.visitDate,
        grading: { drGrade: grade.grade, maculopathy: null, macularEdemaRisk: null, grader: describeGrader('APTOS 2019 label', assumedEye), originalScale: null, originalValue: null },
      }),
      id,
    );
  }
}
