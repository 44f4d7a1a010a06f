// FHIR R4 Bundle (JSON) -> one ImportRecord per photograph in it. What is read, and from where:
// - Patient: the identifier whose type is v2-0203 "MR" gives mrn + mrnSystem (required); gender, birth year.
// - DR grade: Observation (code or valueCodeableConcept) or Condition with SNOMED CT 312903003 mild (ICDR 1),
//   312904009 moderate (2), 312905005 severe NPDR (3), 59276001 PDR (4); eye from bodySite.
// - Condition with ICD-10-CM: a diagnosis; the code must pass modules/common/icd10-cm.ts (else every photograph
//   of that patient is a bad row naming the code, so a fixed bundle imports whole on a rerun). For E08-E13 ".3"
//   codes the digits after ".3" are severity (1 unspecified, 2 mild, 3 moderate, 4 severe, 5 proliferative),
//   oedema (1 with, 9 without) and eye (1 right, 2 left, 3 both, 9 unspecified); E10 -> type 1 and E11 -> type 2 diabetes. When no SNOMED grade covers a
//   photograph's eye, the ICD severity of that eye becomes its grade (originalScale "icd-10-cm").
// - Procedure CPT 67028 (intravitreal injection) -> ANTI_VEGF, 67228 (panretinal photocoagulation) ->
//   PRP_LASER; MedicationAdministration of a named anti-VEGF agent -> ANTI_VEGF with that agent. The agent is
//   read from medication text/displays, never guessed from the CPT code alone.
// - ImagingStudy: `started` is the visit date; series laterality gives the eye of bare Binary images; its DICOM
//   study UID becomes an external link of the patient (a study holds several photographs; links are unique).
// - Images: Media (content.data base64, content.url "Binary/<id>", a local path or file: URL) with its eye in
//   bodySite; or a Binary with an image/* contentType that no Media references. Local paths only: http(s)
//   URLs are refused, never fetched. Relative paths resolve against imageDirectory or the bundle's folder.
// Gradings from FHIR are a clinician's record (source CLINICIAN), unlike dataset labels. Every record passes the
// same checks as at ingest (record-problems.ts: codes, dates against today and the birth year) before it is yielded.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AntiVegfAgent, DiabetesType, Eye, Laterality, Sex, TreatmentType } from '../generated/prisma/enums.js';
import { findIcd10CmProblem } from '../modules/common/icd10-cm.js';
import {
  UNDATED_VISIT_DATE,
  ImportFileError,
  rowError,
  type ImageSource,
  type ImportDiagnosis,
  type ImportExternalLink,
  type ImportGrading,
  type ImportItem,
  type ImportOptions,
  type ImportTreatment,
} from './import-record.js';
import { toCheckedItem } from './record-problems.js';

type Json = Record<string, unknown>;

const SNOMED = 'http://snomed.info/sct';
const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
const CPT = 'http://www.ama-assn.org/go/cpt';

export const SNOMED_DR_GRADES: Readonly<Record<string, number>> = { '312903003': 1, '312904009': 2, '312905005': 3, '59276001': 4 };
const SNOMED_EYES: Readonly<Record<string, Eye>> = { '362503005': 'LEFT', '8966001': 'LEFT', '362502000': 'RIGHT', '18944008': 'RIGHT' };
const CPT_TREATMENTS: Readonly<Record<string, TreatmentType>> = { '67028': 'ANTI_VEGF', '67228': 'PRP_LASER' };
const AGENTS: readonly [RegExp, AntiVegfAgent][] = [
  [/aflibercept|eylea/i, 'AFLIBERCEPT'],
  [/ranibizumab|lucentis|byooviz|cimerli/i, 'RANIBIZUMAB'],
  [/bevacizumab|avastin/i, 'BEVACIZUMAB'],
  [/faricimab|vabysmo/i, 'FARICIMAB'],
  [/brolucizumab|beovu/i, 'BROLUCIZUMAB'],
];

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined || value === null ? [] : [value]);
const asString = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);

