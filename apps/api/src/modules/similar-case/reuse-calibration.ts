// The reuse step's fitted parameters: vote rule, calibration, abstention and referral thresholds, written by
// `npm run fit-reuse` (cli/fit-reuse.ts) on validation patients for one model version, and committed beside the
// model (models/fundus-cbr.reuse.json). Probabilities fitted for one model mean nothing for another, so a file
// whose modelVersion differs from the searched embeddings' version is not used and the reason is given.
import fs from 'node:fs';
import { z } from 'zod';
import type { VoteCalibration, VoteRule } from './grade-suggestion.js';

const calibrationFileSchema = z.object({
  kind: z.literal('fundus-cbr-reuse-calibration'),
  modelVersion: z.string().min(1),
  rule: z.object({
    neighbours: z.number().int().min(1).max(100),
    weighting: z.enum(['uniform', 'similarity', 'softmax']),
    softmaxTemperature: z.number().positive().nullable(),
    decision: z.enum(['argmax', 'median']),
  }),
  calibration: z.object({ temperature: z.number().positive(), smoothing: z.number().positive() }),
  /** Abstain when the calibrated probability of the suggested grade is below this. */
  minimumConfidence: z.number().min(0).max(1),
  /** Suggest referral when P(grade >= 2) is at least this. */
  referableThreshold: z.number().min(0).max(1),
  fittedOn: z.record(z.string(), z.unknown()),
});

export type ReuseCalibration = {
  modelVersion: string;
  rule: VoteRule;
  calibration: VoteCalibration;
  minimumConfidence: number;
  referableThreshold: number;
  /** Where it came from: the file path, for messages. */
  source: string;
};

/** The file's calibration, or null with the reason it cannot be used (missing, unreadable, malformed). */
export type LoadedReuseCalibration = { calibration: ReuseCalibration; problem: null } | { calibration: null; problem: string };

export function loadReuseCalibration(file: string): LoadedReuseCalibration {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { calibration: null, problem: `no reuse calibration file at ${file} (run \`npm run fit-reuse\`)` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { calibration: null, problem: `the reuse calibration ${file} is not valid JSON` };
  }
  const parsed = calibrationFileSchema.safeParse(json);
  if (!parsed.success) return { calibration: null, problem: `the reuse calibration ${file} is malformed: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}` };
  const { modelVersion, rule, calibration, minimumConfidence, referableThreshold } = parsed.data;
  return { calibration: { modelVersion, rule, calibration, minimumConfidence, referableThreshold, source: file }, problem: null };
}

export function serialiseReuseCalibration(calibration: Omit<ReuseCalibration, 'source'>, fittedOn: Record<string, unknown>): string {
  return `${JSON.stringify({ kind: 'fundus-cbr-reuse-calibration', ...calibration, fittedOn }, null, 2)}\n`;
}
