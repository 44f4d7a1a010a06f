// The closed set of error codes clients can rely on. A new code must be added to ERROR_CODES, and the
// Record below makes the compiler insist on its HTTP status, so no code is ever left unmapped.
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { isDatabaseUnavailable } from './db/unavailable.js';

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'QUERY_TOO_COMPLEX'
  | 'EMBEDDING_UNAVAILABLE'
  | 'MODEL_UNAVAILABLE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'AUDIT_UNAVAILABLE'
  | 'COHORT_TOO_SMALL'
  | 'COHORT_OVERLAP'
  | 'EMPTY_COHORT'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_SERVER_ERROR';

export const HTTP_STATUS_BY_CODE: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  QUERY_TOO_COMPLEX: 400,
  EMBEDDING_UNAVAILABLE: 409,
  MODEL_UNAVAILABLE: 503,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  AUDIT_UNAVAILABLE: 503,
  COHORT_TOO_SMALL: 422,
  COHORT_OVERLAP: 422,
  EMPTY_COHORT: 422,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

/**
 * Codes a client may retry unchanged, sent as extensions.retryable: the request failed because a dependency (the
 * database, the audit log in it) could not be reached, not because of what it asked. A write answered so may or
 * may not have been committed; ingestion dedupes by content hash, so a retried ingest answers DUPLICATE at worst.
 */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(['SERVICE_UNAVAILABLE', 'AUDIT_UNAVAILABLE']);

/** The extensions of an error response: its code, its details, and retryable where the code is. */
export function errorExtensions(error: AppError): Record<string, unknown> {
  return { code: error.code, ...error.details, ...(RETRYABLE_CODES.has(error.code) ? { retryable: true } : {}) };
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const databaseUnavailable = () => new AppError('SERVICE_UNAVAILABLE', 'The database cannot be reached right now; retry shortly');

export const badInput = (message: string, details?: Record<string, unknown>) => new AppError('BAD_USER_INPUT', message, details);
export const notFound = (message: string, details?: Record<string, unknown>) => new AppError('NOT_FOUND', message, details);

/** Codes that graphql-js and Apollo assign themselves (parse/validation/variable coercion); passed through. */
const FRAMEWORK_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED', 'OPERATION_RESOLUTION_FAILURE']);

function findAppError(error: unknown): AppError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth += 1) {
    if (current instanceof AppError) return current;
    current = (current as { originalError?: unknown }).originalError;
  }
  return undefined;
}

function findOwnCode(error: unknown): ErrorCode | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth += 1) {
    const code = current instanceof GraphQLError ? current.extensions?.code : undefined;
    if (code === 'QUERY_TOO_COMPLEX' || code === 'PAYLOAD_TOO_LARGE') return code;
    current = (current as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/** The AppError an error is or wraps; a lost database connection becomes SERVICE_UNAVAILABLE; else undefined. */
export function toAppError(error: unknown): AppError | undefined {
  return findAppError(error) ?? (isDatabaseUnavailable(error) ? databaseUnavailable() : undefined);
}

/**
 * Apollo's formatError: AppErrors keep their code and message, framework validation errors keep theirs, and
 * anything else is logged and shown as INTERNAL_SERVER_ERROR without internals (no stack, no SQL).
 */
export function createErrorFormatter(logError: (error: unknown) => void) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const appError = toAppError(error);
    if (appError) {
      return { message: appError.message, locations: formatted.locations, path: formatted.path, extensions: errorExtensions(appError) };
    }
    // Apollo relabels every validation-rule error GRAPHQL_VALIDATION_FAILED; our own rules (query limits) keep
    // the code they were raised with, which the wrapped original still carries.
    const ownCode = findOwnCode(error);
    if (ownCode) return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: ownCode } };
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR' && (FRAMEWORK_CODES.has(code) || code in HTTP_STATUS_BY_CODE)) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    logError(error);
    return { message: 'Internal server error', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

export function toGraphQLError(error: AppError): GraphQLError {
  return new GraphQLError(error.message, { extensions: errorExtensions(error), originalError: error });
}
