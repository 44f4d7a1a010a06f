// Which importer reads a path: `--format` when given, otherwise the header of the labels file decides. A folder
// is searched for the file each dataset publishes (labels.csv, trainLabels.csv, train.csv, *Labels.csv,
// regular-fundus-*.csv, a FHIR bundle *.json) and must hold exactly one candidate.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { importAptosLabels } from './aptos.js';
import { importDeepdridLabels } from './deepdrid.js';
import { importEyepacsLabels } from './eyepacs.js';
import { importFhirBundle } from './fhir.js';
import { importIdridLabels } from './idrid.js';
import { ImportFileError, IMPORT_FORMATS, type ImportFormat, type ImportItem, type ImportOptions } from './import-record.js';
import { parseCsvWithLines } from './labels-file.js';
import { importMessidorLabels } from './messidor.js';
import { importSharedLabels } from './shared-labels.js';

const IMPORTERS: Record<ImportFormat, (file: string, options: ImportOptions) => AsyncGenerator<ImportItem>> = {
  shared: importSharedLabels,
  eyepacs: importEyepacsLabels,
  aptos: importAptosLabels,
  idrid: importIdridLabels,
  deepdrid: importDeepdridLabels,
  messidor: importMessidorLabels,
  fhir: importFhirBundle,
};

export function parseImportFormat(value: string): ImportFormat {
  const format = value.trim().toLowerCase() as ImportFormat;
  if (!IMPORT_FORMATS.includes(format)) throw new ImportFileError(`unknown format "${value}" (one of ${IMPORT_FORMATS.join(', ')})`);
  return format;
}

/** The format a CSV header belongs to, or null. Headers are compared trimmed (IDRiD's trailing space). */
export function detectFormatFromHeader(header: readonly string[]): ImportFormat | null {
  const columns = new Set(header.map((column) => column.trim()));
  const has = (...names: string[]) => names.every((name) => columns.has(name));
  if (has('image', 'patient_id', 'eye', 'grade')) return 'shared';
  if (has('patient_id', 'image_id', 'image_path', 'left_eye_DR_Level', 'right_eye_DR_Level')) return 'deepdrid';
  if (has('Image name', 'Ophthalmologic department', 'Retinopathy grade')) return 'messidor';
  if (has('Image name', 'Retinopathy grade', 'Risk of macular edema')) return 'idrid';
  if (has('id_code', 'diagnosis')) return 'aptos';
  if (has('image', 'level')) return 'eyepacs';
  return null;
}

const LABEL_FILE_PATTERNS = [/^labels\.csv$/i, /^trainLabels\.csv$/i, /^train\.csv$/i, /Labels\.csv$/i, /^regular-fundus-.*\.csv$/i, /\.json$/i];

async function findLabelsFile(folder: string): Promise<string> {
  const names = (await readdir(folder)).sort();
  for (const pattern of LABEL_FILE_PATTERNS) {
    const matches = names.filter((name) => pattern.test(name));
    if (matches.length === 1) return path.join(folder, matches[0]!);
    if (matches.length > 1) throw new ImportFileError(`${folder} holds several labels files (${matches.join(', ')}); give the one to import`);
  }
  throw new ImportFileError(`${folder} holds no labels file (labels.csv, trainLabels.csv, train.csv, *Labels.csv, regular-fundus-*.csv or a FHIR *.json)`);
}

export async function resolveLabelsFile(target: string): Promise<string> {
  let info;
  try {
    info = await stat(target);
  } catch (error) {
    throw new ImportFileError(`Cannot read ${target}: ${(error as Error).message}`);
  }
  return info.isDirectory() ? findLabelsFile(target) : target;
}

export async function detectFormat(file: string): Promise<ImportFormat> {
  if (/\.json$/i.test(file)) return 'fhir';
  const head = (await readFile(file, 'utf8').catch((error: Error) => {
    throw new ImportFileError(`Cannot read ${file}: ${error.message}`);
  })).slice(0, 4096).replace(/^\uFEFF/, '');
  if (head.trimStart().startsWith('{')) return 'fhir';
  const firstLine = head.split(/\r?\n/)[0] ?? '';
  const delimiter = firstLine.includes(';') && !firstLine.includes(',') ? ';' : ',';
  const header = parseCsvWithLines(firstLine, delimiter)[0]?.fields ?? [];
  const format = detectFormatFromHeader(header);
  if (!format) throw new ImportFileError(`Cannot tell the format of ${file} from its header "${firstLine}"; pass --format (${IMPORT_FORMATS.join('|')})`);
  return format;
}

/** Opens `target` (a labels file or a folder holding one) as a stream of records and row errors. */
export async function openImport(target: string, options: ImportOptions & { format?: ImportFormat | null } = {}): Promise<{ file: string; format: ImportFormat; items: AsyncGenerator<ImportItem> }> {
  const file = await resolveLabelsFile(target);
  const format = options.format ?? (await detectFormat(file));
  return { file, format, items: IMPORTERS[format](file, options) };
}
