// Reading a labels spreadsheet (CSV) with the line number of every row, so a bad row can be named exactly.
// Headers are matched after trimming (IDRiD's "Risk of macular edema " has a trailing space, Messidor's CSV
// exports put a space after every comma); a semicolon header (European Excel exports) switches the delimiter.
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ImportFileError } from './import-record.js';

export type LabelsRow = { line: number; values: Record<string, string> };
export type LabelsTable = { file: string; folder: string; header: string[]; rows: LabelsRow[] };

/** RFC 4180 CSV with quoted fields; returns each row with the 1-based line it starts on; blank lines dropped. */
export function parseCsvWithLines(text: string, delimiter = ','): { line: number; fields: string[] }[] {
  const rows: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  const endRow = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0]!.trim() === '')) rows.push({ line: rowLine, fields });
    fields = [];
    field = '';
  };
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else {
        if (char === '\n') line += 1;
        field += char;
      }
    } else if (char === '"') quoted = true;
    else if (char === delimiter) {
      fields.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i += 1;
      endRow();
      line += 1;
      rowLine = line;
    } else field += char;
  }
  if (field !== '' || fields.length > 0) endRow();
  return rows;
}

export async function readLabelsTable(file: string): Promise<LabelsTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ImportFileError(`Cannot read the labels file ${file}: ${(error as Error).message}`);
  }
  text = text.replace(/^\uFEFF/, '');
  const firstLine = text.slice(0, text.search(/\r?\n|$/));
  const delimiter = firstLine.includes(';') && !firstLine.includes(',') ? ';' : ',';
  const [header, ...rows] = parseCsvWithLines(text, delimiter);
  if (!header) throw new ImportFileError(`The labels file ${file} is empty`);
  const columns = header.fields.map((name) => name.trim());
  return {
    file,
    folder: path.dirname(path.resolve(file)),
    header: columns,
    rows: rows.map(({ line, fields }) => ({ line, values: Object.fromEntries(columns.map((column, index) => [column, (fields[index] ?? '').trim()])) })),
  };
}

export function requireColumns(table: LabelsTable, columns: readonly string[], format: string): void {
  const missing = columns.filter((column) => !table.header.includes(column));
  if (missing.length > 0) {
    throw new ImportFileError(`${table.file} is not a ${format} labels file: column(s) ${missing.map((c) => `"${c}"`).join(', ')} missing (header: ${table.header.join(',')})`);
  }
}

export async function fileExists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The first of `names` found in any of `folders` (in order), or null. */
export async function findImageFile(folders: readonly string[], names: readonly string[]): Promise<string | null> {
  for (const folder of folders) {
    for (const name of names) {
      const candidate = path.resolve(folder, name);
      if (await fileExists(candidate)) return candidate;
    }
  }
  return null;
}
