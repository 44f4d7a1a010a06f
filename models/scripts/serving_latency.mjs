// Photograph to embedding through the product's own path (apps/api/dist Embedder: decode, find and crop the
// fundus, resize to the model's input size, ONNX forward pass), wall-clock and CPU time per photograph. Run it
// pinned to one core (taskset -c 0): CPU time is then what one core spends, whatever else loads the machine.
//   taskset -c 0 node models/scripts/serving_latency.mjs <model.onnx> <images-dir> <count>
// Prints JSON: medians per photograph of preprocess / model / end-to-end, wall and CPU ms. Needs `npm run build`.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [modelPath, imagesDir, countText] = process.argv.slice(2);
const count = Number(countText ?? 20);
const { Embedder } = await import(path.join(root, 'apps/api/dist/embedding/embedder.js'));
const { preprocessFundusImage } = await import(path.join(root, 'apps/api/dist/embedding/preprocess.js'));

sharp.concurrency(1);
const files = fs.readdirSync(imagesDir).filter((name) => /\.(jpe?g|png|tiff?)$/i.test(name)).sort().slice(0, count + 3);
const photographs = files.map((name) => fs.readFileSync(path.join(imagesDir, name)));
const embedder = await Embedder.load({ modelPath, device: 'cpu', batchSize: 1 });
const size = embedder.metadata.inputSize;
const cpuMs = (start) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};
const timed = async (fn) => {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  const value = await fn();
  return [performance.now() - wall, cpuMs(cpu), value];
};
const stages = { preprocess: [[], []], model: [[], []], endToEnd: [[], []] };
for (const [index, bytes] of photographs.entries()) {
  const [preWall, preCpu, image] = await timed(() => preprocessFundusImage(bytes, { size }));
  const [modelWall, modelCpu] = await timed(() => embedder.embed([image]));
  const [endWall, endCpu] = await timed(() => embedder.embedImage(bytes));
  if (index < 3) continue; // warm-up
  stages.preprocess[0].push(preWall); stages.preprocess[1].push(preCpu);
  stages.model[0].push(modelWall); stages.model[1].push(modelCpu);
  stages.endToEnd[0].push(endWall); stages.endToEnd[1].push(endCpu);
}
await embedder.release();
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return +(sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2).toFixed(1);
};
const report = { inputSize: size, photographs: stages.model[0].length };
for (const [name, [wall, cpu]] of Object.entries(stages)) report[name] = { wallMs: median(wall), cpuMs: median(cpu) };
console.log(JSON.stringify(report));
