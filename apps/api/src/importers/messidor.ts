// Messidor: "Image name, Ophthalmologic department, Retinopathy grade, Risk of macular edema" (one spreadsheet
// per base, exported to CSV). Messidor's retinopathy grade is its own 0-3 scale, counted from lesions:
//   0: no microaneurysm (μA) and no haemorrhage (H)
//   1: 0 < μA <= 5 and no H
//   2: 5 < μA < 15, or 0 < H < 5, and no neovascularisation (NV)
//   3: μA >= 15, or H >= 5, or NV
// Mapping to ICDR (MESSIDOR_TO_ICDR), with the original scale and value always kept on the grading:
//   0 -> 0 (no DR).
//   1 -> 1: microaneurysms only is ICDR mild NPDR.
//   2 -> 2: more than microaneurysms only, short of the severe thresholds, is ICDR moderate; approximate, since
//        Messidor 2 also holds eyes with 6-14 μA and no haemorrhage that ICDR would call mild.
//   3 -> 3: Messidor 3 lumps severe NPDR and PDR (NV) together and cannot tell ICDR 3 from 4; 3 is the lower
//        bound, so a grade filter never calls an eye proliferative on evidence it lacks.
// Messidor has no patient ids in these sheets (one patient per image) and no laterality column: --assume-eye.
import path from 'node:path';
import { datasetRecord, describeGrader, missingEyeReason, parseMacularEdemaRisk, parseSmallInteger, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { findImageFile, readLabelsTable, requireColumns } from './labels-file.js';

export const MESSIDOR_COLUMNS = ['Image name', 'Ophthalmologic department', 'Retinopathy grade', 'Risk of macular edema'] as const;
export const MESSIDOR_SCALE = 'messidor-0-3';
export const MESSIDOR_TO_ICDR: Readonly<Record<number, number>> = { 0: 0, 1: 1, 2: 2, 3: 3 };

export async function* importMessidorLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, MESSIDOR_COLUMNS, 'Messidor');
  const name = options.datasetName ?? 'messidor';
  const dataset = { name, description: 'Messidor; grades mapped from the Messidor 0-3 scale to ICDR (originals kept); one patient per image; no laterality', isSynthetic: false as const };
  const folders = [options.imageDirectory, table.folder, path.join(table.folder, 'images')].filter((f): f is string => !!f);
  const assumedEye = options.assumeEye ?? null;
  for (const { line, values } of table.rows) {
    const image = values['Image name'] ?? '';
    if (image === '') {
      yield rowError(line, 'missing image');
      continue;
    }
    const original = parseSmallInteger(values['Retinopathy grade'], 3);
    if (original === null || original === 'invalid') {
      yield rowError(line, `unknown grade "${values['Retinopathy grade'] ?? ''}" (Messidor 0-3 expected)`, image);
      continue;
    }
    const edema = parseMacularEdemaRisk(values['Risk of macular edema']);
    if ('reason' in edema) {
      yield rowError(line, edema.reason, image);
      continue;
    }
    const { risk } = edema;
    if (!assumedEye) {
      yield rowError(line, missingEyeReason('Messidor'), image);
      continue;
    }
    const imagePath = await findImageFile(folders, [image]);
    if (!imagePath) {
      yield rowError(line, `image file not found: ${image}`, image);
      continue;
    }
    const department = values['Ophthalmologic department'] ?? '';
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
        grading: {
          drGrade: MESSIDOR_TO_ICDR[original]!,
          maculopathy: null,
          macularEdemaRisk: risk,
          grader: describeGrader(department ? `Messidor label (${department})` : 'Messidor label', assumedEye),
          originalScale: MESSIDOR_SCALE,
          originalValue: String(original),
        },
      }),
      image,
    );
  }
}
