// Hand-written reuse calibrations for the tests (the fixture vectors and tiny models are untrained, so no fitted one
// exists for their versions): models/fundus-cbr.reuse.json's form, written to a temporary file the API reads
// through REUSE_CALIBRATION_PATH.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { repositoryRoot } from './backends.mjs';

const { FIXTURE_MODEL_VERSION } = await import(path.join(repositoryRoot, 'apps', 'api', 'dist', 'fixtures', 'cohort.js'));

/** A calibration for the fixture cohorts' vectors; `overrides` replace whole top-level fields. */
export function handWrittenCalibration(overrides = {}) {
  return {
    kind: 'fundus-cbr-reuse-calibration',
    modelVersion: FIXTURE_MODEL_VERSION,
    rule: { neighbours: 25, weighting: 'similarity', softmaxTemperature: null, decision: 'argmax' },
    calibration: { temperature: 1.5, smoothing: 0.01 },
    minimumConfidence: 0.75,
    referableThreshold: 0.5,
    fittedOn: { note: 'hand-written for the tests' },
    ...overrides,
  };
}

/** Writes `calibration` to a fresh temporary directory; returns its path and a remover of the directory. */
export async function writeCalibrationFile(calibration) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fundus-reuse-'));
  const file = path.join(dir, 'reuse.json');
  await fs.writeFile(file, JSON.stringify(calibration));
  return { file, remove: () => fs.rm(dir, { recursive: true, force: true }) };
}
