// Measurement (issue 13, parts 4-6): relevance feedback and search by region with the shipped model, on held-out
// patients of ../shared/data, through the product's own preprocessing, Embedder and region head.
//
//   npm run build && nice node bench/cbr-feedback-region.mjs --data ../shared/data [--out models/results/cbr-feedback-region.json]
//       [--cache /tmp/fundus-cbr-bench-embeddings]   (embeddings and feature maps are kept there between runs)
//       [--feedback-only]   (prints the feedback part and stops: the region part takes most of the time)
//
// Protocol. Patients are split as models/src/fundus_cbr/data.py split_of_patient does (SHA-256 of the id: 20% test,
// 15% validation, 65% train). The case base is every photograph of the TRAIN patients of srahim, eyepacs-raw and
// idrid (photographs as taken; idrid so that the lesion queries' camera is in it). Relevant = same ICDR grade.
// Parameters are chosen on VALIDATION patients and reported on TEST patients.
// - Feedback: the first search's top 10 are marked relevant or not by their true grade (one round of simulated
//   marks), the query becomes Rocchio's a*q + b*mean(relevant) - c*mean(not relevant) (renormalised), and the
//   search is re-run. P@10 before and after, over the whole re-ranked list and over the hits the clinician has not
//   yet seen (marked ones left out), since both are what a clinician can get.
// - Region: the lesion set (IDRiD/DIARETDB1, no grades) is matched to idrid's graded photographs by near-identical
//   whole-image embedding (cosine >= 0.97, a resized copy of the same photograph); a matched photograph is a query
//   of its idrid patient's split. Its region is the union of its haemorrhage and hard-exudate boxes, mapped into
//   the crop frame. Compared: the whole photograph; the region descriptor (region head) against the case base's
//   whole-image embeddings; against the case base pooled under the same rectangle; against the best window of the
//   same size anywhere in each case-base photograph.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { api, option, root } from './cli.mjs';

const dataDirectory = path.resolve(option('data', path.join(root, '..', 'shared', 'data')));
const outFile = option('out', null);
const cacheDirectory = option('cache', '/tmp/fundus-cbr-bench-embeddings');
const modelPath = option('model', path.join(root, 'models', 'fundus-cbr.onnx'));
const SETS = ['srahim', 'eyepacs-raw', 'idrid'];
const K = 10;

const [{ Embedder }, { readLabelsCsv, listLesionImages, parseCsvRecords }, { regionCellMask }] = await Promise.all([
  api('embedding/embedder.js'), api('embedding/dataset.js'), api('embedding/regions.js'),
]);

function splitOfPatient(patientId) {
  const digest = createHash('sha256').update(patientId, 'utf8').digest();
  const position = Number(digest.readBigUInt64BE(0)) / 2 ** 64;
  return position < 0.2 ? 'test' : position < 0.35 ? 'validation' : 'train';
}

const embedder = await Embedder.load({ modelPath, device: 'cpu', batchSize: 16 });
if (!embedder.supportsRegions) throw new Error(`${modelPath} has no feature_map output or region head`);
fs.mkdirSync(cacheDirectory, { recursive: true });

/** Embeddings, feature maps and crops of the files, cached by model version and file path. */
async function embedAll(name, files) {
  const stem = path.join(cacheDirectory, `${embedder.metadata.modelVersion}-${name}`);
  if (fs.existsSync(`${stem}.json`)) {
    const index = JSON.parse(fs.readFileSync(`${stem}.json`, 'utf8'));
    const embeddings = new Float32Array(fs.readFileSync(`${stem}.embeddings.f32`).buffer.slice(0));
    const maps = new Float32Array(fs.readFileSync(`${stem}.maps.f32`).buffer.slice(0));
    return index.map((entry, i) => ({ ...entry, embedding: embeddings.subarray(i * 128, (i + 1) * 128), featureMap: entry.ok ? { channels: 256, height: 8, width: 8, values: maps.subarray(i * 16384, (i + 1) * 16384) } : null }));
  }
  const results = await embedder.embedFiles(files, { onProgress: (done, total) => process.stderr.write(`\r${name}: ${done}/${total}`) });
  process.stderr.write('\n');
  const embeddings = new Float32Array(results.length * 128);
  const maps = new Float32Array(results.length * 16384);
  const index = results.map((result, i) => {
    if (!result.ok) return { file: result.file, ok: false };
    embeddings.set(result.result.embedding, i * 128);
    maps.set(result.result.featureMap.values, i * 16384);
    return { file: result.file, ok: true, crop: result.preprocessed.crop, original: result.preprocessed.original };
  });
  fs.writeFileSync(`${stem}.json`, JSON.stringify(index));
  fs.writeFileSync(`${stem}.embeddings.f32`, Buffer.from(embeddings.buffer));
  fs.writeFileSync(`${stem}.maps.f32`, Buffer.from(maps.buffer));
  return embedAll(name, files);
}

