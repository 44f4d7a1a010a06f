// The normalised form every labels-file importer produces, whatever the source format: one photograph of one
// eye with its patient, visit, grading, diagnoses and treatments. The ingest service writes exactly this.
//
// Conventions every importer follows (and the tests pin down):
// - Bad rows are reported as ImportRowError (row number + reason) and skipped; a file is never aborted for a
//   row. Only an unreadable or unrecognisable file throws (ImportFileError).
// - Dataset labels carry no examination date, so such visits get UNDATED_VISIT_DATE (below); FHIR records use
//   the dates in the bundle.
// - Patients of datasets are identified in the system `urn:fundus-cbr:dataset:<name>`.
// - Grades are ICDR 0-4. A grade given on another scale keeps its scale and value (originalScale/originalValue).
import path from 'node:path';
import type { AntiVegfAgent, Eye, ImageQuality, Laterality, Sex, DiabetesType, TreatmentType } from '../generated/prisma/enums.js';
import { UNDATED_VISIT_DATE } from '../modules/common/clinical-dates.js';

/**
 * Visit date for labels without dates (every public dataset here). A fixed sentinel, not "today": it keeps a
 * rerun, or the other eye imported later, in the same visit (visits are found by patient and date), and it is
 * obviously not a real examination date, so nobody mistakes it for one. `--visit-date` overrides it. Accepted only
 * while the patient's birth year is unknown (modules/common/clinical-dates.ts says why).
 */
export { UNDATED_VISIT_DATE } from '../modules/common/clinical-dates.js';

export type ImportFormat = 'shared' | 'eyepacs' | 'aptos' | 'idrid' | 'deepdrid' | 'messidor' | 'fhir';
export const IMPORT_FORMATS: readonly ImportFormat[] = ['shared', 'eyepacs', 'aptos', 'idrid', 'deepdrid', 'messidor', 'fhir'];

export type ImageSource =
  | { kind: 'file'; path: string }
  | { kind: 'bytes'; bytes: Buffer; name: string; mimeType: string | null };

export type ImportGrading = {
  /** ICDR 0-4. */
  drGrade: number;
  maculopathy: boolean | null;
  /** 0-2 (IDRiD, Messidor); null when the source does not assess it. */
  macularEdemaRisk: number | null;
  source: 'DATASET_LABEL' | 'CLINICIAN';
  /** Who graded, as far as the source says; also where an import-time assumption is spelled out. */
  grader: string | null;
  originalScale: string | null;
  originalValue: string | null;
  gradedOn: string;
};

export type ImportDiagnosis = { icd10Code: string; text: string; eye: Laterality; diagnosedOn: string };
export type ImportTreatment = { type: TreatmentType; agent: AntiVegfAgent | null; eye: Laterality; performedOn: string; notes: string | null };
export type ImportExternalLink = { system: string; identifier: string; target: 'patient' | 'image' };

export type ImportRecord = {
  /** 1-based line of the labels file (header = 1), or entry index + 1 for a FHIR bundle; for messages. */
  row: number;
  dataset: { name: string; description: string | null; isSynthetic: false };
  patient: {
    mrn: string;
    mrnSystem: string;
    /** True where the source has no patient ids (APTOS, IDRiD, Messidor): each image is its own patient. */
    isPerImagePatient: boolean;
    birthYear: number | null;
    sex: Sex | null;
    diabetesType: DiabetesType | null;
  };
  visitDate: string;
  /** False when visitDate is UNDATED_VISIT_DATE (or --visit-date) because the source has no date. */
  isVisitDateKnown: boolean;
  eye: Eye;
  /** True when the source has no laterality and the eye was filled in: --assume-eye, or the shared layout's
   * eye_inferred (a guess from the optic disc's side). Stored as fundus_image.eye_inferred. */
  isEyeAssumed: boolean;
  image: ImageSource;
  quality: ImageQuality;
  grading: ImportGrading | null;
  diagnoses: ImportDiagnosis[];
  treatments: ImportTreatment[];
  externalLinks: ImportExternalLink[];
};

export type ImportRowError = { row: number; reason: string; image?: string };

export type ImportItem = { ok: true; record: ImportRecord } | { ok: false; error: ImportRowError };

