/**
 * npm run build-cache -- --size 256 --out models/cache/256 [--lesions <dir>] [--force] [--concurrency 2]
 *                        [--max-input-pixels N] <set-dir> [<set-dir> ...]
 *
 * Each set-dir holds labels.csv + images/ (shared/data/README.md). Writes the training cache described in
 * embedding/cache.ts. Bad images are reported on stderr (file + reason) and skipped; exit code 0 unless the
 * arguments are wrong or nothing at all could be cached.
 */
import path from 'node:path';
import { buildPreprocessedCache, type CacheSource } from '../embedding/cache.js';
import { DatasetError, listLesionImages, readLabelsCsv } from '../embedding/dataset.js';
import { DEFAULT_MAX_INPUT_PIXELS } from '../embedding/preprocess.js';
import { parseArgs, parsePositiveInteger, UsageError } from './args.js';

const USAGE =
  'usage: build-cache --size 256 --out <dir> [--lesions <dir>] [--force] [--concurrency 2] [--max-input-pixels N] <set-dir>...';

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { options: ['size', 'out', 'lesions', 'concurrency', 'max-input-pixels'], flags: ['force', 'help'] });
  if (args.flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const out = args.options.get('out');
  if (!out) throw new UsageError('--out is required');
  const size = parsePositiveInteger(args.options.get('size'), 'size', 256);
  const concurrency = parsePositiveInteger(args.options.get('concurrency'), 'concurrency', 2);
  const maxInputPixels = parsePositiveInteger(args.options.get('max-input-pixels'), 'max-input-pixels', DEFAULT_MAX_INPUT_PIXELS);
  const lesions = args.options.get('lesions');
  if (args.positionals.length === 0 && !lesions) throw new UsageError('give at least one set directory or --lesions');

  const sources: CacheSource[] = [];
  for (const directory of args.positionals) {
    sources.push({ set: path.basename(path.resolve(directory)), images: await readLabelsCsv(path.join(directory, 'labels.csv')) });
  }
  if (lesions) sources.push({ set: path.basename(path.resolve(lesions)), images: await listLesionImages(lesions) });
  const setNames = sources.map((source) => source.set);
  const duplicate = setNames.find((name, index) => setNames.indexOf(name) !== index);
  if (duplicate) throw new UsageError(`two set directories share the name "${duplicate}"`);
  for (const source of sources) process.stderr.write(`${source.set}: ${source.images.length} images\n`);

  const started = Date.now();
  const progressEvery = 100;
  const summary = await buildPreprocessedCache({
    sources,
    outDirectory: out,
    size,
    force: args.flags.has('force'),
    concurrency,
    maxInputPixels,
    onEvent: (event) => {
      if (event.kind === 'skipped') process.stderr.write(`skipped ${event.file}: ${event.code}: ${event.message}\n`);
      if (event.done % progressEvery === 0 || event.done === event.total) {
        const seconds = (Date.now() - started) / 1000;
        process.stderr.write(`progress ${event.done}/${event.total} (${seconds.toFixed(0)} s)\n`);
      }
    },
  });
  const skipped = Object.entries(summary.skipped);
  const skippedTotal = skipped.reduce((total, [, count]) => total + count, 0);
  process.stdout.write(
    `written ${summary.written}, already cached ${summary.reused}, skipped ${skippedTotal}` +
      (skipped.length > 0 ? ` (${skipped.map(([code, count]) => `${code} ${count}`).join(', ')})` : '') +
      `; index.csv has ${summary.indexRows} rows; ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return summary.written + summary.reused === 0 && skippedTotal > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof DatasetError) {
      process.stderr.write(`build-cache: ${error.message}\n${error instanceof UsageError ? `${USAGE}\n` : ''}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`build-cache: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
