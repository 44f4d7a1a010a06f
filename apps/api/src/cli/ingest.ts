// npm run ingest -- <labels file or folder> [--format shared|eyepacs|aptos|idrid|deepdrid|messidor|fhir]
//   [--dataset <name>] [--model models/fundus-cbr.onnx] [--assume-eye LEFT|RIGHT] [--visit-date YYYY-MM-DD]
//   [--images <folder>] [--limit N] [--database-url postgresql://...] [--device auto|cpu|cuda]
//
// Imports a labelled dataset (or a FHIR bundle) into the database the API is configured with (DATABASE_URL,
// else the embedded PGlite directory PGLITE_DATA_DIR), embedding every photograph with the model. Reruns are
// safe: photographs already stored (same SHA-256) are counted as duplicates and left alone.
//
// PGlite is single-process and takes no lock of its own: two processes on one directory corrupt it. So for
// the embedded database this command refuses to run while the API answers on its configured address, and
// holds a lock file beside the directory while it runs. Stop the API first, or ingest through the API.
import path from 'node:path';
import { loadConfig, type AppConfig } from '../config.js';
import { openDatabase, refreshPlannerStatistics } from '../db/database.js';
import { vectorIndexStatus, wholeIndexStatus } from '../search/vector-indexes.js';
import { acquireLockFile } from '../db/lock-file.js';
import { Embedder, EmbedderError } from '../embedding/embedder.js';
import { openImport, parseImportFormat } from '../importers/detect-format.js';
import { ImportFileError, isIsoDate, type ImportItem } from '../importers/import-record.js';
import { ingestRecords, type IngestProgress, type IngestSummary } from '../modules/ingest/ingest.service.js';
import { parseArgs, parsePositiveInteger, UsageError } from './args.js';

const USAGE =
  'usage: npm run ingest -- <labels file or folder> [--format shared|eyepacs|aptos|idrid|deepdrid|messidor|fhir] [--dataset NAME] ' +
  '[--model FILE.onnx] [--assume-eye LEFT|RIGHT] [--visit-date YYYY-MM-DD] [--images FOLDER] [--limit N] [--database-url URL] [--device auto|cpu|cuda]';

const write = (text: string) => process.stderr.write(text);

function parseCommandLine(argv: readonly string[]) {
  const { options, positionals } = parseArgs(argv, {
    options: ['format', 'dataset', 'model', 'assume-eye', 'visit-date', 'images', 'limit', 'database-url', 'device'],
    flags: [],
  });
  if (positionals.length !== 1) throw new UsageError('give exactly one labels file or folder');
  const assumeEye = options.get('assume-eye')?.toUpperCase();
  if (assumeEye !== undefined && assumeEye !== 'LEFT' && assumeEye !== 'RIGHT') throw new UsageError(`--assume-eye must be LEFT or RIGHT, got "${options.get('assume-eye')}"`);
  const visitDate = options.get('visit-date');
  if (visitDate !== undefined && !isIsoDate(visitDate)) throw new UsageError(`--visit-date must be YYYY-MM-DD, got "${visitDate}"`);
  const device = options.get('device');
  if (device !== undefined && !['auto', 'cpu', 'cuda'].includes(device)) throw new UsageError(`--device must be auto, cpu or cuda, got "${device}"`);
  return {
    target: path.resolve(positionals[0]!),
    format: options.has('format') ? parseImportFormat(options.get('format')!) : null,
    datasetName: options.get('dataset'),
    modelPath: options.get('model'),
    assumeEye: (assumeEye ?? null) as 'LEFT' | 'RIGHT' | null,
    visitDate,
    imageDirectory: options.has('images') ? path.resolve(options.get('images')!) : undefined,
    limit: parsePositiveInteger(options.get('limit'), 'limit', Number.POSITIVE_INFINITY),
    databaseUrl: options.get('database-url'),
    device: device as 'auto' | 'cpu' | 'cuda' | undefined,
  };
}

