/**
 * Reading the image sets described in shared/data/README.md: `labels.csv` (image,patient_id,eye,grade, image
 * paths relative to the CSV's folder) plus the lesion set, which has no labels.csv and no grades.
 *
 * Grades are ICDR 0-4 or null (lesions). Patient ids are kept verbatim: every split and every retrieval
 * exclusion is by patient, never by image.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCsvWithLines } from '../importers/labels-file.js';

export interface LabelledImage {
  /** Absolute path of the image file. */
  file: string;
  /** Image path as written in labels.csv (relative to the set folder). */
  image: string;
  patientId: string;
  eye: 'L' | 'R' | '';
  grade: number | null;
}

export class DatasetError extends Error {
  override readonly name = 'DatasetError';
}

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF or LF) as rows of fields; one parser for the whole API. */
export function parseCsv(text: string): string[][] {
  return parseCsvWithLines(text).map((row) => row.fields);
}

export function formatCsvRow(fields: readonly (string | number | null | undefined)[]): string {
  return fields
    .map((value) => {
      const text = value === null || value === undefined ? '' : String(value);
      return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
    })
    .join(',');
}

/** Rows of a CSV as objects keyed by header; throws DatasetError when a required column is missing. */
export function parseCsvRecords(text: string, requiredColumns: readonly string[], source: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!header) throw new DatasetError(`${source} is empty`);
  const missing = requiredColumns.filter((column) => !header.includes(column));
  if (missing.length > 0) throw new DatasetError(`${source} lacks column(s) ${missing.join(', ')}; header is "${header.join(',')}"`);
  return rows.map((fields) => Object.fromEntries(header.map((column, index) => [column, fields[index] ?? ''])));
}

export function parseGrade(value: string, where: string): number | null {
  if (value.trim() === '') return null;
  const grade = Number(value);
  if (!Number.isInteger(grade) || grade < 0 || grade > 4) throw new DatasetError(`${where}: grade must be 0-4, got "${value}"`);
  return grade;
}

export async function readLabelsCsv(csvPath: string): Promise<LabelledImage[]> {
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch (error) {
    throw new DatasetError(`cannot read labels file ${csvPath}: ${(error as Error).message}`);
  }
  const folder = path.dirname(path.resolve(csvPath));
  const records = parseCsvRecords(text, ['image', 'patient_id', 'eye', 'grade'], csvPath);
  const rowOfFile = new Map<string, number>();
  return records.map((record, index) => {
    const where = `${csvPath} row ${index + 2}`;
    const image = record['image'] ?? '';
    const patientId = record['patient_id'] ?? '';
    const eye = (record['eye'] ?? '').trim().toUpperCase();
    if (image === '') throw new DatasetError(`${where}: empty image path`);
    if (patientId === '') throw new DatasetError(`${where}: empty patient_id`);
    if (eye !== 'L' && eye !== 'R' && eye !== '') throw new DatasetError(`${where}: eye must be L or R, got "${eye}"`);
    const file = path.resolve(folder, image);
    // One photograph, one label: a second row would be counted as a second image with perhaps another grade.
    const earlier = rowOfFile.get(file);
    if (earlier !== undefined) throw new DatasetError(`${where}: ${image} is already listed in row ${earlier}`);
    rowOfFile.set(file, index + 2);
    return { file, image, patientId, eye, grade: parseGrade(record['grade'] ?? '', where) };
  });
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.tif', '.tiff', '.webp', '.bmp']);

/** The lesion set: every image file in `<dir>/images`, sorted; patient id `lesions-<stem>`, no eye, no grade. */
export async function listLesionImages(setDirectory: string): Promise<LabelledImage[]> {
  const imagesDirectory = path.join(setDirectory, 'images');
  let names: string[];
  try {
    names = await readdir(imagesDirectory);
  } catch (error) {
    throw new DatasetError(`cannot list ${imagesDirectory}: ${(error as Error).message}`);
  }
  return names
    .filter((name) => IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase()))
    .sort()
    .map((name) => ({
      file: path.join(imagesDirectory, name),
      image: `images/${name}`,
      patientId: `lesions-${imageStem(name)}`,
      eye: '',
      grade: null,
    }));
}

export function imageStem(image: string): string {
  return path.basename(image, path.extname(image));
}
