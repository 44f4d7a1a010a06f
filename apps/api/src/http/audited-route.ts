// The REST routes' twin of audit/audited.ts: ask the policy, run the route, write the audit row, then answer.
// A refusal or failure is recorded with its code; a success whose audit row cannot be written is answered
// AUDIT_UNAVAILABLE instead of its result, as GraphQL reads are.
import type { Request, RequestHandler, Response } from 'express';
import { AUDIT_OUTCOME_OK, writeAuditEvents } from '../audit/audit.service.js';
import { outcomeOf, type AuditSummary } from '../audit/audited.js';
import { authorize, type Operation, type Viewer } from '../auth/policy.js';
import type { Database } from '../db/database.js';
import { AppError, toAppError } from '../errors.js';
import type { Logger } from '../logger.js';
import { sendError, type RequestLocals } from './auth-middleware.js';

export type AuditedRouteResult = { audit: AuditSummary; send(response: Response): void };

export function auditedRoute({
  db,
  logger,
  operation,
  describe,
  handle,
}: {
  db: Database;
  logger: Logger;
  operation: Operation;
  /** What the audit row records about the request, whatever the outcome. */
  describe: (request: Request) => Record<string, unknown>;
  handle: (request: Request, viewer: Viewer) => Promise<AuditedRouteResult>;
}): RequestHandler {
  return async (request, response, next) => {
    const locals = response.locals as RequestLocals;
    const viewer = locals.viewer!;
    const actor = { requestId: locals.requestId, subject: viewer.subject, role: viewer.role, keyId: viewer.keyId };
    const details = describe(request);
    let result: AuditedRouteResult;
    try {
      authorize(viewer, operation);
      result = await handle(request, viewer);
    } catch (thrown) {
      const error = toAppError(thrown) ?? thrown;
      locals.outcome = outcomeOf(error);
      const reason = error instanceof AppError ? (error.details.reason ?? null) : null;
      await writeAuditEvents(db.sql, actor, [{ operation, outcome: outcomeOf(error), details: { ...details, reason } }]).catch((auditError: unknown) =>
        logger.error('could not write the audit row of a refused request', { requestId: locals.requestId, operation, error: String(auditError) }),
      );
      if (error instanceof AppError) return sendError(response, error);
      return next(error);
    }
    try {
      const { patientIds, imageIds } = result.audit;
      await writeAuditEvents(db.sql, actor, [{ operation, outcome: AUDIT_OUTCOME_OK, patientIds, imageIds, details: { ...details, ...result.audit.details } }]);
    } catch (auditError) {
      logger.error('could not write the audit log; the response was withheld', { requestId: locals.requestId, operation, error: String(auditError) });
      locals.outcome = 'AUDIT_UNAVAILABLE';
      return sendError(response, new AppError('AUDIT_UNAVAILABLE', 'The access could not be recorded in the audit log, so nothing is returned; try again'));
    }
    result.send(response);
  };
}
