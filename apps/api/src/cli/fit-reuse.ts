/**
 * npm run fit-reuse -- --embeddings <dump.jsonl> --labels-dir <dir> [--sets srahim,eyepacs-raw]
 *                      [--model models/fundus-cbr.onnx] [--out models/fundus-cbr.reuse.json]
 *                      [--report models/results/reuse-test.json]
 *
 * Fits the reuse step (grade suggestion) of the shipped model and measures it on held-out test patients:
 * - embeddings: `npm run evaluate -- --queries <all.csv> --dump-embeddings <dump.jsonl>` (the product's
 *   preprocessing and embedder);
 * - labels-dir: `models/scripts/write_split_labels.py --split train|validation|test`, whose <split>-<set>.csv
 *   say which patient is in which split (the hash of the patient id that training uses).
 * The case base is the TRAIN patients. Everything (vote rule, calibration, abstention and referral thresholds) is
 * chosen on VALIDATION patients searching the case base; TEST patients are scored once with what was chosen,
 * against the plain 10-NN majority vote of the evaluate CLI. Writes the calibration file (tied to the model's
 * version, read from the ONNX file) and a JSON report with bins for the reliability diagram
 * (models/scripts/plot_reliability.py draws it).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readLabelsCsv } from '../embedding/dataset.js';
import { readOnnxMetadataProps } from '../embedding/onnx-metadata.js';
import { accuracy, majorityVoteGrade, quadraticWeightedKappa } from '../evaluation/metrics.js';
import { createSeededRandom } from '../evaluation/retrieval.js';
import {
  PLAIN_VOTE_RULE,
  calibrateVote,
  decideGrade,
  expectedCalibrationError,
  negativeLogLikelihood,
  referableProbability,
  voteOfNeighbours,
  type Neighbour,
  type VoteCalibration,
  type VoteRule,
} from '../modules/similar-case/grade-suggestion.js';
import { serialiseReuseCalibration } from '../modules/similar-case/reuse-calibration.js';
import { parseArgs, UsageError } from './args.js';

const USAGE = 'usage: fit-reuse --embeddings <dump.jsonl> --labels-dir <dir> [--sets srahim,eyepacs-raw] [--model models/fundus-cbr.onnx] [--out models/fundus-cbr.reuse.json] [--report models/results/reuse-test.json]';

const MAX_NEIGHBOURS = 50;
const BOOTSTRAP_RESAMPLES = 1000;

type Item = { image: string; patientId: string; grade: number; embedding: Float32Array };
type Query = { item: Item; neighbours: Neighbour[] };

async function readDump(file: string): Promise<Map<string, Item>> {
  const items = new Map<string, Item>();
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (!line.trim()) continue;
    const row = JSON.parse(line) as { image: string; patient_id: string; grade: number; embedding: number[] };
    items.set(row.image, { image: row.image, patientId: row.patient_id, grade: row.grade, embedding: Float32Array.from(row.embedding) });
  }
  return items;
}

async function readSplit(dir: string, split: string, sets: string[], dump: Map<string, Item>): Promise<Item[]> {
  const items: Item[] = [];
  for (const set of sets) {
    for (const label of await readLabelsCsv(path.join(dir, `${split}-${set}.csv`))) {
      const item = dump.get(label.image);
      // Photographs the evaluate CLI skipped (no fundus visible) are in no split.
      if (item) items.push(item);
    }
  }
  return items;
}

/** The MAX_NEIGHBOURS most cosine-similar case-base photographs of other patients, best first (the exact search). */
function findNeighbours(query: Item, caseBase: readonly Item[]): Neighbour[] {
  const scored: Neighbour[] = [];
  for (const item of caseBase) {
    if (item.patientId === query.patientId) continue;
    let dot = 0;
    for (let i = 0; i < query.embedding.length; i += 1) dot += query.embedding[i]! * item.embedding[i]!;
    scored.push({ similarity: dot, grade: item.grade });
  }
  return scored.sort((a, b) => b.similarity - a.similarity).slice(0, MAX_NEIGHBOURS);
}