/** True when something answers the API's liveness URL at the configured address. */
async function isApiRunning(config: AppConfig): Promise<boolean> {
  try {
    const response = await fetch(`http://${config.host}:${config.port}/healthz`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** An exclusive lock file beside the PGlite directory; a stale one (dead process, or a reused pid) is taken over. */
function lockDataDirectory(dataDir: string): Promise<() => Promise<void>> {
  const lockFile = `${path.resolve(dataDir)}.ingest-lock`;
  return acquireLockFile(
    lockFile,
    (holder) => new UsageError(`the embedded database ${dataDir} is locked by process ${holder} (another ingest). PGlite is single-process: wait for it, or remove ${lockFile} if that process is not an ingest.`),
  );
}

function createProgressReporter(stream: NodeJS.WriteStream) {
  const started = Date.now();
  let lastLine = 0;
  let lastDraw = 0;
  const describe = (done: number, total: number, summary: IngestSummary) => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? (summary.added + summary.duplicates) / seconds : 0;
    const rejected = Object.values(summary.rejected).reduce((sum, count) => sum + (count ?? 0), 0);
    return `${done}/${total} rows  added ${summary.added}  duplicates ${summary.duplicates}  rejected ${rejected}  bad rows ${summary.badRows}  ${rate.toFixed(1)} images/s`;
  };
  return {
    update({ processed, summary }: IngestProgress, total: number) {
      const now = Date.now();
      if (stream.isTTY) {
        if (now - lastDraw < 100 && processed !== total) return;
        lastDraw = now;
        const width = 24;
        const filled = total > 0 ? Math.round((processed / total) * width) : width;
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${describe(processed, total, summary)}\x1b[K`);
      } else if (now - lastLine > 5000 || processed === total) {
        lastLine = now;
        stream.write(`ingest: ${describe(processed, total, summary)}\n`);
      }
    },
    finish() {
      if (stream.isTTY) stream.write('\n');
      return (Date.now() - started) / 1000;
    },
  };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseCommandLine>;
  try {
    args = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError || error instanceof ImportFileError) {
      write(`${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  const config = loadConfig(args.databaseUrl ? { ...process.env, DATABASE_URL: args.databaseUrl } : process.env);
  const modelPath = path.resolve(args.modelPath ?? config.modelPath);

  // Read the labels first: a wrong path or format should fail before the model and database are opened.
  const opened = await openImport(args.target, { format: args.format, datasetName: args.datasetName, assumeEye: args.assumeEye, visitDate: args.visitDate, imageDirectory: args.imageDirectory });
  const items: ImportItem[] = [];
  for await (const item of opened.items) items.push(item);
  const recordCount = items.filter((item) => item.ok).length;
  write(`ingest: ${opened.file} as ${opened.format}: ${recordCount} records, ${items.length - recordCount} bad rows\n`);

  let embedder: Embedder;
  try {
    embedder = await Embedder.load({ modelPath, device: args.device ?? config.embeddingDevice, logger: { info: (m) => write(`${m}\n`), warn: (m) => write(`${m}\n`) } });
  } catch (error) {
    if (error instanceof EmbedderError && error.code === 'MODEL_NOT_FOUND') {
      write(`${error.message}\nNo embedding model at ${modelPath}: train and export one (models/README.md), or pass --model FILE.onnx.\n`);
      return 2;
    }
    throw error;
  }

  let unlock: (() => Promise<void>) | null = null;
  if (config.database.kind === 'pglite') {
    if (await isApiRunning(config)) {
      write(
        `The API is running at http://${config.host}:${config.port} on the embedded database ${config.database.dataDir}. ` +
          'PGlite is single-process: stop the API before ingesting into it (or ingest through the API, or use DATABASE_URL with PostgreSQL).\n',
      );
      await embedder.release();
      return 3;
    }
    try {
      unlock = await lockDataDirectory(config.database.dataDir);
    } catch (error) {
      await embedder.release();
      if (error instanceof UsageError) {
        write(`${error.message}\n`);
        return 3;
      }
      throw error;
    }
  }
  const db = await openDatabase(config);
  const where = config.database.kind === 'pglite' ? `PGlite ${config.database.dataDir}` : 'PostgreSQL';
  write(`ingest: into ${where} with model ${embedder.metadata.modelVersion} (${embedder.executionProvider})\n`);
  const progress = createProgressReporter(process.stderr);
  let summary: IngestSummary;
  try {
    // With --limit the run stops after the limit-th record, so the bar's total is that record's position.
    let shown = items.length;
    if (Number.isFinite(args.limit) && args.limit < recordCount) {
      let seen = 0;
      shown = items.findIndex((item) => item.ok && ++seen === args.limit) + 1;
    }
    summary = await ingestRecords({ prisma: db.prisma, embedder, items, limit: args.limit, onProgress: (state) => progress.update(state, shown) });
    if (summary.added > 0) {
      await refreshPlannerStatistics(db);
      // IVFFlat learnt its lists from the rows at its last rebuild: say when a grade has outgrown them.
      const due = (await vectorIndexStatus({ db })).filter((grade) => grade.recommendation !== null);
      for (const grade of due) write(`hint: grade ${grade.grade}: ${grade.recommendation}: npm run vector-index -- rebuild --grade ${grade.grade}\n`);
      const whole = await wholeIndexStatus({ db });
      if (whole.recommendation) write(`hint: whole case base: ${whole.recommendation}: npm run vector-index -- rebuild --whole\n`);
    }
  } finally {
    await db.close();
    await embedder.release();
    await unlock?.();
  }
  const seconds = progress.finish();
  for (const problem of summary.problems) write(`  row ${problem.row}${problem.image ? ` (${problem.image})` : ''}: ${problem.code} ${problem.reason}\n`);
  const images = summary.added + summary.duplicates + Object.values(summary.rejected).reduce((sum, count) => sum + (count ?? 0), 0);
  process.stdout.write(
    `${JSON.stringify({ file: opened.file, format: opened.format, modelVersion: embedder.metadata.modelVersion, added: summary.added, duplicates: summary.duplicates, rejected: summary.rejected, badRows: summary.badRows, seconds: Number(seconds.toFixed(1)), imagesPerSecond: Number((images / Math.max(seconds, 1e-9)).toFixed(2)) })}\n`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    write(`ingest failed: ${error instanceof Error ? error.message : String(error)}\n`);
    if (!(error instanceof ImportFileError)) write(`${(error as Error)?.stack ?? ''}\n`);
    process.exitCode = error instanceof ImportFileError ? 2 : 1;
  },
);
