// The layout of ../shared/data: `labels.csv` with image,patient_id,eye,grade (+ srahim's maculopathy, aded),
// image paths relative to the CSV. Patient ids are prefixed by their source ("srahim-012", "eyepacs-1000"),
// and the same EyePACS patient appears in eyepacs-raw and eyepacs-processed, so the identifier system comes from
// that prefix, not from the set's folder: both sets then meet in one patient.
// Sets without laterality (aptos, idrid) leave `eye` blank and give `eye_inferred`, a guess from the optic disc's
// side; the data model needs an eye, so a blank eye is filled from it and the image is stored as eye-inferred
// (fundus_image.eye_inferred). A blank eye without a usable eye_inferred is a bad row.
import path from 'node:path';
import type { Eye } from '../generated/prisma/enums.js';
import { datasetRecord, datasetSystem, parseIcdrGrade, parseSmallInteger, resolveImagePath, rowError, type ImportItem, type ImportOptions } from './import-record.js';
import { toCheckedItem } from './record-problems.js';
import { fileExists, readLabelsTable, requireColumns } from './labels-file.js';

export const SHARED_COLUMNS = ['image', 'patient_id', 'eye', 'grade'] as const;

export function parseEyeLetter(value: string): Eye | null {
  const text = value.trim().toUpperCase();
  if (text === 'L' || text === 'LEFT' || text === 'OS') return 'LEFT';
  if (text === 'R' || text === 'RIGHT' || text === 'OD') return 'RIGHT';
  return null;
}

export async function* importSharedLabels(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  const table = await readLabelsTable(file);
  requireColumns(table, SHARED_COLUMNS, 'shared-data');
  const name = options.datasetName ?? path.basename(table.folder);
  const dataset = { name, description: `Imported from ${path.basename(file)} (../shared/data layout)`, isSynthetic: false as const };
  for (const { line, values } of table.rows) {
    const image = values['image'] ?? '';
    const patientId = values['patient_id'] ?? '';
    if (image === '') {
      yield rowError(line, 'missing image');
      continue;
    }
    if (patientId === '') {
      yield rowError(line, 'missing patient_id', image);
      continue;
    }
    const givenEye = (values['eye'] ?? '').trim();
    const eyeText = givenEye === '' ? (values['eye_inferred'] ?? '') : givenEye;
    const isEyeInferred = givenEye === '';
    const eye = parseEyeLetter(eyeText);
    if (!eye) {
      yield rowError(
        line,
        isEyeInferred
          ? `no eye: eye is blank and eye_inferred is "${values['eye_inferred'] ?? ''}" (L or R expected)`
          : `bad eye "${givenEye}" (L or R expected)`,
        image,
      );
      continue;
    }
    const grade = parseIcdrGrade(values['grade']);
    if ('reason' in grade) {
      yield rowError(line, grade.reason, image);
      continue;
    }
    const maculopathy = parseSmallInteger(values['maculopathy'], 1);
    const aded = parseSmallInteger(values['aded'], 1);
    if (maculopathy === 'invalid' || aded === 'invalid') {
      yield rowError(line, `bad maculopathy/aded "${values['maculopathy'] ?? ''}"/"${values['aded'] ?? ''}" (0 or 1 expected)`, image);
      continue;
    }
    const imagePath = resolveImagePath(table.folder, image);
    if (!imagePath || !(await fileExists(imagePath))) {
      yield rowError(line, `image file not found: ${image}`, image);
      continue;
    }
    // "srahim-012" -> system srahim; an id without a prefix belongs to the dataset itself.
    const prefix = /^([a-z][a-z0-9]*)-./i.exec(patientId)?.[1]?.toLowerCase();
    yield toCheckedItem(
      datasetRecord({
        row: line,
        dataset,
        mrn: patientId,
        mrnSystem: datasetSystem(prefix ?? name),
        isPerImagePatient: false,
        eye,
        isEyeAssumed: isEyeInferred,
        imagePath,
        visitDate: options.visitDate,
        grading: {
          drGrade: grade.grade,
          maculopathy: maculopathy === null ? null : maculopathy === 1,
          macularEdemaRisk: null,
          grader: isEyeInferred ? `${name} label; eye not published by the dataset, ${eye} inferred from the optic disc's side (eye_inferred)` : `${name} label`,
          // srahim's "advanced diabetic eye disease" is already folded into grade 4 by the set; keep the flag.
          originalScale: aded === 1 ? 'srahim-aded' : null,
          originalValue: aded === 1 ? 'aded=1' : null,
        },
      }),
      image,
    );
  }
}