function ruleGrid(): VoteRule[] {
  const rules: VoteRule[] = [];
  for (const neighbours of [5, 10, 15, 20, 30, 50]) {
    for (const decision of ['argmax', 'median'] as const) {
      rules.push({ neighbours, weighting: 'uniform', softmaxTemperature: null, decision });
      rules.push({ neighbours, weighting: 'similarity', softmaxTemperature: null, decision });
      for (const softmaxTemperature of [0.01, 0.02, 0.05, 0.1]) rules.push({ neighbours, weighting: 'softmax', softmaxTemperature, decision });
    }
  }
  return rules;
}

function calibrationGrid(): VoteCalibration[] {
  const grid: VoteCalibration[] = [];
  for (let step = 0; step <= 40; step += 1) {
    const temperature = 0.2 * 30 ** (step / 40); // 0.2 .. 6, log-spaced
    for (const smoothing of [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]) grid.push({ temperature, smoothing });
  }
  return grid;
}

function fitCalibration(queries: readonly Query[], rule: VoteRule): { calibration: VoteCalibration; nll: number } {
  const shares = queries.map((query) => voteOfNeighbours(query.neighbours, rule).shares);
  const grades = queries.map((query) => query.item.grade);
  let best = { calibration: { temperature: 1, smoothing: 0.01 }, nll: Number.POSITIVE_INFINITY };
  for (const calibration of calibrationGrid()) {
    const nll = negativeLogLikelihood(shares.map((row) => calibrateVote(row, calibration)), grades);
    if (nll < best.nll) best = { calibration, nll };
  }
  return best;
}

type Prediction = { grade: number; actual: number; confidence: number; referable: number | null; patientId: string };

function predictSuggestion(queries: readonly Query[], rule: VoteRule, calibration: VoteCalibration): Prediction[] {
  return queries.map((query) => {
    const probabilities = calibrateVote(voteOfNeighbours(query.neighbours, rule).shares, calibration);
    const grade = decideGrade(probabilities, rule.decision);
    return { grade, actual: query.item.grade, confidence: probabilities[grade]!, referable: referableProbability(probabilities), patientId: query.item.patientId };
  });
}

/** The evaluate CLI's 10-NN majority vote; its confidence is the winning grade's share of the ten votes. */
function predictPlainVote(queries: readonly Query[]): Prediction[] {
  return queries.map((query) => {
    const grades = query.neighbours.slice(0, PLAIN_VOTE_RULE.neighbours).map((neighbour) => neighbour.grade!);
    const grade = majorityVoteGrade(grades) ?? 0;
    return { grade, actual: query.item.grade, confidence: grades.filter((value) => value === grade).length / grades.length, referable: null, patientId: query.item.patientId };
  });
}

function metricsOf(predictions: readonly Prediction[], referableThreshold: number | null) {
  const actual = predictions.map((prediction) => prediction.actual);
  const predicted = predictions.map((prediction) => prediction.grade);
  const referred = predictions.map((prediction) => (prediction.referable !== null && referableThreshold !== null ? prediction.referable >= referableThreshold : prediction.grade >= 2));
  const positives = predictions.filter((prediction) => prediction.actual >= 2).length;
  const truePositives = predictions.filter((prediction, index) => prediction.actual >= 2 && referred[index]).length;
  const trueNegatives = predictions.filter((prediction, index) => prediction.actual < 2 && !referred[index]).length;
  const calibration = expectedCalibrationError(predictions.map((prediction) => prediction.confidence), predictions.map((prediction) => prediction.grade === prediction.actual));
  return {
    photographs: predictions.length,
    accuracy: accuracy(actual, predicted),
    quadraticWeightedKappa: quadraticWeightedKappa(actual, predicted),
    referableSensitivity: truePositives / positives,
    referableSpecificity: trueNegatives / (predictions.length - positives),
    expectedCalibrationError: calibration.ece,
  };
}

/** Answered share and accuracy of the answered photographs when abstaining below each confidence threshold. */
function coverageCurve(predictions: readonly Prediction[], thresholds: readonly number[]) {
  return thresholds.map((threshold) => {
    const answered = predictions.filter((prediction) => prediction.confidence >= threshold);
    return { threshold, coverage: answered.length / predictions.length, accuracy: answered.length ? answered.filter((p) => p.grade === p.actual).length / answered.length : null };
  });
}

