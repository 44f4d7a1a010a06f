// Two ONNX files on the same real photographs through the product's preprocessing and Embedder: the largest
// differences of embedding and attention. Used to show that adding the region outputs to the shipped model
// (models/scripts/add_region_outputs.py) left both bit-identical on photographs as taken, not only on the synthetic
// images of models/results/region-export-check.json.
//
//   npm run build && git show main:models/fundus-cbr.onnx > /tmp/before.onnx && git show main:models/fundus-cbr.onnx.json > /tmp/before.onnx.json
//   node bench/compare-model-outputs.mjs --before /tmp/before.onnx --after models/fundus-cbr.onnx --images ../shared/data/srahim/images [--count 32]
import fs from 'node:fs';
import path from 'node:path';
import { api, option } from './cli.mjs';

const { Embedder } = await api('embedding/embedder.js');
const directory = path.resolve(option('images', '../shared/data/srahim/images'));
const count = Number(option('count', 32));
const files = fs.readdirSync(directory).filter((name) => /\.(jpe?g|png|tiff?)$/i.test(name)).sort().slice(0, count).map((name) => path.join(directory, name));
const [before, after] = await Promise.all([option('before'), option('after')].map((modelPath) => Embedder.load({ modelPath, device: 'cpu' })));
const [a, b] = [await before.embedFiles(files), await after.embedFiles(files)];
let embedding = 0;
let attention = 0;
let compared = 0;
a.forEach((left, index) => {
  const right = b[index];
  if (!left.ok || !right.ok) return;
  compared += 1;
  left.result.embedding.forEach((value, i) => { embedding = Math.max(embedding, Math.abs(value - right.result.embedding[i])); });
  left.result.attention.values.forEach((value, i) => { attention = Math.max(attention, Math.abs(value - right.result.attention.values[i])); });
});
process.stdout.write(JSON.stringify({
  before: { model_version: before.metadata.modelVersion, region_head: before.supportsRegions },
  after: { model_version: after.metadata.modelVersion, region_head: after.supportsRegions, feature_map: b.find((r) => r.ok)?.result.featureMap ? [b.find((r) => r.ok).result.featureMap.channels, 8, 8] : null },
  photographs: compared, from: directory.replace(/.*\/shared\//, '../shared/'),
  embedding_max_abs_diff: embedding, attention_max_abs_diff: attention,
}, null, 2) + '\n');
await Promise.all([before.release(), after.release()]);
