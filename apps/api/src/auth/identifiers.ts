// FHIR Identifier.system and .value checks, shared by API keys and EHR linking. A system is an absolute URI
// (http(s)://..., urn:oid:..., urn:uuid:..., urn:<nid>:...), as FHIR requires.
import { badInput } from '../errors.js';

const MAX_SYSTEM_LENGTH = 255;
const MAX_VALUE_LENGTH = 128;
const URI = /^(https?:\/\/[^\s/?#]+[^\s]*|urn:oid:[0-2](\.(0|[1-9]\d*))+|urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|urn:[a-z0-9][a-z0-9-]{0,31}:[!-~]+)$/i;

export function requireIdentifierSystem(value: string, field: string): string {
  const system = value.trim();
  if (system.length === 0 || system.length > MAX_SYSTEM_LENGTH || !URI.test(system) || /[<>"'`\\]/.test(system)) {
    throw badInput(`${field} must be an absolute URI of at most ${MAX_SYSTEM_LENGTH} characters (http(s)://..., urn:oid:..., urn:uuid:...), as FHIR Identifier.system requires`, { field });
  }
  return system;
}

/**
 * FHIR Identifier.value as hospitals issue them (MRNs, accession numbers, DICOM UIDs, EHR ids): letters, digits
 * and . _ : / + -, at most 128 characters. Anything else (spaces, quotes, markup) is refused, not escaped.
 */
export function requireIdentifierValue(value: string, field: string): string {
  if (value.length === 0 || value.length > MAX_VALUE_LENGTH || !/^[A-Za-z0-9][A-Za-z0-9._:/+-]*$/.test(value)) {
    throw badInput(`${field} must be 1-${MAX_VALUE_LENGTH} characters of letters, digits and . _ : / + - (starting with a letter or digit)`, { field });
  }
  return value;
}
