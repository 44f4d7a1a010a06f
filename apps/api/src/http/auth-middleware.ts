// Express middleware in front of /graphql and /uploads: authenticates the credential, applies the per-credential
// rate limit, and answers a refusal itself (401 UNAUTHENTICATED, 403 FORBIDDEN, 429 RATE_LIMITED) with an audit
// row for it. What passes carries res.locals.viewer.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { writeAuditEvents, type AuditTrail } from '../audit/audit.service.js';
import { outcomeOf } from '../audit/audited.js';
import { authenticate, readCredential, type AuthSettings } from '../auth/authenticate.js';
import type { Viewer } from '../auth/policy.js';
import type { Database } from '../db/database.js';
import { AppError, errorExtensions, HTTP_STATUS_BY_CODE, toAppError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PointLimiter } from './rate-limit.js';

export type RequestLocals = {
  requestId: string;
  viewer?: Viewer;
  /** The GraphQL request's audit trail, for the request log's outcome. */
  audit?: AuditTrail;
  /** The code a REST route or this middleware answered with. */
  outcome?: string;
};

export function sendError(response: Response, error: AppError, headers: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
  if (error.code === 'SERVICE_UNAVAILABLE' && !response.hasHeader('Retry-After')) response.setHeader('Retry-After', '1');
  response.status(HTTP_STATUS_BY_CODE[error.code]).json({ errors: [{ message: error.message, extensions: errorExtensions(error) }] });
}

export function createAuthMiddleware({
  db,
  settings,
  logger,
  limiter,
  requestsPerMinute,
}: {
  db: Database;
  settings: AuthSettings;
  logger: Logger;
  /** http/rate-limit.ts: shared by every API process on PostgreSQL. */
  limiter: PointLimiter;
  requestsPerMinute: number;
}): RequestHandler {
  return async (request: Request, response: Response, next: NextFunction) => {
    const locals = response.locals as RequestLocals;
    let viewer: Viewer | undefined;
    try {
      const credential = readCredential({ authorization: request.headers.authorization, 'x-api-key': request.headers['x-api-key'] });
      if (!credential) throw new AppError('UNAUTHENTICATED', 'Sign in: send "Authorization: Bearer <token>" (a person) or an API key (a service)', { reason: 'MISSING_CREDENTIAL' });
      viewer = await authenticate({ credential, settings, prisma: db.prisma });
      await limiter.consume(viewer.keyId ? `key:${viewer.keyId}` : `sub:${viewer.subject}`).catch((rejection: unknown) => {
        if (rejection instanceof RateLimiterRes) {
          throw new AppError('RATE_LIMITED', `More than ${requestsPerMinute} requests in a minute from this credential; retry after ${Math.ceil(rejection.msBeforeNext / 1000)} s`, { retryAfterSeconds: Math.ceil(rejection.msBeforeNext / 1000) });
        }
        throw rejection;
      });
      locals.viewer = viewer;
      next();
    } catch (error) {
      const known = toAppError(error);
      const appError = known ?? new AppError('INTERNAL_SERVER_ERROR', 'Internal server error');
      if (!known) logger.error('authentication failed unexpectedly', { requestId: locals.requestId, error: String((error as Error)?.stack ?? error) });
      try {
        await writeAuditEvents(db.sql, { requestId: locals.requestId, subject: viewer?.subject ?? null, role: viewer?.role ?? null, keyId: viewer?.keyId ?? (appError.details.keyId as string | undefined) ?? null }, [
          { operation: 'authenticate', outcome: outcomeOf(appError), details: { reason: appError.details.reason ?? null, path: request.originalUrl.split('?')[0] } },
        ]);
      } catch (auditError) {
        logger.error('could not write the audit row of a refused request', { requestId: locals.requestId, error: String(auditError) });
      }
      locals.outcome = appError.code;
      const retryAfter = appError.details.retryAfterSeconds;
      sendError(response, appError, typeof retryAfter === 'number' ? { 'Retry-After': String(retryAfter) } : {});
    }
  };
}
