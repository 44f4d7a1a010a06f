// npm run reembed -- [--model models/fundus-cbr.onnx] [--batch 16] [--limit N]
// Embeds every stored photograph that lacks an embedding of the model's version (resumable; see
// modules/embedding-version/reembed.service.ts). Uses the database the API is configured with (DATABASE_URL, or
// the embedded PGlite directory, which only one process may open: stop the API first).
import { loadConfig } from '../config.js';
import { openDatabase, refreshPlannerStatistics } from '../db/database.js';
import { Embedder } from '../embedding/embedder.js';
import { reembedImages } from '../modules/embedding-version/reembed.service.js';
import { createProgressReporter } from './progress.js';

function readOption(args: string[], name: string): string | undefined {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
}

const args = process.argv.slice(2);
const config = loadConfig();
const modelPath = readOption(args, 'model') ?? config.modelPath;
const batchSize = Number(readOption(args, 'batch') ?? 16);
const limit = Number(readOption(args, 'limit') ?? Number.POSITIVE_INFINITY);
if (!Number.isInteger(batchSize) || batchSize < 1 || !(limit > 0)) {
  process.stderr.write('usage: npm run reembed -- [--model file.onnx] [--batch N>=1] [--limit N>=1]\n');
  process.exit(2);
}
const embedder = await Embedder.load({ modelPath, device: config.embeddingDevice, logger: { info: (m) => process.stderr.write(`${m}\n`), warn: (m) => process.stderr.write(`${m}\n`) } });
const db = await openDatabase(config);
try {
  const progress = createProgressReporter(`re-embedding with ${embedder.metadata.modelVersion}`);
  const summary = await reembedImages({ prisma: db.prisma, embedder, batchSize, limit, onProgress: (p) => progress.update(p.done, p.done + p.remaining, `(${p.failed} failed)`) });
  progress.finish();
  if (summary.embedded > 0) await refreshPlannerStatistics(db);
  for (const failure of summary.failed) process.stderr.write(`skipped ${failure.imageId}: ${failure.code} ${failure.message}\n`);
  process.stdout.write(`${JSON.stringify({ modelVersion: summary.modelVersion, embedded: summary.embedded, failed: summary.failed.length })}\n`);
} finally {
  await db.close();
  await embedder.release();
}