/**
 * The threshold that maximises, on validation, right answers minus wrong answers among the answered photographs: a
 * wrong suggestion costs what a right one gains and abstaining costs nothing, so it answers where a suggestion is
 * more often right than wrong. (A fixed accuracy target, 0.8 say, answered 14% of validation photographs with
 * this model: not a useful aid.)
 */
function chooseAbstention(predictions: readonly Prediction[]): number {
  const candidates = [0, ...new Set(predictions.map((prediction) => prediction.confidence))].sort((a, b) => a - b);
  let best = { threshold: 0, score: Number.NEGATIVE_INFINITY };
  for (const threshold of candidates) {
    const score = predictions.reduce((sum, p) => (p.confidence >= threshold ? sum + (p.grade === p.actual ? 1 : -1) : sum), 0);
    if (score > best.score) best = { threshold, score };
  }
  return best.threshold;
}

/** Youden's J (sensitivity + specificity - 1) on validation, over thresholds 0.02-0.98. */
function chooseReferableThreshold(predictions: readonly Prediction[]): number {
  let best = { threshold: 0.5, j: Number.NEGATIVE_INFINITY };
  for (let step = 1; step < 50; step += 1) {
    const threshold = step / 50;
    const metrics = metricsOf(predictions, threshold);
    const j = metrics.referableSensitivity + metrics.referableSpecificity - 1;
    if (j > best.j + 1e-12) best = { threshold, j };
  }
  return best.threshold;
}

/** 95% intervals by resampling test PATIENTS (both eyes move together), for both methods and their difference. */
function bootstrap(suggestion: readonly Prediction[], plain: readonly Prediction[], referableThreshold: number) {
  const patients = [...new Set(suggestion.map((prediction) => prediction.patientId))];
  const rowsOf = (predictions: readonly Prediction[]) => {
    const map = new Map<string, Prediction[]>();
    for (const prediction of predictions) map.set(prediction.patientId, [...(map.get(prediction.patientId) ?? []), prediction]);
    return map;
  };
  const suggestionRows = rowsOf(suggestion);
  const plainRows = rowsOf(plain);
  const random = createSeededRandom(13);
  const samples: Record<string, number[]> = {};
  for (let resample = 0; resample < BOOTSTRAP_RESAMPLES; resample += 1) {
    const chosen = patients.map(() => patients[Math.floor(random() * patients.length)]!);
    const a = metricsOf(chosen.flatMap((id) => suggestionRows.get(id)!), referableThreshold);
    const b = metricsOf(chosen.flatMap((id) => plainRows.get(id)!), null);
    for (const key of Object.keys(a) as (keyof typeof a)[]) {
      if (key === 'photographs') continue;
      (samples[`suggestion.${key}`] ??= []).push(a[key]);
      (samples[`plainVote.${key}`] ??= []).push(b[key]);
      (samples[`difference.${key}`] ??= []).push(a[key] - b[key]);
    }
  }
  const interval = (values: number[]) => {
    const sorted = values.filter(Number.isFinite).sort((x, y) => x - y);
    return [sorted[Math.floor(0.025 * sorted.length)]!, sorted[Math.min(sorted.length - 1, Math.floor(0.975 * sorted.length))]!];
  };
  return Object.fromEntries(Object.entries(samples).map(([key, values]) => [key, interval(values)]));
}