/** The codings of a CodeableConcept, or the value itself when it is a bare Coding (ImagingStudy.series.laterality and .bodySite are Codings in R4). */
function codings(concept: unknown): { system?: string; code?: string; display?: string }[] {
  if (isObject(concept) && concept['coding'] === undefined && typeof concept['code'] === 'string') {
    return [{ system: asString(concept['system']), code: asString(concept['code']), display: asString(concept['display']) }];
  }
  return asArray(isObject(concept) ? concept['coding'] : undefined)
    .filter(isObject)
    .map((coding) => ({ system: asString(coding['system']), code: asString(coding['code']), display: asString(coding['display']) }));
}

function conceptText(concept: unknown): string {
  if (!isObject(concept)) return '';
  return [asString(concept['text']), ...codings(concept).map((coding) => coding.display)].filter(Boolean).join(' ');
}

function codeIn(concept: unknown, system: string): string | undefined {
  return codings(concept).find((coding) => coding.system === system && coding.code)?.code;
}

/** YYYY-MM-DD of a FHIR date/dateTime/instant, or undefined. */
function toDate(value: unknown): string | undefined {
  const text = asString(value);
  const match = text ? /^(\d{4}-\d{2}-\d{2})/.exec(text) : null;
  return match?.[1];
}

function eyeOfConcepts(concepts: unknown[]): Eye | null {
  for (const concept of concepts) {
    for (const coding of codings(concept)) {
      if (coding.system === SNOMED && coding.code && SNOMED_EYES[coding.code]) return SNOMED_EYES[coding.code]!;
      // DICOM laterality codes as ImagingStudy.series.laterality carries them.
      if (coding.code === 'L') return 'LEFT';
      if (coding.code === 'R') return 'RIGHT';
    }
    const text = conceptText(concept).toLowerCase();
    if (/\bleft\b|\bos\b/.test(text)) return 'LEFT';
    if (/\bright\b|\bod\b/.test(text)) return 'RIGHT';
  }
  return null;
}

const LATERALITY_DIGIT: Readonly<Record<string, Laterality>> = { '1': 'RIGHT', '2': 'LEFT', '3': 'BOTH', '9': 'UNSPECIFIED' };

/** ICD-10-CM diabetic eye codes E08-E13.3xxx (existing ones only): severity, oedema and eye digits. */
export function parseDiabeticRetinopathyCode(code: string): { severity: number; oedema: boolean | null; eye: Laterality; diabetesType: DiabetesType } | null {
  const written = code.trim().toUpperCase();
  if (findIcd10CmProblem(written) !== null) return null;
  const match = /^E(08|09|10|11|13)\.3(\d)([0-9X])?(\d)?$/.exec(written);
  if (!match) return null;
  const category = match[1]!;
  return {
    severity: Number(match[2]),
    oedema: match[3] === '1' ? true : match[3] === '9' ? false : null,
    eye: match[4] ? (LATERALITY_DIGIT[match[4]] ?? 'UNSPECIFIED') : 'UNSPECIFIED',
    diabetesType: category === '10' ? 'TYPE_1' : category === '11' ? 'TYPE_2' : 'OTHER',
  };
}

/** ICD severity digit -> ICDR grade (2 mild -> 1 ... 5 proliferative -> 4); others carry no grade. */
const ICD_SEVERITY_TO_ICDR: Readonly<Record<number, number>> = { 2: 1, 3: 2, 4: 3, 5: 4 };

function lateralityOf(eye: Eye | null): Laterality {
  return eye ?? 'UNSPECIFIED';
}

const appliesTo = (laterality: Laterality, eye: Eye) => laterality === eye || laterality === 'BOTH';

type FoundGrade = { grade: number; eye: Eye | null; date: string | undefined; reference: string; grader: string | null };
type FoundImage = { entry: number; reference: string; source: ImageSource | { error: string }; eye: Eye | null; date: string | undefined; studyReference: string | undefined; link: ImportExternalLink | null };

function findAgent(text: string): AntiVegfAgent | null {
  for (const [pattern, agent] of AGENTS) if (pattern.test(text)) return agent;
  return null;
}

const IMAGE_TYPES = /^image\//i;

