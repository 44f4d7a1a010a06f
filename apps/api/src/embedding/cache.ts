/**
 * The preprocessed-image cache that model training reads (models/ trains on these PNGs, not on raw photographs),
 * so training sees exactly the pixels `preprocessFundusImage` gives the API at serving time.
 *
 * Layout under `outDirectory`:
 *   images/<set>/<image-stem>.png   RGB 8-bit, size x size, lossless
 *   index.csv                       INDEX_HEADER; cache_path relative to outDirectory; crop in original pixels
 * Idempotent: a PNG already present with a row in the previous index.csv is kept (its row reused) unless
 * `force`; index.csv is rewritten atomically at the end with every image that is in the cache.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { formatCsvRow, imageStem, parseCsvRecords, type LabelledImage } from './dataset.js';
import { PreprocessError, preprocessFundusImage, type PreprocessErrorCode } from './preprocess.js';

export const INDEX_HEADER = [
  'cache_path',
  'source_set',
  'image',
  'patient_id',
  'eye',
  'grade',
  'orig_width',
  'orig_height',
  'crop_x',
  'crop_y',
  'crop_side',
] as const;

export type IndexRow = Record<(typeof INDEX_HEADER)[number], string>;

export interface CacheSource {
  /** Folder name under images/, e.g. "srahim". */
  set: string;
  images: LabelledImage[];
}

export type CacheEvent =
  | { kind: 'written' | 'reused'; set: string; image: string; done: number; total: number }
  | { kind: 'skipped'; set: string; image: string; file: string; code: SkipCode; message: string; done: number; total: number };

export type SkipCode = PreprocessErrorCode | 'READ_FAILED' | 'DUPLICATE_STEM';

export interface CacheSummary {
  written: number;
  reused: number;
  skipped: Partial<Record<SkipCode, number>>;
  indexRows: number;
}

export async function buildPreprocessedCache(options: {
  sources: CacheSource[];
  outDirectory: string;
  size: number;
  force?: boolean;
  concurrency?: number;
  maxInputPixels?: number;
  onEvent?: (event: CacheEvent) => void;
}): Promise<CacheSummary> {
  const { sources, outDirectory, size } = options;
  const previousRows = await readPreviousIndex(outDirectory);
  const summary: CacheSummary = { written: 0, reused: 0, skipped: {}, indexRows: 0 };
  const jobs = sources.flatMap((source) => source.images.map((image) => ({ set: source.set, image })));
  const rows: (IndexRow | undefined)[] = new Array(jobs.length);
  const seenPaths = new Set<string>();
  let done = 0;

  await runWithConcurrency(jobs, options.concurrency ?? 2, async (job, index) => {
    const cachePath = `images/${job.set}/${imageStem(job.image.image)}.png`;
    const skip = (code: SkipCode, message: string): void => {
      summary.skipped[code] = (summary.skipped[code] ?? 0) + 1;
      done += 1;
      options.onEvent?.({ kind: 'skipped', set: job.set, image: job.image.image, file: job.image.file, code, message, done, total: jobs.length });
    };
    // Checked synchronously before any await, so two workers cannot both claim a path.
    if (seenPaths.has(cachePath)) {
      skip('DUPLICATE_STEM', `another image in set ${job.set} already maps to ${cachePath}`);
      return;
    }
    seenPaths.add(cachePath);
    const target = path.join(outDirectory, cachePath);
    const previous = previousRows.get(cachePath);
    if (!options.force && previous && previous['image'] === job.image.image && (await fileExists(target))) {
      rows[index] = { ...previous, patient_id: job.image.patientId, eye: job.image.eye, grade: formatGrade(job.image.grade) };
      summary.reused += 1;
      done += 1;
      options.onEvent?.({ kind: 'reused', set: job.set, image: job.image.image, done, total: jobs.length });
      return;
    }
    let input: Buffer;
    try {
      input = await readFile(job.image.file);
    } catch (error) {
      skip('READ_FAILED', (error as Error).message);
      return;
    }
    let result;
    try {
      result = await preprocessFundusImage(input, { size, maxInputPixels: options.maxInputPixels });
    } catch (error) {
      if (error instanceof PreprocessError) {
        skip(error.code, error.message);
        return;
      }
      throw error;
    }
    await mkdir(path.dirname(target), { recursive: true });
    const temporary = `${target}.tmp-${process.pid}`;
    await sharp(result.pixels, { raw: { width: size, height: size, channels: 3 } }).png().toFile(temporary);
    await rename(temporary, target);
    rows[index] = {
      cache_path: cachePath,
      source_set: job.set,
      image: job.image.image,
      patient_id: job.image.patientId,
      eye: job.image.eye,
      grade: formatGrade(job.image.grade),
      orig_width: String(result.original.width),
      orig_height: String(result.original.height),
      crop_x: String(result.crop.x),
      crop_y: String(result.crop.y),
      crop_side: String(result.crop.side),
    };
    summary.written += 1;
    done += 1;
    options.onEvent?.({ kind: 'written', set: job.set, image: job.image.image, done, total: jobs.length });
  });

  // Rows of sets not processed in this run stay in the index, so sets can be added one run at a time.
  const processedSets = new Set(sources.map((source) => source.set));
  const keptRows = [...previousRows.values()].filter((row) => !processedSets.has(row['source_set']));
  const finalRows = [...keptRows, ...rows.filter((row): row is IndexRow => row !== undefined)];
  await mkdir(outDirectory, { recursive: true });
  const indexPath = path.join(outDirectory, 'index.csv');
  const lines = [formatCsvRow(INDEX_HEADER), ...finalRows.map((row) => formatCsvRow(INDEX_HEADER.map((column) => row[column])))];
  await writeFile(`${indexPath}.tmp-${process.pid}`, `${lines.join('\n')}\n`);
  await rename(`${indexPath}.tmp-${process.pid}`, indexPath);
  summary.indexRows = finalRows.length;
  return summary;
}

function formatGrade(grade: number | null): string {
  return grade === null ? '' : String(grade);
}

async function readPreviousIndex(outDirectory: string): Promise<Map<string, IndexRow>> {
  let text: string;
  try {
    text = await readFile(path.join(outDirectory, 'index.csv'), 'utf8');
  } catch {
    return new Map();
  }
  const records = parseCsvRecords(text, INDEX_HEADER, 'index.csv') as IndexRow[];
  return new Map(records.map((record) => [record.cache_path, record]));
}

async function fileExists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Runs `worker` over items with at most `limit` in flight; rejects on the first unexpected error. */
export async function runWithConcurrency<T>(
  items: readonly T[],
  limit: number,
  worker: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      await worker(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
}
