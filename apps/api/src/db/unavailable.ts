// Whether an error means "the database cannot be reached right now" (refused, reset, restarting, shutting down,
// connection lost mid-query) rather than a bug or bad input: such a request is answered SERVICE_UNAVAILABLE with
// extensions.retryable, and the pool opens fresh connections once the server is back. The error may come from pg
// directly (rate limit, audit, SQL runner) or wrapped by Prisma's driver adapter, so the cause chain is searched.

/** Socket errors, SQLSTATE classes 08 (connection exception) and 57P (operator intervention), Prisma's kinds and codes. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  '57P01', '57P02', '57P03', '53300',
  'P1001', 'P1002', 'P1017',
]);
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
const UNAVAILABLE_MESSAGES = /Connection terminated|connection (?:is )?closed|Client has encountered a connection error|timeout exceeded when trying to connect|the database system is (?:starting up|shutting down|in recovery mode|not yet accepting connections)|terminating connection due to|Server has closed the connection|Can't reach database server/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0 && seen.size < 32) {
    const current = pending.pop();
    if (!current || typeof current !== 'object' || seen.has(current)) continue;
    seen.add(current);
    const { code, kind, message } = current as { code?: unknown; kind?: unknown; message?: unknown };
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
    if (typeof kind === 'string' && UNAVAILABLE_KINDS.has(kind)) return true;
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message)) return true;
    for (const key of ['cause', 'originalError', 'meta', 'driverAdapterError', 'errors'] as const) {
      const next = (current as Record<string, unknown>)[key];
      if (Array.isArray(next)) pending.push(...next);
      else if (next) pending.push(next);
    }
  }
  return false;
}