export async function* importFhirBundle(file: string, options: ImportOptions = {}): AsyncGenerator<ImportItem> {
  let bundle: unknown;
  try {
    bundle = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ImportFileError(`Cannot read the FHIR bundle ${file}: ${(error as Error).message}`);
  }
  if (!isObject(bundle) || bundle['resourceType'] !== 'Bundle') throw new ImportFileError(`${file} is not a FHIR Bundle (resourceType must be "Bundle")`);
  yield* readBundle(bundle, { ...options, imageDirectory: options.imageDirectory ?? path.dirname(path.resolve(file)) });
}

/** The bundle already parsed; exported for tests and for the lead's API ingestion. */
export async function* readBundle(bundle: Json, options: ImportOptions): AsyncGenerator<ImportItem> {
  const name = options.datasetName ?? 'fhir';
  const dataset = { name, description: 'Imported from FHIR R4 bundles', isSynthetic: false as const };
  const entries = asArray(bundle['entry']).map((entry, index) => ({ index: index + 1, fullUrl: isObject(entry) ? asString(entry['fullUrl']) : undefined, resource: isObject(entry) && isObject(entry['resource']) ? entry['resource'] : null }));
  const byReference = new Map<string, { index: number; resource: Json }>();
  for (const { index, fullUrl, resource } of entries) {
    if (!resource) continue;
    const type = asString(resource['resourceType']);
    const id = asString(resource['id']);
    if (type && id) byReference.set(`${type}/${id}`, { index, resource });
    if (fullUrl) byReference.set(fullUrl, { index, resource });
  }
  const resolve = (reference: unknown) => {
    const text = isObject(reference) ? asString(reference['reference']) : undefined;
    return text ? byReference.get(text) : undefined;
  };
  const referenceOf = (index: number, resource: Json) => `${String(resource['resourceType'])}/${asString(resource['id']) ?? `entry-${index}`}`;
  const ofType = (type: string) => entries.filter((entry): entry is { index: number; fullUrl: string | undefined; resource: Json } => entry.resource?.['resourceType'] === type);

  const patients = ofType('Patient');
  if (patients.length === 0) {
    yield rowError(0, 'the bundle has no Patient resource');
    return;
  }
  // Resources without a subject belong to the patient when there is exactly one.
  const soleKey = patients.length === 1 ? referenceOf(patients[0]!.index, patients[0]!.resource) : undefined;
  const patientKey = (resource: Json): string | undefined => {
    const subject = resolve(resource['subject'] ?? resource['patient']);
    if (subject && subject.resource['resourceType'] === 'Patient') return referenceOf(subject.index, subject.resource);
    return resource['subject'] === undefined && resource['patient'] === undefined ? soleKey : undefined;
  };

  const studies = new Map<string, { date: string | undefined; eyes: Set<Eye>; patient: string | undefined; uids: string[] }>();
  for (const { index, resource } of ofType('ImagingStudy')) {
    const uids = asArray(resource['identifier'])
      .filter(isObject)
      .filter((identifier) => asString(identifier['system']) === 'urn:dicom:uid' && asString(identifier['value']))
      .map((identifier) => asString(identifier['value'])!);
    const eyes = new Set<Eye>();
    for (const series of asArray(resource['series']).filter(isObject)) {
      const eye = eyeOfConcepts([series['laterality'], series['bodySite']]);
      if (eye) eyes.add(eye);
    }
    studies.set(referenceOf(index, resource), { date: toDate(resource['started']), eyes, patient: patientKey(resource), uids });
  }

  for (const patientEntry of patients) {
    const key = referenceOf(patientEntry.index, patientEntry.resource);
    const patient = patientEntry.resource;
    const mr = asArray(patient['identifier'])
      .filter(isObject)
      .find((identifier) => codings(identifier['type']).some((coding) => coding.code === 'MR') || asString(isObject(identifier['type']) ? identifier['type']['text'] : undefined) === 'MR');
    const mrn = mr ? asString(mr['value']) : undefined;
    const mrnSystem = mr ? asString(mr['system']) : undefined;
    const mine = (resource: Json) => patientKey(resource) === key;

    const grades: FoundGrade[] = [];
    const diagnoses: ImportDiagnosis[] = [];
    const icdGrades: { severity: number; oedema: boolean | null; eye: Laterality; date: string | undefined; code: string }[] = [];
    let diabetesType: DiabetesType | null = null;
    for (const type of ['Observation', 'Condition']) {
      for (const { index, resource } of ofType(type).filter((entry) => mine(entry.resource))) {
        const status = asString(resource['status']) ?? asString(isObject(resource['verificationStatus']) ? codings(resource['verificationStatus'])[0]?.code : undefined);
        if (status === 'entered-in-error' || status === 'refuted' || status === 'cancelled') continue;
        const date = toDate(resource['effectiveDateTime']) ?? toDate(isObject(resource['effectivePeriod']) ? resource['effectivePeriod']['start'] : undefined) ?? toDate(resource['onsetDateTime']) ?? toDate(resource['recordedDate']) ?? toDate(resource['issued']);
        const eye = eyeOfConcepts(asArray(resource['bodySite']));
        const snomed = codeIn(resource['code'], SNOMED) ?? codeIn(resource['valueCodeableConcept'], SNOMED);
        const grader = asArray(resource['performer'] ?? resource['asserter'] ?? resource['recorder']).filter(isObject).map((performer) => asString(performer['display'])).find(Boolean) ?? null;
        if (snomed && SNOMED_DR_GRADES[snomed] !== undefined) grades.push({ grade: SNOMED_DR_GRADES[snomed]!, eye, date, reference: referenceOf(index, resource), grader });
        const icd = type === 'Condition' ? codeIn(resource['code'], ICD10CM) : undefined;
        if (icd) {
          const parsed = parseDiabeticRetinopathyCode(icd);
          if (parsed) {
            diabetesType ??= parsed.diabetesType;
            icdGrades.push({ ...parsed, date, code: icd });
          }
          if (/^E10/i.test(icd)) diabetesType ??= 'TYPE_1';
          if (/^E11/i.test(icd)) diabetesType ??= 'TYPE_2';
          diagnoses.push({
            icd10Code: icd.toUpperCase(),
            text: conceptText(resource['code']) || icd,
            eye: parsed && parsed.eye !== 'UNSPECIFIED' ? parsed.eye : lateralityOf(eye),
            diagnosedOn: date ?? '',
          });
        }
      }
    }

    const treatments: ImportTreatment[] = [];
    for (const { resource } of ofType('Procedure').filter((entry) => mine(entry.resource))) {
      if (['not-done', 'entered-in-error'].includes(asString(resource['status']) ?? '')) continue;
      const cpt = codeIn(resource['code'], CPT);
      const type = cpt ? CPT_TREATMENTS[cpt] : undefined;
      if (!type) continue;
      const agentText = [conceptText(resource['code']), ...asArray(resource['usedCode']).map(conceptText), ...asArray(resource['note']).filter(isObject).map((note) => asString(note['text']) ?? '')].join(' ');
      treatments.push({
        type,
        agent: type === 'ANTI_VEGF' ? findAgent(agentText) : null,
        eye: lateralityOf(eyeOfConcepts(asArray(resource['bodySite']))),
        performedOn: toDate(resource['performedDateTime']) ?? toDate(isObject(resource['performedPeriod']) ? resource['performedPeriod']['start'] : undefined) ?? '',
        notes: `FHIR Procedure CPT ${cpt}`,
      });
    }
    for (const { resource } of ofType('MedicationAdministration').filter((entry) => mine(entry.resource))) {
      if (['not-done', 'entered-in-error'].includes(asString(resource['status']) ?? '')) continue;
      const medication = resolve(resource['medicationReference'])?.resource;
      const text = [conceptText(resource['medicationCodeableConcept']), medication ? conceptText(medication['code']) : ''].join(' ');
      const agent = findAgent(text);
      if (!agent) continue;
      const dosage = isObject(resource['dosage']) ? resource['dosage'] : {};
      treatments.push({
        type: 'ANTI_VEGF',
        agent,
        eye: lateralityOf(eyeOfConcepts([dosage['site']])),
        performedOn: toDate(resource['effectiveDateTime']) ?? toDate(isObject(resource['effectivePeriod']) ? resource['effectivePeriod']['start'] : undefined) ?? '',
        notes: `FHIR MedicationAdministration: ${text.trim()}`,
      });
    }

    // Images of this patient: Media first, then Binary images no Media points at.
    const images: FoundImage[] = [];
    const usedBinaries = new Set<string>();
    const sourceOf = (attachment: Json, reference: string): ImageSource | { error: string } => {
      const data = asString(attachment['data']);
      const contentType = asString(attachment['contentType']) ?? null;
      if (data) return { kind: 'bytes', bytes: Buffer.from(data, 'base64'), name: reference, mimeType: contentType };
      const url = asString(attachment['url']);
      if (!url) return { error: `${reference} has neither data nor url` };
      const binary = byReference.get(url);
      if (binary && binary.resource['resourceType'] === 'Binary') {
        usedBinaries.add(referenceOf(binary.index, binary.resource));
        const bytes = asString(binary.resource['data']);
        return bytes ? { kind: 'bytes', bytes: Buffer.from(bytes, 'base64'), name: url, mimeType: asString(binary.resource['contentType']) ?? contentType } : { error: `${url} has no data` };
      }
      if (/^https?:/i.test(url)) return { error: `${reference}: ${url} is a network URL; the importer reads local files only (download it and give a path)` };
      const localPath = url.startsWith('file:') ? fileURLToPath(url) : path.resolve(options.imageDirectory ?? '.', url);
      return { kind: 'file', path: localPath };
    };
    for (const { index, resource, fullUrl } of ofType('Media').filter((entry) => mine(entry.resource))) {
      const reference = referenceOf(index, resource);
      const content = isObject(resource['content']) ? resource['content'] : {};
      const study = asArray(resource['partOf']).map(resolve).find((found) => found?.resource['resourceType'] === 'ImagingStudy');
      images.push({
        entry: index,
        reference,
        source: sourceOf(content, reference),
        eye: eyeOfConcepts([resource['bodySite']]),
        date: toDate(resource['createdDateTime']),
        studyReference: study ? referenceOf(study.index, study.resource) : undefined,
        link: fullUrl && /^https?:/i.test(fullUrl) ? { system: 'fhir', identifier: fullUrl, target: 'image' } : null,
      });
    }
    if (patients.length === 1) {
      for (const { index, resource } of ofType('Binary')) {
        const reference = referenceOf(index, resource);
        if (usedBinaries.has(reference) || !IMAGE_TYPES.test(asString(resource['contentType']) ?? '')) continue;
        const data = asString(resource['data']);
        images.push({ entry: index, reference, source: data ? { kind: 'bytes', bytes: Buffer.from(data, 'base64'), name: reference, mimeType: asString(resource['contentType']) ?? null } : { error: `${reference} has no data` }, eye: null, date: undefined, studyReference: undefined, link: null });
      }
    }
    if (images.length === 0) {
      yield rowError(patientEntry.index, `Patient ${key} has no photograph in the bundle (Media or image Binary)`);
      continue;
    }
    if (!mrn || !mrnSystem) {
      for (const image of images) yield rowError(image.entry, `Patient ${key} has no identifier of type MR with system and value`, image.reference);
      continue;
    }
    const gender = asString(patient['gender']);
    const sex: Sex | null = gender === 'female' ? 'FEMALE' : gender === 'male' ? 'MALE' : gender === 'other' ? 'OTHER' : gender === 'unknown' ? 'UNKNOWN' : null;
    const birthYear = /^(\d{4})/.exec(asString(patient['birthDate']) ?? '')?.[1];
    const allStudies = [...studies.values()].filter((study) => study.patient === key);
    const seriesEyes = new Set(allStudies.flatMap((study) => [...study.eyes]));
    // A study can hold several photographs, and an external link is unique, so the study UID links the patient.
    const patientLinks: ImportExternalLink[] = [
      ...(patientEntry.fullUrl && /^https?:/i.test(patientEntry.fullUrl) ? [{ system: 'fhir', identifier: patientEntry.fullUrl, target: 'patient' as const }] : []),
      ...allStudies.flatMap((study) => study.uids.map((uid) => ({ system: 'urn:dicom:uid', identifier: uid, target: 'patient' as const }))),
    ];

    for (const image of images) {
      if ('error' in image.source) {
        yield rowError(image.entry, image.source.error, image.reference);
        continue;
      }
      const eye = image.eye ?? (seriesEyes.size === 1 ? [...seriesEyes][0]! : null) ?? options.assumeEye ?? null;
      if (!eye) {
        yield rowError(image.entry, `cannot tell the eye of ${image.reference}: give the Media a bodySite, the ImagingStudy series one laterality, or pass --assume-eye LEFT|RIGHT`, image.reference);
        continue;
      }
      const isEyeAssumed = !image.eye && seriesEyes.size !== 1;
      const study = image.studyReference ? studies.get(image.studyReference) : allStudies.length === 1 ? allStudies[0] : undefined;
      const knownDate = image.date ?? study?.date;
      const visitDate = knownDate ?? options.visitDate ?? UNDATED_VISIT_DATE;
      const grading = pickGrading(grades, icdGrades, eye, visitDate, isEyeAssumed ? eye : null);
      yield toCheckedItem(
        {
          row: image.entry,
          dataset,
          patient: { mrn, mrnSystem, isPerImagePatient: false, birthYear: birthYear ? Number(birthYear) : null, sex, diabetesType },
          visitDate,
          isVisitDateKnown: knownDate !== undefined,
          eye,
          isEyeAssumed,
          image: image.source,
          quality: 'UNKNOWN',
          grading,
          diagnoses: diagnoses.map((diagnosis) => ({ ...diagnosis, diagnosedOn: diagnosis.diagnosedOn || visitDate })),
          treatments: dedupeTreatments(treatments.map((treatment) => ({ ...treatment, performedOn: treatment.performedOn || visitDate }))),
          externalLinks: [...patientLinks, ...(image.link ? [image.link] : [])],
        },
        image.reference,
      );
    }
  }
}

