/**
 * npm run evaluate -- --queries <labels.csv> [--gallery <labels.csv>] [--model models/fundus-cbr.onnx]
 *                     [--device auto|cpu|cuda] [--batch-size 16] [--json] [--dump-embeddings out.jsonl]
 *
 * labels.csv: image,patient_id,eye,grade with image paths relative to the CSV. Images go through the product's
 * preprocessing and Embedder; unreadable images and images without a visible fundus are reported (file and
 * reason, on stderr) and left out. Reports P@1/5/10/20, per-grade and macro P@10, MAP@R, the authors' mAP@10
 * (normalised by k, as in their fundus scripts) and its hit-normalised variant,
 * 10-NN grade accuracy / quadratic weighted kappa for the model and for the random and majority baselines
 * (definitions in evaluation/metrics.ts). --json prints one JSON object on stdout instead of the table.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { DatasetError, readLabelsCsv, type LabelledImage } from '../embedding/dataset.js';
import { Embedder, EmbedderError, type Device } from '../embedding/embedder.js';
import { evaluateEmbeddings, type EmbeddedItem } from '../evaluation/evaluate-embeddings.js';
import { PRECISION_CUTOFFS, type RetrievalReport } from '../evaluation/retrieval.js';
import { parseArgs, parsePositiveInteger, UsageError } from './args.js';

const USAGE =
  'usage: evaluate --queries <labels.csv> [--gallery <labels.csv>] [--model models/fundus-cbr.onnx] [--device auto|cpu|cuda] [--batch-size 16] [--json] [--dump-embeddings out.jsonl]';
const DEFAULT_MODEL = 'models/fundus-cbr.onnx';

interface Skipped {
  image: string;
  file: string;
  code: string;
  message: string;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { options: ['queries', 'gallery', 'model', 'device', 'batch-size', 'dump-embeddings'], flags: ['json', 'help'] });
  if (args.flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const queriesCsv = args.options.get('queries');
  if (!queriesCsv) throw new UsageError('--queries is required');
  const device = (args.options.get('device') ?? 'auto') as Device;
  if (!['auto', 'cpu', 'cuda'].includes(device)) throw new UsageError(`--device must be auto, cpu or cuda, got "${device}"`);
  const batchSize = parsePositiveInteger(args.options.get('batch-size'), 'batch-size', 16);
  const galleryCsv = args.options.get('gallery');

  const queryLabels = requireGrades(await readLabelsCsv(queriesCsv), queriesCsv);
  const galleryLabels = galleryCsv ? requireGrades(await readLabelsCsv(galleryCsv), galleryCsv) : undefined;
  if (galleryLabels) requireSameLabels(queryLabels, galleryLabels, queriesCsv, galleryCsv!);

  const embedder = await Embedder.load({
    modelPath: args.options.get('model') ?? DEFAULT_MODEL,
    device,
    batchSize,
    logger: { info: (message) => process.stderr.write(`${message}\n`), warn: (message) => process.stderr.write(`warning: ${message}\n`) },
  });
  const skipped: Skipped[] = [];
  const started = Date.now();
  // A file listed in both CSVs (the query set inside a larger gallery) is embedded, skipped and dumped once.
  const embedded = new Map<string, LabelledItem | null>();
  const queries = await embedLabelledImages(embedder, queryLabels, 'queries', skipped, embedded);
  const gallery = galleryLabels ? await embedLabelledImages(embedder, galleryLabels, 'gallery', skipped, embedded) : undefined;
  const embeddingSeconds = (Date.now() - started) / 1000;
  await embedder.release();

  const dumpPath = args.options.get('dump-embeddings');
  if (dumpPath) await dumpEmbeddings(dumpPath, [...embedded.values()].filter((item): item is LabelledItem => item !== null));
  if (queries.length === 0 || (gallery && gallery.length === 0)) {
    process.stderr.write('evaluate: no usable images left to evaluate\n');
    return 1;
  }

  const result = evaluateEmbeddings({ queries, gallery });
  const model = {
    path: embedder.modelPath,
    version: embedder.metadata.modelVersion,
    inputSize: embedder.metadata.inputSize,
    embeddingDim: embedder.metadata.embeddingDim,
    executionProvider: embedder.executionProvider,
  };
  if (args.flags.has('json')) {
    process.stdout.write(`${JSON.stringify({ embeddingModel: model, queriesCsv, galleryCsv: galleryCsv ?? null, embeddingSeconds, skipped, ...result }, replaceNaN)}\n`);
  } else {
    process.stdout.write(
      `model ${model.version} (${model.path}, ${model.inputSize}px, ${model.embeddingDim}-d, ${model.executionProvider}); ` +
        `${result.queries} queries, gallery ${galleryCsv ? `${result.gallery} images` : 'the queries themselves'}; ` +
        `${skipped.length} skipped; embedding took ${embeddingSeconds.toFixed(1)} s\n` +
        `own patient always excluded from the gallery; relevance = same grade\n\n` +
        formatTable([
          ['model', result.model],
          [`random (mean of ${result.baselines.random.seeds} seeded shuffles)`, result.baselines.random],
          ['majority grade first', result.baselines.majority],
        ]) +
        `\nanalytic expected P@k of random order: ${format(result.baselines.random.expectedPrecision)}\n`,
    );
  }
  return 0;
}

function requireGrades(labels: LabelledImage[], csv: string): LabelledImage[] {
  const ungraded = labels.find((label) => label.grade === null);
  if (ungraded) throw new DatasetError(`${csv}: ${ungraded.image} has no grade; evaluation needs graded images`);
  return labels;
}

/** The same file in both CSVs must mean the same patient and grade, or the metrics would count it twice over. */
function requireSameLabels(queries: LabelledImage[], gallery: LabelledImage[], queriesCsv: string, galleryCsv: string): void {
  const byFile = new Map(queries.map((label) => [label.file, label]));
  for (const label of gallery) {
    const query = byFile.get(label.file);
    if (query && (query.patientId !== label.patientId || query.grade !== label.grade || query.eye !== label.eye)) {
      const describe = (entry: LabelledImage) => `patient ${entry.patientId}, eye ${entry.eye || '?'}, grade ${entry.grade}`;
      throw new DatasetError(`${label.file} is in ${queriesCsv} as ${describe(query)} and in ${galleryCsv} as ${describe(label)}`);
    }
  }
}