const round = (value: number) => Math.round(value * 1e4) / 1e4;

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { options: ['embeddings', 'labels-dir', 'sets', 'model', 'out', 'report'], flags: ['help'] });
  if (args.flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const embeddingsFile = args.options.get('embeddings');
  const labelsDir = args.options.get('labels-dir');
  if (!embeddingsFile || !labelsDir) throw new UsageError('--embeddings and --labels-dir are required');
  const sets = (args.options.get('sets') ?? 'srahim,eyepacs-raw').split(',');
  const modelPath = args.options.get('model') ?? 'models/fundus-cbr.onnx';
  const modelVersion = readOnnxMetadataProps(await readFile(modelPath)).get('fundus_cbr.model_version');
  if (!modelVersion) throw new UsageError(`${modelPath} carries no fundus_cbr.model_version`);

  const dump = await readDump(embeddingsFile);
  const [caseBase, validation, test] = await Promise.all(['train', 'validation', 'test'].map((split) => readSplit(labelsDir, split, sets, dump)));
  const describeSplit = (items: Item[]) => ({ photographs: items.length, patients: new Set(items.map((item) => item.patientId)).size });
  process.stderr.write(`case base ${caseBase!.length}, validation ${validation!.length}, test ${test!.length} photographs\n`);
  const validationQueries = validation!.map((item) => ({ item, neighbours: findNeighbours(item, caseBase!) }));
  const testQueries = test!.map((item) => ({ item, neighbours: findNeighbours(item, caseBase!) }));

  // Rule: the best validation QWK (ties: accuracy, then fewer neighbours), each rule with its own calibration.
  let chosen: { rule: VoteRule; calibration: VoteCalibration; nll: number; qwk: number; accuracy: number } | null = null;
  for (const rule of ruleGrid()) {
    const { calibration, nll } = fitCalibration(validationQueries, rule);
    const metrics = metricsOf(predictSuggestion(validationQueries, rule, calibration), null);
    const better = !chosen || metrics.quadraticWeightedKappa > chosen.qwk + 1e-9 || (Math.abs(metrics.quadraticWeightedKappa - chosen.qwk) <= 1e-9 && metrics.accuracy > chosen.accuracy + 1e-9);
    if (better) chosen = { rule, calibration, nll, qwk: metrics.quadraticWeightedKappa, accuracy: metrics.accuracy };
  }
  // What is written is what is scored: the temperature rounded as in the file, the threshold rounded down.
  const rule = chosen!.rule;
  const calibration = { temperature: round(chosen!.calibration.temperature), smoothing: chosen!.calibration.smoothing };
  const validationPredictions = predictSuggestion(validationQueries, rule, calibration);
  const minimumConfidence = Math.floor(chooseAbstention(validationPredictions) * 1e4) / 1e4;
  const referableThreshold = chooseReferableThreshold(validationPredictions);

  const suggestion = predictSuggestion(testQueries, rule, calibration);
  const plain = predictPlainVote(testQueries);
  const thresholds = [0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, minimumConfidence].sort((a, b) => a - b);
  const command = `npm run fit-reuse -- --embeddings <dump.jsonl> --labels-dir <dir> --sets ${sets.join(',')} --model ${modelPath}`;
  const fittedOn = {
    command,
    sets,
    caseBase: { split: 'train', ...describeSplit(caseBase!) },
    validation: describeSplit(validation!),
    selection: 'rule with the best validation QWK (calibration per rule by validation NLL); abstention: validation right-minus-wrong answers maximised; referral: validation Youden J',
    validationQwk: round(chosen!.qwk),
    validationAccuracy: round(chosen!.accuracy),
    validationNll: round(chosen!.nll),
  };
  const file = serialiseReuseCalibration({ modelVersion, rule, calibration, minimumConfidence, referableThreshold }, fittedOn);
  await writeFile(args.options.get('out') ?? 'models/fundus-cbr.reuse.json', file);

  const abstained = coverageCurve(suggestion, [minimumConfidence])[0]!;
  const report = {
    modelVersion,
    command,
    caseBase: { split: 'train', ...describeSplit(caseBase!) },
    validation: describeSplit(validation!),
    test: describeSplit(test!),
    chosen: { rule, calibration, minimumConfidence, referableThreshold },
    suggestion: { ...metricsOf(suggestion, referableThreshold), withAbstention: { threshold: minimumConfidence, coverage: abstained.coverage, accuracy: abstained.accuracy } },
    plainVote: metricsOf(plain, null),
    intervals95: bootstrap(suggestion, plain, referableThreshold),
    coverageAccuracy: { suggestion: coverageCurve(suggestion, thresholds), plainVote: coverageCurve(plain, thresholds) },
    reliability: {
      suggestion: expectedCalibrationError(suggestion.map((p) => p.confidence), suggestion.map((p) => p.grade === p.actual)).bins,
      plainVote: expectedCalibrationError(plain.map((p) => p.confidence), plain.map((p) => p.grade === p.actual)).bins,
    },
  };
  const reportPath = args.options.get('report') ?? 'models/results/reuse-test.json';
  await writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ chosen: report.chosen, suggestion: report.suggestion, plainVote: report.plainVote }, null, 2)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(error instanceof UsageError ? `fit-reuse: ${error.message}\n${USAGE}\n` : `fit-reuse: ${(error as Error).stack ?? error}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