/** The grading for one photograph: a SNOMED grade of that eye (or eye-less), the visit's own first, else the latest; else the ICD severity. */
function pickGrading(
  grades: FoundGrade[],
  icdGrades: { severity: number; oedema: boolean | null; eye: Laterality; date: string | undefined; code: string }[],
  eye: Eye,
  visitDate: string,
  assumedEye: Eye | null,
): ImportGrading | null {
  const assumption = assumedEye ? `; eye not stated in the bundle, ${assumedEye} assumed at import (--assume-eye)` : '';
  const candidates = [...grades.filter((grade) => grade.eye === eye), ...grades.filter((grade) => grade.eye === null)];
  const byDate = (a: { date: string | undefined }, b: { date: string | undefined }) => (b.date ?? '').localeCompare(a.date ?? '');
  const chosen = candidates.find((grade) => grade.date === visitDate) ?? [...candidates].sort(byDate)[0];
  const icd = icdGrades.filter((found) => appliesTo(found.eye, eye) || found.eye === 'UNSPECIFIED').sort(byDate);
  const oedema = icd.find((found) => found.oedema !== null)?.oedema ?? null;
  if (chosen) {
    return { drGrade: chosen.grade, maculopathy: oedema, macularEdemaRisk: null, source: 'CLINICIAN', grader: `${chosen.grader ?? 'FHIR'} (${chosen.reference})${assumption}`, originalScale: null, originalValue: null, gradedOn: chosen.date ?? visitDate };
  }
  const fromIcd = icd.find((found) => ICD_SEVERITY_TO_ICDR[found.severity] !== undefined);
  if (!fromIcd) return null;
  return { drGrade: ICD_SEVERITY_TO_ICDR[fromIcd.severity]!, maculopathy: fromIcd.oedema, macularEdemaRisk: null, source: 'CLINICIAN', grader: `FHIR Condition ${fromIcd.code}${assumption}`, originalScale: 'icd-10-cm', originalValue: fromIcd.code, gradedOn: fromIcd.date ?? visitDate };
}

/** A Procedure and a MedicationAdministration for the same injection become one treatment (with the agent). */
function dedupeTreatments(treatments: ImportTreatment[]): ImportTreatment[] {
  const byKey = new Map<string, ImportTreatment>();
  for (const treatment of treatments) {
    const key = `${treatment.type}|${treatment.performedOn}|${treatment.eye}`;
    const existing = byKey.get(key);
    if (!existing || (!existing.agent && treatment.agent)) byKey.set(key, treatment);
  }
  return [...byKey.values()];
}
