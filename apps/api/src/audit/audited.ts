// The one wrapper a resolver puts around its service call: ask the policy, run the work, and add the outcome to
// the request's audit trail, whichever way it ends (allowed, refused, failed).
import { GraphQLError } from 'graphql';
import type { RequestContext } from '../context.js';
import { toAppError } from '../errors.js';
import { authorize, type Operation } from '../auth/policy.js';
import { AUDIT_OUTCOME_OK, type AuditEntry } from './audit.service.js';

export type AuditSummary = Pick<AuditEntry, 'patientIds' | 'imageIds' | 'details'>;

/** The stable code an error is answered with (INTERNAL_SERVER_ERROR for anything unexpected). */
export function outcomeOf(error: unknown): string {
  const known = toAppError(error);
  if (known) return known.code;
  if (error instanceof GraphQLError && typeof error.extensions?.code === 'string') return error.extensions.code;
  return 'INTERNAL_SERVER_ERROR';
}

export async function audited<T>(
  context: Pick<RequestContext, 'viewer' | 'audit'>,
  request: { operation: Operation; identifierSystems?: readonly string[]; details?: Record<string, unknown> },
  work: () => Promise<T> | T,
  summarize: (result: T) => AuditSummary = () => ({}),
): Promise<T> {
  const details = request.details ?? {};
  try {
    authorize(context.viewer, request.operation, { identifierSystems: request.identifierSystems });
  } catch (error) {
    context.audit.add({ operation: request.operation, outcome: outcomeOf(error), details: { ...details, refused: (error as Error).message } });
    throw error;
  }
  let result: T;
  try {
    result = await work();
  } catch (error) {
    context.audit.add({ operation: request.operation, outcome: outcomeOf(error), details });
    throw error;
  }
  const summary = summarize(result);
  context.audit.add({ operation: request.operation, outcome: AUDIT_OUTCOME_OK, patientIds: summary.patientIds, imageIds: summary.imageIds, details: { ...details, ...summary.details } });
  return result;
}