const dot = (a, b) => { let s = 0; for (let i = 0; i < a.length; i += 1) s += a[i] * b[i]; return s; };
const normalise = (v) => { const n = Math.sqrt(dot(v, v)); return v.map((x) => x / n); };

// The graded photographs.
const photographs = [];
for (const set of SETS) {
  const labels = await readLabelsCsv(path.join(dataDirectory, set, 'labels.csv'));
  const embedded = await embedAll(set, labels.map((label) => label.file));
  labels.forEach((label, i) => {
    if (embedded[i].ok && label.grade !== null) photographs.push({ ...label, set, split: splitOfPatient(label.patientId), ...embedded[i] });
  });
}
const caseBase = photographs.filter((photo) => photo.split === 'train');

function rank(query, excludePatient, score) {
  return caseBase
    .filter((photo) => photo.patientId !== excludePatient && photo.file !== query.file)
    .map((photo) => ({ photo, score: score(photo) }))
    .sort((a, b) => b.score - a.score);
}
const precision = (ranked, grade, k = K) => ranked.slice(0, k).filter((hit) => hit.photo.grade === grade).length / k;
const mean = (values) => values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1);

/** 95% bootstrap interval (1000 resamples of the queries, fixed seed) of the mean paired difference b - a. */
function pairedInterval(rows, a, b) {
  let state = 12345;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const differences = rows.map((row) => row[b] - row[a]);
  const means = [];
  for (let resample = 0; resample < 1000; resample += 1) {
    let sum = 0;
    for (let i = 0; i < differences.length; i += 1) sum += differences[Math.floor(random() * differences.length)];
    means.push(sum / Math.max(differences.length, 1));
  }
  means.sort((x, y) => x - y);
  return { mean: mean(differences), low: means[24], high: means[974] };
}

// Relevance feedback.
function feedbackRound(query, weights) {
  const first = rank(query, query.patientId, (photo) => dot(query.embedding, photo.embedding));
  const marked = first.slice(0, K);
  const relevant = marked.filter((hit) => hit.photo.grade === query.grade).map((hit) => hit.photo.embedding);
  const notRelevant = marked.filter((hit) => hit.photo.grade !== query.grade).map((hit) => hit.photo.embedding);
  const refined = new Float32Array(128);
  for (let d = 0; d < 128; d += 1) {
    refined[d] = weights.alpha * query.embedding[d]
      + (relevant.length ? weights.beta * mean(relevant.map((v) => v[d])) : 0)
      - (notRelevant.length ? weights.gamma * mean(notRelevant.map((v) => v[d])) : 0);
  }
  const q = normalise(refined);
  const second = rank(query, query.patientId, (photo) => dot(q, photo.embedding));
  const seen = new Set(marked.map((hit) => hit.photo.file));
  return {
    before: precision(first, query.grade),
    after: precision(second, query.grade),
    afterUnseen: precision(second.filter((hit) => !seen.has(hit.photo.file)), query.grade),
  };
}
function evaluateFeedback(split, weights) {
  const rounds = photographs.filter((photo) => photo.split === split).map((query) => ({ grade: query.grade, ...feedbackRound(query, weights) }));
  const byGrade = Object.fromEntries([0, 1, 2, 3, 4].map((grade) => [grade, rounds.filter((r) => r.grade === grade)]));
  const macro = (key) => mean(Object.values(byGrade).filter((rs) => rs.length).map((rs) => mean(rs.map((r) => r[key]))));
  return {
    queries: rounds.length,
    after_minus_before: pairedInterval(rounds, 'before', 'after'),
    after_unseen_minus_before: pairedInterval(rounds, 'before', 'afterUnseen'),
    p10_before: mean(rounds.map((r) => r.before)), p10_after: mean(rounds.map((r) => r.after)), p10_after_unseen: mean(rounds.map((r) => r.afterUnseen)),
    macro_p10_before: macro('before'), macro_p10_after: macro('after'), macro_p10_after_unseen: macro('afterUnseen'),
  };
}
const grid = [];
// Scale does not change a ranking, so alpha + beta = 1 with alpha > 0 (the query always counts); gamma relative to that.
const ALPHAS = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1];
const GAMMAS = [0, 0.1, 0.25, 0.5, 0.75, 1, 1.5];
for (const alpha of ALPHAS) for (const gamma of GAMMAS) grid.push({ alpha, beta: Math.round((1 - alpha) * 100) / 100, gamma });
const validation = grid.map((weights) => ({ weights, ...evaluateFeedback('validation', weights) }));
const chosen = validation.reduce((best, row) => (row.macro_p10_after_unseen > best.macro_p10_after_unseen ? row : best));
// The fair baseline for "unseen": the next ten hits of the unrefined search (ranks 11-20).
const withoutFeedback = { validation: evaluateFeedback('validation', { alpha: 1, beta: 0, gamma: 0 }), test: evaluateFeedback('test', { alpha: 1, beta: 0, gamma: 0 }) };
const feedback = { next_ten_without_feedback: { validation: { p10: withoutFeedback.validation.p10_after_unseen, macro_p10: withoutFeedback.validation.macro_p10_after_unseen }, test: { p10: withoutFeedback.test.p10_after_unseen, macro_p10: withoutFeedback.test.macro_p10_after_unseen } }, grid: `alpha in {${ALPHAS.join(', ')}}, beta = 1 - alpha, gamma in {${GAMMAS.join(', ')}}`, selected_on_validation_by: 'macro P@10 over unseen hits', chosen: chosen.weights, validation: chosen, test: evaluateFeedback('test', chosen.weights), validation_grid: validation };

