// A case (one fundus photograph in the context of its patient's records) as a FHIR R4 Bundle. Pure: no
// database, no clock, no randomness, so the same case always gives the same bundle (bar `timestamp`).
//
// Bundle type `collection`, not `document`: a document is an attested clinical document whose first entry is a
// Composition and whose content is fixed at signing; this export is the record's data handed to another system
// (an EHR, a registry, our own importer), which decides what to store. It is not `transaction` either: that
// would tell the receiver to write. docs/FHIR-MAPPING.md lists every field, its element and code system, and
// what is not exported.
//
// The codes are the ones apps/api/src/importers/fhir.ts reads (SNOMED CT DR grades, eye structures, ICD-10-CM,
// CPT 67028/67228, agent names), so a bundle exported here imports back into the same record; the test says
// which fields survive the trip.
import { createHash } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Coding,
  Condition,
  Encounter,
  FhirResource,
  Identifier,
  ImagingStudy,
  Media,
  MedicationAdministration,
  Meta,
  Observation,
  ObservationComponent,
  Patient,
  Procedure,
  Reference,
} from 'fhir/r4.js';
import type { AntiVegfAgent, Eye, GradeSource, Laterality, Sex, TreatmentType } from '../../generated/prisma/enums.js';
import { SNOMED_DR_GRADES } from '../../importers/fhir.js';
import type { Case, Diagnosis, ExternalLink, Grading, Treatment } from '../case/case.type.js';

export const SYSTEMS = {
  snomed: 'http://snomed.info/sct',
  loinc: 'http://loinc.org',
  icd10cm: 'http://hl7.org/fhir/sid/icd-10-cm',
  cpt: 'http://www.ama-assn.org/go/cpt',
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  dicomUid: 'urn:dicom:uid',
  identifierType: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  mediaType: 'http://terminology.hl7.org/CodeSystem/media-type',
  ucum: 'http://unitsofmeasure.org',
  /** Identifier system for values that are themselves URIs (FHIR's convention). */
  uri: 'urn:ietf:rfc:3986',
  dataAbsentReason: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason',
} as const;

/** The product's own code systems, for what no standard terminology says (or says only in text). */
export const PRODUCT_SYSTEMS = {
  tag: 'urn:fundus-cbr:tag',
  case: 'urn:fundus-cbr:case',
  sha256: 'urn:fundus-cbr:sha256',
  gradeSource: 'urn:fundus-cbr:grade-source',
  gradingComponent: 'urn:fundus-cbr:grading-component',
  treatmentType: 'urn:fundus-cbr:treatment-type',
  antiVegfAgent: 'urn:fundus-cbr:anti-vegf-agent',
  dataset: 'urn:fundus-cbr:dataset:',
  linkSystem: 'urn:fundus-cbr:link-system:',
} as const;

export type CasePhotograph = { contentType: string } & ({ data: Uint8Array } | { url: string });

export type CaseBundleOptions = {
  /** Bundle.timestamp; passed in so the mapping stays a function of its inputs. */
  exportedAt: Date;
  /**
   * The photograph as a Media resource: bytes inline (base64 `content.data`) or a `content.url` (a local path or
   * `file:` URL is what our importer reads; it never fetches http). Without it the bundle has the ImagingStudy
   * but no pixels, and our importer refuses a bundle without a photograph.
   */
  photograph?: CasePhotograph;
};

/**
 * `Case` as the services return it, plus the photograph's external links where the caller has them: the DICOM
 * Study Instance UID (system `urn:dicom:uid`) becomes ImagingStudy.identifier. `Case` does not carry image links
 * today (loadCases reads them but does not return them).
 */
export type ExportableCase = Case & { image: Case['image'] & { externalLinks?: ExternalLink[] } };

// Fixed namespace for the name-based (RFC 4122 version 5) ids below; changing it changes every exported id.
const ID_NAMESPACE = Buffer.from('5d3c1f0e8b7a4e2a9c6d0f1e2a3b4c5d', 'hex');

