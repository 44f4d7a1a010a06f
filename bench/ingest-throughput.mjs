// Benchmark: ingest throughput for 1024-px fundus JPEGs through the product's own path (labels.csv importer ->
// read, SHA-256, decode, preprocessing, ONNX embedding -> one transaction per case), into a fresh embedded
// database, or a scratch copy of DATABASE_URL's database (bench/scratch-database.mjs). Target (issue 4): >= 20 images/s on the 2-core machine.
//
//   npm run build && node bench/ingest-throughput.mjs [--images 120] [--model models/fundus-cbr.onnx] [--lookahead 2]
//
// The photographs are synthetic 1024x768 JPEGs written to a temporary folder, so the benchmark runs without
// ../shared/data; --data <set folder with labels.csv> measures a real set instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';

const imageCount = Number(option('images', 120));
const defaultModel = fs.existsSync(path.join(root, 'models/fundus-cbr.onnx')) ? path.join(root, 'models/fundus-cbr.onnx') : path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const modelPath = option('model', defaultModel);

const [{ loadConfig }, { openDatabase }, { Embedder }, { openImport }, { ingestRecords }] = await Promise.all([
  api('config.js'), api('db/database.js'), api('embedding/embedder.js'), api('importers/detect-format.js'), api('modules/ingest/ingest.service.js'),
]);

let dataFolder = option('data', null);
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-ingest-bench-'));
if (!dataFolder) {
  dataFolder = path.join(scratch, 'set');
  fs.mkdirSync(path.join(dataFolder, 'images'), { recursive: true });
  const rows = ['image,patient_id,eye,grade'];
  const width = 1024, height = 768;
  for (let index = 0; index < imageCount; index += 1) {
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) {
      const r = Math.hypot(x - width / 2 - (index % 9), y - height / 2);
      if (r > 370) continue;
      const i = (y * width + x) * 3, shade = 1 - r / 520;
      pixels[i] = 200 * shade + ((x * 7 + y * 13 + index) % 9); pixels[i + 1] = 95 * shade + (index % 11); pixels[i + 2] = 40 * shade;
    }
    // A few pixels carry the index so every photograph (and its content hash) is distinct.
    for (let bit = 0; bit < 16; bit += 1) pixels[((height / 2) * width + width / 2 + bit) * 3] = (index >> bit) & 1 ? 255 : 0;
    const name = `bench_${index}_${index % 2 ? 'left' : 'right'}.jpeg`;
    fs.writeFileSync(path.join(dataFolder, 'images', name), await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toBuffer());
    rows.push(`images/${name},bench-${Math.floor(index / 2)},${index % 2 ? 'L' : 'R'},${index % 5}`);
  }
  fs.writeFileSync(path.join(dataFolder, 'labels.csv'), rows.join('\n') + '\n');
}

const scratchDatabase = await createScratchEnvironment();
const config = loadConfig({ ...process.env, ...scratchDatabase.env, SEED_DEMO_COHORT: 'false' });
const db = await openDatabase(config);
const embedder = await Embedder.load({ modelPath, device: 'cpu' });
const { items } = await openImport(dataFolder, { datasetName: 'bench' });
const started = performance.now();
const cpuBefore = process.cpuUsage();
const summary = await ingestRecords({ prisma: db.prisma, embedder, items, lookahead: Number(option('lookahead', 2)) });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
console.log(JSON.stringify({
  images: imageCount,
  added: summary.added,
  duplicates: summary.duplicates,
  rejected: summary.rejected,
  database: db.kind,
  model: path.relative(root, modelPath),
  modelInputSize: embedder.metadata.inputSize,
  executionProvider: embedder.executionProvider,
  seconds: Number(seconds.toFixed(1)),
  imagesPerSecond: Number((summary.added / seconds).toFixed(1)),
  // CPU time of all this process's threads (main, libvips, onnxruntime) per image: with 2 cores, wall time per
  // image cannot fall below half of it. PostgreSQL's own work is in its server processes and not counted.
  cpuMsPerImage: Number(((cpu.user + cpu.system) / 1000 / summary.added).toFixed(1)),
  target: 20,
}, null, 2));
await db.close();
await embedder.release();
await scratchDatabase.drop();
fs.rmSync(scratch, { recursive: true, force: true });