if (process.argv.includes('--feedback-only')) {
  const top = [...validation].sort((a, b) => b.macro_p10_after_unseen - a.macro_p10_after_unseen).slice(0, 8).map((row) => [row.weights, row.macro_p10_after_unseen, row.p10_after_unseen, row.p10_after]);
  process.stdout.write(JSON.stringify({ chosen: feedback.chosen, next_ten_without_feedback: feedback.next_ten_without_feedback, validation: feedback.validation, test: feedback.test, top }, null, 1) + '\n');
  process.exit(0);
}

// Search by region.
const lesionImages = await listLesionImages(path.join(dataDirectory, 'lesions'));
const lesionEmbedded = await embedAll('lesions', lesionImages.map((image) => image.file));
const boxes = parseCsvRecords(fs.readFileSync(path.join(dataDirectory, 'lesions', 'boxes.csv'), 'utf8'), ['image', 'label', 'x_center', 'y_center', 'width', 'height'], 'boxes.csv');
const idrid = photographs.filter((photo) => photo.set === 'idrid');
const lesionQueries = [];
let unmatched = 0;
let withoutLesion = 0;
lesionImages.forEach((image, i) => {
  const entry = lesionEmbedded[i];
  if (!entry.ok) return;
  const twin = idrid.map((photo) => ({ photo, similarity: dot(photo.embedding, entry.embedding) })).sort((a, b) => b.similarity - a.similarity)[0];
  if (!twin || twin.similarity < 0.97) { unmatched += 1; return; }
  const own = boxes.filter((box) => box.image === image.image && (box.label === 'haemorrhage' || box.label === 'hard_exudates'));
  if (own.length === 0) { withoutLesion += 1; return; }
  // Union of the lesion boxes in original pixels, then in crop fractions (clamped to the crop).
  const { width: W, height: H } = entry.original;
  const left = Math.min(...own.map((b) => (Number(b.x_center) - Number(b.width) / 2) * W));
  const right = Math.max(...own.map((b) => (Number(b.x_center) + Number(b.width) / 2) * W));
  const top = Math.min(...own.map((b) => (Number(b.y_center) - Number(b.height) / 2) * H));
  const bottom = Math.max(...own.map((b) => (Number(b.y_center) + Number(b.height) / 2) * H));
  const { x, y, side } = entry.crop;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const region = { x: clamp((left - x) / side), y: clamp((top - y) / side) };
  region.width = clamp((right - x) / side) - region.x;
  region.height = clamp((bottom - y) / side) - region.y;
  lesionQueries.push({ ...entry, file: image.file, patientId: twin.photo.patientId, grade: twin.photo.grade, split: twin.photo.split, twinSimilarity: twin.similarity, region });
});