/** A stable UUID per (resource type, product id): re-exports keep their ids, so a receiver can de-duplicate. */
export function nameBasedUuid(name: string): string {
  const hash = createHash('sha1').update(ID_NAMESPACE).update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A DICOM UID from a UUID (the 2.25 root of ISO/IEC 9834-8): at most 44 characters, within DICOM's 64. */
const dicomUidOf = (uuid: string) => `2.25.${BigInt(`0x${uuid.replaceAll('-', '')}`).toString()}`;

const OPHTHALMIC_PHOTOGRAPHY: Coding = { system: SYSTEMS.dicom, code: 'OP', display: 'Ophthalmic Photography' };
const MEDICAL_RECORD_NUMBER: Coding = { system: SYSTEMS.identifierType, code: 'MR', display: 'Medical record number' };
const TEST_HEALTH_DATA: Coding = { system: SYSTEMS.actReason, code: 'HTEST', display: 'test health data' };
const SYNTHETIC_TAG: Coding = { system: PRODUCT_SYSTEMS.tag, code: 'synthetic', display: 'Synthetic patient: generated, not a real person' };

/** SNOMED CT eye structures, the codes the importer maps to LEFT/RIGHT. */
const EYE_STRUCTURE: Readonly<Record<Eye, Coding>> = {
  LEFT: { system: SYSTEMS.snomed, code: '8966001', display: 'Left eye structure' },
  RIGHT: { system: SYSTEMS.snomed, code: '18944008', display: 'Right eye structure' },
};
/** SNOMED CT laterality qualifiers, for ImagingStudy.series.laterality. */
const LATERALITY_QUALIFIER: Readonly<Record<Eye, Coding>> = {
  LEFT: { system: SYSTEMS.snomed, code: '7771000', display: 'Left' },
  RIGHT: { system: SYSTEMS.snomed, code: '24028007', display: 'Right' },
};

/** LOINC "<eye> Diabetic retinopathy severity level by Ophthalmoscopy"; its answer list LL2117-1 is the ICDR scale. */
const DR_SEVERITY_CODE: Readonly<Record<Eye, Coding>> = {
  LEFT: { system: SYSTEMS.loinc, code: '71490-7', display: 'Left eye Diabetic retinopathy severity level by Ophthalmoscopy' },
  RIGHT: { system: SYSTEMS.loinc, code: '71491-5', display: 'Right eye Diabetic retinopathy severity level by Ophthalmoscopy' },
};
/** LOINC answers of LL2117-1 by ICDR grade 0-4. */
const ICDR_LOINC_ANSWERS: readonly Coding[] = [
  { system: SYSTEMS.loinc, code: 'LA18643-9', display: 'No apparent retinopathy' },
  { system: SYSTEMS.loinc, code: 'LA18644-7', display: 'Mild non-proliferative retinopathy' },
  { system: SYSTEMS.loinc, code: 'LA18645-4', display: 'Moderate non-proliferative retinopathy' },
  { system: SYSTEMS.loinc, code: 'LA18646-2', display: 'Severe non-proliferative retinopathy' },
  { system: SYSTEMS.loinc, code: 'LA18648-8', display: 'Proliferative retinopathy' },
];
/** The importer's SNOMED CT grade table turned around, so export and import cannot disagree. No code for grade 0. */
const SNOMED_BY_GRADE = new Map(Object.entries(SNOMED_DR_GRADES).map(([code, grade]) => [grade, code]));
const SNOMED_GRADE_DISPLAY: Readonly<Record<string, string>> = {
  '312903003': 'Mild nonproliferative diabetic retinopathy',
  '312904009': 'Moderate nonproliferative diabetic retinopathy',
  '312905005': 'Severe nonproliferative diabetic retinopathy',
  '59276001': 'Proliferative diabetic retinopathy',
};
const ICDR_NAMES = ['No diabetic retinopathy', 'Mild NPDR', 'Moderate NPDR', 'Severe NPDR', 'Proliferative DR'] as const;

const GRADE_SOURCE: Readonly<Record<GradeSource, string>> = {
  CLINICIAN: 'Graded by a clinician on the photograph',
  ADJUDICATED: 'Adjudicated grading',
  DATASET_LABEL: 'Label published with the dataset',
  MODEL_SUGGESTION: 'Model suggestion (not a clinical grading)',
  EHR: 'Recorded in the EHR',
};

const GENDER: Readonly<Record<Sex, NonNullable<Patient['gender']>>> = { FEMALE: 'female', MALE: 'male', OTHER: 'other', UNKNOWN: 'unknown' };

/** CPT where one fits (67028 and 67228 are the codes the importer reads); observation is a plan, not a procedure code. */
const TREATMENT: Readonly<Record<TreatmentType, { cpt?: Coding; text: string }>> = {
  ANTI_VEGF: { cpt: { system: SYSTEMS.cpt, code: '67028', display: 'Intravitreal injection of a pharmacologic agent' }, text: 'Intravitreal anti-VEGF injection' },
  PRP_LASER: { cpt: { system: SYSTEMS.cpt, code: '67228', display: 'Photocoagulation of extensive or progressive retinopathy' }, text: 'Panretinal photocoagulation (PRP laser)' },
  FOCAL_LASER: { cpt: { system: SYSTEMS.cpt, code: '67210', display: 'Photocoagulation of a localized lesion of the retina' }, text: 'Focal/grid macular laser' },
  VITRECTOMY: { cpt: { system: SYSTEMS.cpt, code: '67036', display: 'Vitrectomy, mechanical, pars plana approach' }, text: 'Vitrectomy' },
  OBSERVATION: { text: 'Observation: monitoring without treatment' },
};

/** Generic names, which the importer matches; RxNorm codes are left out rather than guessed. */
const AGENT_NAME: Readonly<Record<AntiVegfAgent, string>> = {
  AFLIBERCEPT: 'aflibercept',
  RANIBIZUMAB: 'ranibizumab',
  BEVACIZUMAB: 'bevacizumab',
  FARICIMAB: 'faricimab',
  BROLUCIZUMAB: 'brolucizumab',
  OTHER: 'anti-VEGF agent (other)',
};

const concept = (coding: Coding): CodeableConcept => ({ coding: [coding] });

/** Body site of a laterality: SNOMED CT eye structure; both eyes as text only; unspecified: none. */
function eyeSite(laterality: Laterality): CodeableConcept | undefined {
  if (laterality === 'LEFT' || laterality === 'RIGHT') return concept(EYE_STRUCTURE[laterality]);
  if (laterality === 'BOTH') return { text: 'Both eyes' };
  return undefined;
}

/** Patient links as identifiers. DICOM study UIDs identify a study, not the patient, and are left out here. */
function linkIdentifiers(links: ExternalLink[]): Identifier[] {
  return links
    .filter((link) => link.system !== SYSTEMS.dicomUid)
    .map((link) => {
      // The importer records a source server's resource URL under system "fhir".
      if (link.system === 'fhir') return { system: SYSTEMS.uri, value: link.identifier };
      const isUri = /^[a-z][a-z0-9+.-]*:\S+$/i.test(link.system);
      return { system: isUri ? link.system : `${PRODUCT_SYSTEMS.linkSystem}${encodeURIComponent(link.system)}`, value: link.identifier };
    });
}

function studyInstanceUids(links: ExternalLink[] | undefined): Identifier[] {
  return (links ?? [])
    .filter((link) => link.system === SYSTEMS.dicomUid)
    .map((link) => ({ system: SYSTEMS.dicomUid, value: link.identifier.startsWith('urn:oid:') ? link.identifier : `urn:oid:${link.identifier}` }));
}

function gradingObservation(grading: Grading, eye: Eye, refs: { subject: Reference; encounter: Reference; derivedFrom: Reference[] }, date: string, meta: Meta): Observation {
  const snomed = SNOMED_BY_GRADE.get(grading.drGrade);
  const answer = ICDR_LOINC_ANSWERS[grading.drGrade];
  const components: ObservationComponent[] = [];
  if (grading.maculopathy !== null) {
    components.push({ code: { coding: [{ system: PRODUCT_SYSTEMS.gradingComponent, code: 'maculopathy', display: 'Diabetic maculopathy' }] }, valueBoolean: grading.maculopathy });
  }
  if (grading.macularEdemaRisk !== null) {
    components.push({ code: { coding: [{ system: PRODUCT_SYSTEMS.gradingComponent, code: 'macular-edema-risk', display: 'Risk of macular edema (0-2, IDRiD/Messidor)' }] }, valueInteger: grading.macularEdemaRisk });
  }
  return {
    resourceType: 'Observation',
    id: nameBasedUuid(`Observation/${grading.id}`),
    meta,
    status: 'final',
    category: [concept({ system: SYSTEMS.observationCategory, code: 'imaging', display: 'Imaging' })],
    code: { coding: [DR_SEVERITY_CODE[eye]], text: 'Diabetic retinopathy severity (ICDR), graded on a colour fundus photograph' },
    subject: refs.subject,
    encounter: refs.encounter,
    effectiveDateTime: date,
    ...(grading.grader ? { performer: [{ display: grading.grader }] } : {}),
    valueCodeableConcept: {
      coding: [...(snomed ? [{ system: SYSTEMS.snomed, code: snomed, display: SNOMED_GRADE_DISPLAY[snomed]! }] : []), ...(answer ? [answer] : [])],
      text: `ICDR ${grading.drGrade}: ${ICDR_NAMES[grading.drGrade] ?? 'unknown'}`,
    },
    bodySite: concept(EYE_STRUCTURE[eye]),
    method: { coding: [{ system: PRODUCT_SYSTEMS.gradeSource, code: grading.source, display: GRADE_SOURCE[grading.source] }] },
    derivedFrom: refs.derivedFrom,
    ...(components.length > 0 ? { component: components } : {}),
    ...(grading.originalScale
      ? { note: [{ text: `Graded on the ${grading.originalScale} scale as ${grading.originalValue ?? '(no value)'}; ICDR ${grading.drGrade} is the mapped grade.` }] }
      : {}),
  };
}

function conditionOf(diagnosis: Diagnosis, subject: Reference, meta: Meta): Condition {
  const site = eyeSite(diagnosis.eye);
  return {
    resourceType: 'Condition',
    id: nameBasedUuid(`Condition/${diagnosis.id}`),
    meta,
    // The description goes in the coding's display only: the importer joins text and displays into its text.
    code: concept({ system: SYSTEMS.icd10cm, code: diagnosis.code, display: diagnosis.text }),
    ...(site ? { bodySite: [site] } : {}),
    subject,
    recordedDate: diagnosis.date,
  };
}

function treatmentResources(treatment: Treatment, subject: Reference, meta: Meta): (Procedure | MedicationAdministration)[] {
  const { cpt, text } = TREATMENT[treatment.type];
  const site = eyeSite(treatment.eye);
  const agent = treatment.type === 'ANTI_VEGF' && treatment.agent ? treatment.agent : null;
  const procedure: Procedure = {
    resourceType: 'Procedure',
    id: nameBasedUuid(`Procedure/${treatment.id}`),
    meta,
    status: 'completed',
    code: { coding: [...(cpt ? [cpt] : []), { system: PRODUCT_SYSTEMS.treatmentType, code: treatment.type }], text },
    subject,
    performedDateTime: treatment.date,
    ...(site ? { bodySite: [site] } : {}),
    ...(agent ? { usedCode: [{ text: AGENT_NAME[agent] }] } : {}),
    ...(treatment.notes ? { note: [{ text: treatment.notes }] } : {}),
  };
  if (!agent) return [procedure];
  const administration: MedicationAdministration = {
    resourceType: 'MedicationAdministration',
    id: nameBasedUuid(`MedicationAdministration/${treatment.id}`),
    meta,
    status: 'completed',
    medicationCodeableConcept: { coding: [{ system: PRODUCT_SYSTEMS.antiVegfAgent, code: agent, display: AGENT_NAME[agent] }], text: AGENT_NAME[agent] },
    subject,
    effectiveDateTime: treatment.date,
    partOf: [{ reference: `urn:uuid:${procedure.id}` }],
    dosage: {
      ...(site ? { site } : {}),
      route: { text: 'Intravitreal' },
      // Not recorded. FHIR wants a dose or rate wherever dosage is given (invariant mad-1), and dosage is where
      // the eye goes, so the dose is declared unknown rather than invented.
      dose: { extension: [{ url: SYSTEMS.dataAbsentReason, valueCode: 'unknown' }] },
    },
  };
  return [procedure, administration];
}

export function caseToFhirBundle(found: ExportableCase, options: CaseBundleOptions): Bundle<FhirResource> {
  const { patient, image, visit } = found;
  const meta: Meta = {
    source: `${PRODUCT_SYSTEMS.dataset}${encodeURIComponent(patient.dataset.name)}`,
    ...(found.isSynthetic ? { security: [TEST_HEALTH_DATA], tag: [SYNTHETIC_TAG] } : {}),
  };
  const patientId = nameBasedUuid(`Patient/${patient.id}`);
  const encounterId = nameBasedUuid(`Encounter/${visit.id}`);
  const studyId = nameBasedUuid(`ImagingStudy/${image.id}`);
  const mediaId = nameBasedUuid(`Media/${image.id}`);
  const subject: Reference = { reference: `urn:uuid:${patientId}` };
  const encounter: Reference = { reference: `urn:uuid:${encounterId}` };
  const study: Reference = { reference: `urn:uuid:${studyId}` };

  const fhirPatient: Patient = {
    resourceType: 'Patient',
    id: patientId,
    meta,
    identifier: [
      { use: 'usual', type: { coding: [MEDICAL_RECORD_NUMBER] }, system: patient.mrnSystem, value: patient.mrn },
      ...linkIdentifiers(patient.externalLinks),
    ],
    gender: GENDER[patient.sex],
    // FHIR dates may be a year alone; the product records no more than that.
    ...(patient.birthYear !== null ? { birthDate: String(patient.birthYear).padStart(4, '0') } : {}),
  };
  const fhirEncounter: Encounter = {
    resourceType: 'Encounter',
    id: encounterId,
    meta,
    status: 'finished',
    class: { system: SYSTEMS.actCode, code: 'AMB', display: 'ambulatory' },
    subject,
    period: { start: visit.date },
  };
  const imagingStudy: ImagingStudy = {
    resourceType: 'ImagingStudy',
    id: studyId,
    meta,
    identifier: [{ system: PRODUCT_SYSTEMS.case, value: found.id }, ...studyInstanceUids(image.externalLinks)],
    status: 'available',
    modality: [OPHTHALMIC_PHOTOGRAPHY],
    subject,
    encounter,
    started: visit.date,
    numberOfSeries: 1,
    numberOfInstances: 1,
    description: 'Colour fundus photograph',
    series: [
      {
        // Required by FHIR; derived from the photograph's id, not a PACS series UID.
        uid: dicomUidOf(nameBasedUuid(`ImagingStudy.series/${image.id}`)),
        number: 1,
        modality: OPHTHALMIC_PHOTOGRAPHY,
        description: `Colour fundus photograph, ${image.eye.toLowerCase()} eye`,
        numberOfInstances: 1,
        bodySite: EYE_STRUCTURE[image.eye],
        laterality: LATERALITY_QUALIFIER[image.eye],
      },
    ],
  };
  const photograph = options.photograph;
  const media: Media | undefined = photograph && {
    resourceType: 'Media',
    id: mediaId,
    meta,
    identifier: [{ system: PRODUCT_SYSTEMS.sha256, value: image.contentHash }],
    status: 'completed',
    type: concept({ system: SYSTEMS.mediaType, code: 'image', display: 'Image' }),
    modality: concept(OPHTHALMIC_PHOTOGRAPHY),
    subject,
    encounter,
    createdDateTime: visit.date,
    bodySite: concept(EYE_STRUCTURE[image.eye]),
    partOf: [study],
    width: image.width,
    height: image.height,
    content:
      'data' in photograph
        ? { contentType: photograph.contentType, data: Buffer.from(photograph.data).toString('base64'), size: photograph.data.byteLength }
        : { contentType: photograph.contentType, url: photograph.url },
  };

  const observations: Observation[] = [];
  if (found.referenceGrading) {
    const derivedFrom = [study, ...(media ? [{ reference: `urn:uuid:${mediaId}` }] : [])];
    observations.push(gradingObservation(found.referenceGrading, image.eye, { subject, encounter, derivedFrom }, visit.date, meta));
  }
  patient.hba1cReadings.forEach((reading, index) => {
    observations.push({
      resourceType: 'Observation',
      id: nameBasedUuid(`Observation/hba1c/${patient.id}/${index}/${reading.date}`),
      meta,
      status: 'final',
      category: [concept({ system: SYSTEMS.observationCategory, code: 'laboratory', display: 'Laboratory' })],
      code: { coding: [{ system: SYSTEMS.loinc, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' }], text: 'HbA1c' },
      subject,
      effectiveDateTime: reading.date,
      valueQuantity: { value: reading.percent, unit: '%', system: SYSTEMS.ucum, code: '%' },
    });
  });

  const resources: FhirResource[] = [
    fhirPatient,
    fhirEncounter,
    imagingStudy,
    ...(media ? [media] : []),
    ...observations,
    ...found.diagnoses.map((diagnosis) => conditionOf(diagnosis, subject, meta)),
    ...found.treatments.flatMap((treatment) => treatmentResources(treatment, subject, meta)),
  ];
  const entry: BundleEntry<FhirResource>[] = resources.map((resource) => ({ fullUrl: `urn:uuid:${resource.id!}`, resource }));
  return {
    resourceType: 'Bundle',
    ...(found.isSynthetic ? { meta: { security: [TEST_HEALTH_DATA], tag: [SYNTHETIC_TAG] } } : {}),
    type: 'collection',
    timestamp: options.exportedAt.toISOString(),
    entry,
  };
}
