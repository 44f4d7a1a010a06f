// IDRiD disease grading: "Image name,Retinopathy grade,Risk of macular edema " (the trailing space is in the
// published file; headers are trimmed on reading). Grades are ICDR 0-4, macular-oedema risk 0-2. IDRiD has no
// patient ids (one patient per image) and no laterality column: same --assume-eye rule as APTOS.
import path from 'node:path';
import { datasetRecord, describeGrader, missingEyeReason, parseIcdrGrade, parseMacularEdemaRisk, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { findImageFile, readLabelsTable, requireColumns } from './labels-file.js';

export const IDRID_COLUMNS = ['Image name', 'Retinopathy grade', 'Risk of macular edema'] as const;

export async function* importIdridLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, IDRID_COLUMNS, 'IDRiD disease grading');
  const name = options.datasetName ?? 'idrid';
  const dataset = { name, description: 'IDRiD disease grading; no patient ids (one patient per image) and no laterality', isSynthetic: false as const };
  const folders = [options.imageDirectory, table.folder, path.join(table.folder, 'images')].filter((f): f is string => !!f);
  const assumedEye = options.assumeEye ?? null;
  for (const { line, values } of table.rows) {
    const image = values['Image name'] ?? '';
    if (image === '') {
      yield rowError(line, 'missing image');
      continue;
    }
    const grade = parseIcdrGrade(values['Retinopathy grade']);
    if ('reason' in grade) {
      yield rowError(line, grade.reason, image);
      continue;
    }
    const edema = parseMacularEdemaRisk(values['Risk of macular edema']);
    if ('reason' in edema) {
      yield rowError(line, edema.reason, image);
      continue;
    }
    const { risk } = edema;
    if (!assumedEye) {
      yield rowError(line, missingEyeReason('IDRiD'), image);
      continue;
    }
    const names = path.extname(image) ? [image] : [`${image}.jpg`, `${image}.JPG`, `${image}.png`];
    const imagePath = await findImageFile(folders, names);
    if (!imagePath) {
      yield rowError(line, `image file not found: ${names[0]}`, image);
      continue;
    }
    yield toCheckedItem(
      datasetRecord({
        row: line,
        dataset,
        mrn: path.basename(image, path.extname(image)),
        isPerImagePatient: true,
        eye: assumedEye,
        isEyeAssumed: true,
        imagePath,
        visitDate: options.visitDate,
        grading: { drGrade: grade.grade, maculopathy: null, macularEdemaRisk: risk, grader: describeGrader('IDRiD label', assumedEye), originalScale: null, originalValue: null },
      }),
      image,
    );
  }
}