type LabelledItem = EmbeddedItem & { image: string };

async function embedLabelledImages(
  embedder: Embedder,
  labels: LabelledImage[],
  role: string,
  skipped: Skipped[],
  /** Each file's outcome so far: its embedding, or null when it was skipped. */
  embedded: Map<string, LabelledItem | null>,
): Promise<LabelledItem[]> {
  let lastReport = 0;
  const fresh = [...new Set(labels.map((label) => label.file).filter((file) => !embedded.has(file)))];
  const results = await embedder.embedFiles(
    fresh,
    {
      onProgress: (done, total) => {
        if (done === total || Date.now() - lastReport > 5000) {
          lastReport = Date.now();
          process.stderr.write(`${role}: embedded ${done}/${total}\n`);
        }
      },
    },
  );
  const labelOf = new Map(labels.map((label) => [label.file, label]));
  results.forEach((result, index) => {
    const label = labelOf.get(fresh[index]!)!;
    if (result.ok) {
      const item = { image: label.image, patientId: label.patientId, grade: label.grade ?? -1, embedding: result.result.embedding };
      embedded.set(label.file, item);
    } else {
      embedded.set(label.file, null);
      skipped.push({ image: label.image, file: result.file, code: result.error.code, message: result.error.message });
      process.stderr.write(`skipped ${result.file}: ${result.error.code}: ${result.error.message}\n`);
    }
  });
  return labels.flatMap((label) => {
    const item = embedded.get(label.file);
    return item ? [item] : [];
  });
}

async function dumpEmbeddings(file: string, items: readonly LabelledItem[]): Promise<void> {
  const stream = createWriteStream(file);
  for (const item of items) {
    const line = JSON.stringify({ image: item.image, patient_id: item.patientId, grade: item.grade, embedding: Array.from(item.embedding) });
    if (!stream.write(`${line}\n`)) await once(stream, 'drain');
  }
  stream.end();
  await once(stream, 'finish');
}

function replaceNaN(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

function format(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : 'n/a';
}

function formatTable(rows: [string, RetrievalReport][]): string {
  const grades = [...new Set(rows.flatMap(([, report]) => Object.keys(report.precisionAt10ByGrade)))].sort();
  const columns = [
    ...PRECISION_CUTOFFS.map((k) => `P@${k}`),
    ...grades.map((grade) => `P@10 g${grade}`),
    'macroP@10',
    'MAP@R',
    'mAP@10*',
    'mAP@10**',
    '10NN acc',
    '10NN QWK',
  ];
  const values = (report: RetrievalReport): string[] => [
    ...PRECISION_CUTOFFS.map((k) => format(report.precisionAt[`${k}`])),
    ...grades.map((grade) => format(report.precisionAt10ByGrade[grade]?.value ?? Number.NaN)),
    format(report.macroPrecisionAt10),
    format(report.mapAtR),
    format(report.authorsMapAt10),
    format(report.hitNormalisedMapAt10),
    format(report.knnAccuracy),
    format(report.knnQuadraticWeightedKappa),
  ];
  const nameWidth = Math.max(...rows.map(([name]) => name.length));
  const header = `${''.padEnd(nameWidth)}  ${columns.map((column) => column.padStart(9)).join(' ')}`;
  const lines = rows.map(([name, report]) => `${name.padEnd(nameWidth)}  ${values(report).map((value) => value.padStart(9)).join(' ')}`);
  const queriesPerGrade = grades.map((grade) => `g${grade} ${rows[0]?.[1].precisionAt10ByGrade[grade]?.queries ?? 0}`).join(', ');
  return `${header}\n${lines.join('\n')}\nqueries per grade: ${queriesPerGrade}\n* FundusDR authors' mAP@10 (normalised by k); ** its hit-normalised variant (optimistic); definitions in evaluation/metrics.ts\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof DatasetError || error instanceof EmbedderError) {
      process.stderr.write(`evaluate: ${error.message}\n${error instanceof UsageError ? `${USAGE}\n` : ''}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`evaluate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
