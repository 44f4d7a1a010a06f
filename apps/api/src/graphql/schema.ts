import 'reflect-metadata';
import type { GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { AuditResolver } from '../modules/audit/audit.resolver.js';
import { CaseResolver } from '../modules/case/case.resolver.js';
import { CohortResolver } from '../modules/cohort/cohort.resolver.js';
import { EhrLinkResolver } from '../modules/ehr-link/ehr-link.resolver.js';
import { FhirResolver } from '../modules/fhir/fhir.resolver.js';
import { IngestResolver } from '../modules/ingest/ingest.resolver.js';
import { PatientResolver } from '../modules/patient/patient.resolver.js';
import { RelevanceFeedbackResolver } from '../modules/similar-case/feedback.resolver.js';
import { ReviseResolver } from '../modules/revise/revise.resolver.js';
import { SimilarCaseResolver } from '../modules/similar-case/similar-case.resolver.js';
import { SuggestionResolver } from '../modules/similar-case/suggestion.resolver.js';
import { SystemResolver } from '../modules/system/system.resolver.js';

let cached: Promise<GraphQLSchema> | undefined;

/** Builds the code-first schema once per process; `npm run schema:emit` prints it to schema.graphql. */
export function buildApiSchema(): Promise<GraphQLSchema> {
  cached ??= buildSchema({
    resolvers: [AuditResolver, CaseResolver, CohortResolver, EhrLinkResolver, FhirResolver, IngestResolver, PatientResolver, RelevanceFeedbackResolver, ReviseResolver, SimilarCaseResolver, SuggestionResolver, SystemResolver],
    validate: false,
  });
  return cached;
}