export type ImportOptions = {
  /** Dataset name; each format has a default. */
  datasetName?: string;
  /** Laterality for sources that publish none (APTOS, IDRiD, Messidor without a side in the name). */
  assumeEye?: Eye | null;
  /** Replaces UNDATED_VISIT_DATE for sources without dates. */
  visitDate?: string;
  /** FHIR only: folder against which relative file references (Media/ImagingStudy/Binary urls) resolve. */
  imageDirectory?: string;
};

export class ImportFileError extends Error {
  override readonly name = 'ImportFileError';
}

export const datasetSystem = (name: string) => `urn:fundus-cbr:dataset:${name}`;

export function rowError(row: number, reason: string, image?: string): ImportItem {
  return { ok: false, error: image === undefined ? { row, reason } : { row, reason, image } };
}

/** ICDR grade 0-4 from a label cell; null (with the reason) otherwise. */
export function parseIcdrGrade(value: string | undefined): { grade: number } | { reason: string } {
  const text = (value ?? '').trim();
  if (text === '') return { reason: 'missing grade' };
  const grade = Number(text);
  if (!Number.isInteger(grade) || grade < 0 || grade > 4) return { reason: `unknown grade "${text}" (ICDR 0-4 expected)` };
  return { grade };
}

export function parseSmallInteger(value: string | undefined, max: number): number | null | 'invalid' {
  const text = (value ?? '').trim();
  if (text === '') return null;
  const number = Number(text);
  return Number.isInteger(number) && number >= 0 && number <= max ? number : 'invalid';
}

/** The "Risk of macular edema" column of IDRiD and Messidor: 0-2, empty when not assessed. */
export function parseMacularEdemaRisk(value: string | undefined): { risk: number | null } | { reason: string } {
  const risk = parseSmallInteger(value, 2);
  return risk === 'invalid' ? { reason: `unknown risk of macular edema "${value}" (0-2 expected)` } : { risk };
}

export { isIsoDate } from '../modules/common/clinical-dates.js';

/** Resolves an image path from a labels file against the file's folder; refuses paths that leave it. */
export function resolveImagePath(folder: string, image: string): string | null {
  const normalised = image.replaceAll('\\', '/').replace(/^\/+/, '');
  if (normalised === '') return null;
  const resolved = path.resolve(folder, normalised);
  const relative = path.relative(folder, resolved);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return null;
  return resolved;
}

/** The shared shape of a dataset record; importers fill in what they know. */
export function datasetRecord(fields: {
  row: number;
  dataset: ImportRecord['dataset'];
  mrn: string;
  isPerImagePatient: boolean;
  eye: Eye;
  isEyeAssumed: boolean;
  imagePath: string;
  quality?: ImageQuality;
  grading: Omit<ImportGrading, 'source' | 'gradedOn'>;
  visitDate: string | undefined;
  mrnSystem?: string;
}): ImportRecord {
  const visitDate = fields.visitDate ?? UNDATED_VISIT_DATE;
  return {
    row: fields.row,
    dataset: fields.dataset,
    patient: {
      mrn: fields.mrn,
      mrnSystem: fields.mrnSystem ?? datasetSystem(fields.dataset.name),
      isPerImagePatient: fields.isPerImagePatient,
      birthYear: null,
      sex: null,
      diabetesType: null,
    },
    visitDate,
    isVisitDateKnown: false,
    eye: fields.eye,
    isEyeAssumed: fields.isEyeAssumed,
    image: { kind: 'file', path: fields.imagePath },
    quality: fields.quality ?? 'UNKNOWN',
    grading: { ...fields.grading, source: 'DATASET_LABEL', gradedOn: visitDate },
    diagnoses: [],
    treatments: [],
    externalLinks: [],
  };
}

/** What an assumed eye does to the grader text, so the assumption is visible on every grading it touched. */
export function describeGrader(label: string, assumedEye: Eye | null): string {
  return assumedEye ? `${label}; eye not published by the dataset, ${assumedEye} assumed at import (--assume-eye)` : label;
}

export function missingEyeReason(dataset: string): string {
  return `${dataset} has no laterality; pass --assume-eye LEFT|RIGHT to import`;
}
