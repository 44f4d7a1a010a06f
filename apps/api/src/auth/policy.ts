// Who may do what: the one table every resolver and REST route asks (`authorize`), and nothing else decides.
//
// Roles (the configured JWT claim or the API key's role):
//   clinician    searches similar cases and reads, uploads and saves cases of the patients they treat.
//   researcher   cohort statistics only: aggregates, never a patient identifier, name, birth date, exact date or
//                photograph (issue 11). Every case-, patient- and search-level operation is refused.
//   ehr-service  an EHR integration, bound to one identifier system: finds and links patients and studies by
//                that system's identifiers, ingests photographs and writes back gradings.
//   admin        everything a clinician may, plus unlinking, reading the audit log and managing API keys.
import { AppError } from '../errors.js';

export const ROLES = ['clinician', 'researcher', 'ehr-service', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const isRole = (value: unknown): value is Role => typeof value === 'string' && (ROLES as readonly string[]).includes(value);

export const OPERATIONS = [
  'read-case',
  'read-patient',
  'list-patients',
  'search',
  'upload',
  'ingest',
  'write-patient',
  'link',
  'unlink',
  'write-grading',
  'cohort-statistics',
  'read-audit',
  'manage-keys',
  'read-system',
  'revise-case',
  'read-suggestion-monitoring',
  'relevance-feedback',
  'export-feedback',
  'explain-similarity',
] as const;
export type Operation = (typeof OPERATIONS)[number];

const ALL: readonly Role[] = ROLES;

/** The role × operation table. A cell missing here is a refusal: there is no default-allow. */
export const POLICY: Record<Operation, readonly Role[]> = {
  'read-case': ['clinician', 'ehr-service', 'admin'],
  'read-patient': ['clinician', 'ehr-service', 'admin'],
  'list-patients': ['clinician', 'admin'],
  search: ['clinician', 'admin'],
  upload: ['clinician', 'ehr-service', 'admin'],
  ingest: ['clinician', 'ehr-service', 'admin'],
  'write-patient': ['ehr-service', 'admin'],
  link: ['ehr-service', 'admin'],
  unlink: ['admin'],
  'write-grading': ['clinician', 'ehr-service', 'admin'],
  'cohort-statistics': ['researcher', 'admin'],
  'read-audit': ['admin'],
  'manage-keys': ['admin'],
  'read-system': ALL,
  // The clinician's own reading of a photograph (CBR revise); an EHR writes back with recordGrading instead.
  'revise-case': ['clinician', 'admin'],
  'read-suggestion-monitoring': ['admin'],
  // Marks and explanations are about cases and searches, so they follow search; the export holds who marked what.
  'relevance-feedback': ['clinician', 'admin'],
  'export-feedback': ['admin'],
  'explain-similarity': ['clinician', 'admin'],
};

/** Who is asking: from a verified JWT or an API key (auth/authenticate.ts). */
export type Viewer = {
  subject: string;
  role: Role;
  /** The API key's id when the credential is a key; null for a JWT. */
  keyId: string | null;
  /**
   * The one identifier system an ehr-service credential may touch (its MRN namespace, say); null for every
   * other role, which are not bound to a system.
   */
  identifierSystem: string | null;
};

/**
 * Identifier systems no one owns, which any bound credential may use for studies: DICOM UIDs are globally unique
 * (urn:dicom:uid, FHIR's convention for ImagingStudy.identifier). A case found that way still has to pass
 * authorizePatientAccess, so a foreign patient's study stays out of reach.
 */
export const UNIVERSAL_IDENTIFIER_SYSTEMS: ReadonlySet<string> = new Set(['urn:dicom:uid']);

export function isAllowed(role: Role, operation: Operation): boolean {
  return POLICY[operation].includes(role);
}

/**
 * Throws FORBIDDEN unless the viewer's role may perform the operation and, for a system-bound credential, every
 * identifier system the request touches is its own.
 */
export function authorize(viewer: Viewer, operation: Operation, resource: { identifierSystems?: readonly string[] } = {}): void {
  if (!isAllowed(viewer.role, operation)) {
    throw new AppError('FORBIDDEN', `The ${viewer.role} role may not ${describe(operation)}`, { operation });
  }
  if (viewer.identifierSystem !== null) {
    const foreign = (resource.identifierSystems ?? []).find((system) => system !== viewer.identifierSystem && !UNIVERSAL_IDENTIFIER_SYSTEMS.has(system));
    if (foreign !== undefined) {
      throw new AppError('FORBIDDEN', `This credential is bound to the identifier system ${viewer.identifierSystem} and may not touch ${foreign}`, { operation, reason: 'FOREIGN_IDENTIFIER_SYSTEM' });
    }
  }
}

const DESCRIPTIONS: Record<Operation, string> = {
  'read-case': 'read cases',
  'read-patient': 'read patients',
  'list-patients': 'list patients',
  search: 'search similar cases',
  upload: 'upload photographs',
  ingest: 'ingest cases',
  'write-patient': 'create or update patients',
  link: 'link external identifiers',
  unlink: 'unlink external identifiers',
  'write-grading': 'write gradings',
  'cohort-statistics': 'read cohort statistics',
  'read-audit': 'read the audit log',
  'manage-keys': 'manage API keys',
  'read-system': 'read the system status',
  'revise-case': 'revise cases',
  'read-suggestion-monitoring': 'read suggestion monitoring',
  'relevance-feedback': 'give relevance feedback on searches',
  'export-feedback': 'export relevance feedback',
  'explain-similarity': 'explain similar cases',
};

function describe(operation: Operation): string {
  return DESCRIPTIONS[operation];
}

/**
 * A system-bound credential (ehr-service) sees a patient only when the patient carries an identifier of its
 * system: its MRN namespace or one of its external links. Everyone else the policy lets read patients sees all.
 */
export function authorizePatientAccess(viewer: Viewer, patient: { mrnSystem: string; externalLinks: readonly { system: string }[] }): void {
  if (viewer.identifierSystem === null) return;
  const systems = [patient.mrnSystem, ...patient.externalLinks.map((link) => link.system)];
  if (!systems.includes(viewer.identifierSystem)) {
    throw new AppError('FORBIDDEN', `This credential is bound to the identifier system ${viewer.identifierSystem}; the patient has no identifier of that system`, { reason: 'FOREIGN_IDENTIFIER_SYSTEM' });
  }
}