/** Windows of the query rectangle's size (in whole cells, at least 1) at every position of the 8x8 grid. */
function windowMasks(mask) {
  const rows = [...Array(8).keys()].filter((r) => [...Array(8).keys()].some((c) => mask[r * 8 + c] > 0));
  const cols = [...Array(8).keys()].filter((c) => rows.some((r) => mask[r * 8 + c] > 0));
  const h = rows.length;
  const w = cols.length;
  const masks = [];
  for (let top = 0; top + h <= 8; top += 1) for (let left = 0; left + w <= 8; left += 1) {
    const m = new Float32Array(64);
    for (let r = top; r < top + h; r += 1) for (let c = left; c < left + w; c += 1) m[r * 8 + c] = 1;
    masks.push(m);
  }
  return masks;
}
async function evaluateRegion(split) {
  const queries = lesionQueries.filter((query) => query.split === split);
  const rows = [];
  for (const query of queries) {
    const mask = regionCellMask(query.region, 8, 8);
    const [regionEmbedding] = await embedder.embedRegions(query.featureMap, [mask]);
    const windows = windowMasks(mask);
    const sameRectangle = new Map();
    const bestWindow = new Map();
    for (const photo of caseBase) {
      const embeddings = await embedder.embedRegions(photo.featureMap, [mask, ...windows]);
      sameRectangle.set(photo.file, dot(regionEmbedding, embeddings[0]));
      bestWindow.set(photo.file, Math.max(...embeddings.slice(1).map((e) => dot(regionEmbedding, e))));
    }
    rows.push({
      grade: query.grade,
      whole: precision(rank(query, query.patientId, (photo) => dot(query.embedding, photo.embedding)), query.grade),
      regionVsWhole: precision(rank(query, query.patientId, (photo) => dot(regionEmbedding, photo.embedding)), query.grade),
      regionVsSameRectangle: precision(rank(query, query.patientId, (photo) => sameRectangle.get(photo.file)), query.grade),
      regionVsBestWindow: precision(rank(query, query.patientId, (photo) => bestWindow.get(photo.file)), query.grade),
      regionArea: query.region.width * query.region.height,
    });
  }
  const summary = Object.fromEntries(['whole', 'regionVsWhole', 'regionVsSameRectangle', 'regionVsBestWindow'].map((key) => [key, mean(rows.map((r) => r[key]))]));
  const intervals = Object.fromEntries(['regionVsWhole', 'regionVsSameRectangle', 'regionVsBestWindow'].map((key) => [`${key}_minus_whole`, pairedInterval(rows, 'whole', key)]));
  return { queries: rows.length, paired_differences: intervals, grades: Object.fromEntries([0, 1, 2, 3, 4].map((g) => [g, rows.filter((r) => r.grade === g).length])), mean_region_area_share: mean(rows.map((r) => r.regionArea)), p10: summary };
}
const region = {
  lesion_images: lesionImages.length,
  matched_to_idrid: lesionQueries.length + withoutLesion,
  unmatched,
  matched_without_lesion_boxes: withoutLesion,
  validation: await evaluateRegion('validation'),
  test: await evaluateRegion('test'),
};

const report = {
  command: 'node bench/cbr-feedback-region.mjs --data ../shared/data',
  model_version: embedder.metadata.modelVersion,
  case_base: { photographs: caseBase.length, sets: SETS, split: 'train patients' },
  queries: { validation: photographs.filter((p) => p.split === 'validation').length, test: photographs.filter((p) => p.split === 'test').length },
  feedback,
  region,
};
const text = JSON.stringify(report, (key, value) => (typeof value === 'number' ? Math.round(value * 10000) / 10000 : value), 2);
if (outFile) fs.writeFileSync(outFile, text + '\n');
process.stdout.write(JSON.stringify({ model_version: report.model_version, case_base: report.case_base, queries: report.queries, feedback: { chosen: feedback.chosen, next_ten_without_feedback: feedback.next_ten_without_feedback, validation: feedback.validation, test: feedback.test }, region: { ...region } }, null, 2) + '\n');
await embedder.release();
