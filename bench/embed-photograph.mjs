// Benchmark: one real photograph to one embedding through the product's own path (Embedder.embedImage), split
// into preprocessing (decode, find the fundus, crop, resize: embedding/preprocess.ts) and the ONNX forward pass.
// Run it pinned to ONE core, as the <= 30 ms target (issue 3) is stated:
//
//   npm run build && taskset -c 0 node bench/embed-photograph.mjs [--images ../shared/data/srahim/images]
//       [--count 60] [--model models/fundus-cbr.onnx] [--baseline <another build's apps/api/dist>]
//
// Each stage runs over the same photographs, after 5 warm-up images, and the medians per image are reported. With
// --baseline, that build's preprocessing runs alternately with this one's on every image (same process, same
// core, same moment), its output must be byte-identical, and the time ratio is printed: the way to measure a
// change to preprocessing on a noisy machine. Needs the real data (../shared/data); no image is committed.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { median } from './cli.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const option = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
};
const imagesDir = path.resolve(option('images', path.join(root, '..', 'shared', 'data', 'srahim', 'images')));
const count = Number(option('count', 60));
const modelPath = option('model', path.join(root, 'models/fundus-cbr.onnx'));
const baselineDist = option('baseline', null);

const { Embedder } = await import(path.join(root, 'apps/api/dist/embedding/embedder.js'));
const { preprocessFundusImage } = await import(path.join(root, 'apps/api/dist/embedding/preprocess.js'));
const baseline = baselineDist ? await import(path.join(path.resolve(baselineDist), 'embedding/preprocess.js')) : null;

if (!fs.existsSync(imagesDir)) {
  console.error(`no photographs at ${imagesDir} (pass --images <dir>)`);
  process.exit(2);
}
const files = fs.readdirSync(imagesDir).filter((name) => /\.(jpe?g|png|tiff?)$/i.test(name)).sort().slice(0, count + 5);
const photographs = files.map((name) => fs.readFileSync(path.join(imagesDir, name)));
sharp.concurrency(1);
const embedder = await Embedder.load({ modelPath, device: 'cpu', batchSize: 1 });
const size = embedder.metadata.inputSize;

const timed = async (fn) => {
  const started = performance.now();
  const value = await fn();
  return [performance.now() - started, value];
};

const stages = { preprocessMs: [], modelMs: [], endToEndMs: [], baselinePreprocessMs: [] };
for (const [index, bytes] of photographs.entries()) {
  const warm = index < 5;
  // With a baseline, the two builds take turns going first, and their pixels are compared on every photograph.
  const order = baseline && index % 2 ? ['baseline', 'current'] : ['current', 'baseline'];
  const outputs = {};
  for (const which of baseline ? order : ['current']) {
    const run = which === 'baseline' ? baseline.preprocessFundusImage : preprocessFundusImage;
    const [ms, result] = await timed(() => run(bytes, { size }));
    if (!warm) stages[which === 'baseline' ? 'baselinePreprocessMs' : 'preprocessMs'].push(ms);
    outputs[which] = result;
  }
  const preprocessed = outputs.current;
  if (baseline && Buffer.compare(Buffer.from(outputs.baseline.pixels), Buffer.from(preprocessed.pixels)) !== 0) {
    throw new Error(`${files[index]}: the baseline's pixels differ from this build's`);
  }
  const [modelMs] = await timed(() => embedder.embed([preprocessed]));
  const [endToEndMs] = await timed(() => embedder.embedImage(bytes));
  if (!warm) {
    stages.modelMs.push(modelMs);
    stages.endToEndMs.push(endToEndMs);
  }
}
await embedder.release();

const report = {
  images: imagesDir,
  photographs: stages.preprocessMs.length,
  model: embedder.metadata.modelVersion,
  inputSize: size,
  medianMsPerImage: {
    preprocess: +median(stages.preprocessMs).toFixed(1),
    model: +median(stages.modelMs).toFixed(1),
    endToEnd: +median(stages.endToEndMs).toFixed(1),
  },
};
if (baseline) {
  const total = (values) => values.reduce((sum, value) => sum + value, 0);
  report.baseline = {
    dist: path.resolve(baselineDist),
    preprocessMedianMs: +median(stages.baselinePreprocessMs).toFixed(1),
    preprocessTimeRatio: +(total(stages.preprocessMs) / total(stages.baselinePreprocessMs)).toFixed(3),
    pixelsIdenticalOnAll: stages.preprocessMs.length + 5,
  };
}
console.log(JSON.stringify(report));
