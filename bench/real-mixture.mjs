// Synthetic embeddings that cluster like real ones, for the search benchmarks (bench/search-filtered.mjs,
// bench/shards-api.mjs --spread real): each sample is a real photograph's embedding by the shipped model
// (../shared/data, the sets given) of the sampled grade plus Gaussian noise whose norm is the median distance from
// a real embedding to its nearest real neighbour of the same grade, renormalised. Grades at EyePACS prevalence
// (Kaggle 2015 training labels: 73.5 / 7.0 / 15.1 / 2.5 / 2.0 %). The real embeddings are computed once by the
// evaluate CLI (`--dump-embeddings`) into a cache outside the repository (default <tmp>/fundus-cbr-bench-
// embeddings/<model version>). Deterministic (mulberry32 from a fixed state): two runs draw the same samples if
// they call `random`, `sampleGrade` and `sampleEmbedding` in the same order.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, root } from './cli.mjs';

export const PREVALENCE = [0.735, 0.07, 0.151, 0.025, 0.02];
const MODEL_VERSION_FALLBACK = 'bench';

export async function loadRealMixture({ dataDir, modelPath, sets, cacheDir = null }) {
  const { Embedder } = await api('embedding/embedder.js');
  const embedder = await Embedder.load({ modelPath, device: 'cpu' });
  const modelVersion = embedder.metadata.modelVersion ?? MODEL_VERSION_FALLBACK;
  const dimension = embedder.metadata.embeddingDim;
  await embedder.release();
  const cache = path.resolve(cacheDir ?? path.join(os.tmpdir(), 'fundus-cbr-bench-embeddings', modelVersion));
  fs.mkdirSync(cache, { recursive: true });
  for (const set of sets) {
    const dump = path.join(cache, `${set}.jsonl`);
    if (fs.existsSync(dump)) continue;
    const labels = path.join(dataDir, set, 'labels.csv');
    if (!fs.existsSync(labels)) throw new Error(`needs the real photographs: ${labels} is missing (pass --data, or --embeddings with cached dumps)`);
    process.stderr.write(`embedding ${set} once into ${dump}\n`);
    const run = spawnSync(process.execPath, [path.join(root, 'apps/api/dist/cli/evaluate.js'), '--queries', labels, '--model', modelPath, '--device', 'cpu', '--json', '--dump-embeddings', dump], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (run.status !== 0) throw new Error(`evaluate failed on ${set}`);
  }
  const realByGrade = [[], [], [], [], []];
  for (const set of sets) {
    for (const line of fs.readFileSync(path.join(cache, `${set}.jsonl`), 'utf8').split('\n')) {
      if (!line) continue;
      const item = JSON.parse(line);
      realByGrade[item.grade].push(Float64Array.from(item.embedding));
    }
  }

  let state = 0x9e3779b9;
  function random() {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  function gaussian() {
    return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  }
  function dot(a, b) {
    let sum = 0;
    for (let index = 0; index < a.length; index += 1) sum += a[index] * b[index];
    return sum;
  }
  // Median distance to the nearest real neighbour of the same grade: the noise scale that keeps clusters as tight
  // as the real ones without making every sample a near-duplicate of its centre.
  const nearestDistances = [];
  for (const items of realByGrade) {
    for (let i = 0; i < items.length; i += 1) {
      let best = Infinity;
      for (let j = 0; j < items.length; j += 1) if (j !== i) best = Math.min(best, Math.sqrt(Math.max(0, 2 - 2 * dot(items[i], items[j]))));
      if (Number.isFinite(best)) nearestDistances.push(best);
    }
  }
  nearestDistances.sort((a, b) => a - b);
  const noiseNorm = nearestDistances[Math.floor(nearestDistances.length / 2)];
  const sigma = noiseNorm / Math.sqrt(dimension);
  function sampleGrade() {
    let u = random();
    for (let grade = 0; grade < PREVALENCE.length; grade += 1) if ((u -= PREVALENCE[grade]) < 0) return grade;
    return 0;
  }
  function sampleEmbedding(grade) {
    const centre = realByGrade[grade][Math.floor(random() * realByGrade[grade].length)];
    const vector = new Float64Array(dimension);
    let norm = 0;
    for (let d = 0; d < dimension; d += 1) {
      vector[d] = centre[d] + sigma * gaussian();
      norm += vector[d] * vector[d];
    }
    norm = Math.sqrt(norm);
    for (let d = 0; d < dimension; d += 1) vector[d] /= norm;
    return vector;
  }
  return { modelVersion, dimension, prevalence: PREVALENCE, realByGrade, noiseNorm, random, sampleGrade, sampleEmbedding };
}
