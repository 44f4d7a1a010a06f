// Every GraphQL request the web server sends: signed with the session's token, and with the API's refusals
// turned into what the person sees. No session: the sign-in page. The API refuses the token (401
// UNAUTHENTICATED, an expired token say): the session ends and the sign-in page says why. The role may not do
// this (FORBIDDEN): an outcome the page shows as a refusal. Anything else comes back as an outcome too, never a
// thrown error. Server-side only.
import 'server-only';
import { redirect } from 'next/navigation';
import { config } from './config';
import { requireSession, sessionEndedPath } from './session';

export type ApiOutcome<T> = { ok: true; data: T } | { ok: false; code: string; message: string; extensions?: Record<string, unknown> };

interface GraphQLError {
  message?: string;
  extensions?: { code?: string; reason?: string; [name: string]: unknown };
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: GraphQLError[];
}

export async function requestGraphql<T>({
  operationName,
  query,
  variables,
  returnTo,
}: {
  operationName: string;
  query: string;
  variables: Record<string, unknown>;
  /** The page to come back to after signing in again. */
  returnTo: string;
}): Promise<ApiOutcome<T>> {
  const session = await requireSession(returnTo);

  let response: Response;
  try {
    response = await fetch(config.apiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${session.token}` },
      body: JSON.stringify({ operationName, query, variables }),
      cache: 'no-store',
      signal: AbortSignal.timeout(config.apiTimeoutMs),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    return timedOut
      ? { ok: false, code: 'API_TIMEOUT', message: `The API did not answer within ${config.apiTimeoutMs / 1000} s.` }
      : { ok: false, code: 'API_UNREACHABLE', message: 'The API could not be reached. Try again shortly.' };
  }

  let body: GraphQLResponse<T> | null = null;
  try {
    body = (await response.json()) as GraphQLResponse<T>;
  } catch {
    // Reported below by status; a 401 without a JSON body still ends the session.
  }
  const firstError = body?.errors?.[0];
  const code = firstError?.extensions?.code;

  if (response.status === 401 || code === 'UNAUTHENTICATED') {
    redirect(sessionEndedPath(session, firstError?.extensions?.reason === 'TOKEN_EXPIRED' ? 'expired' : 'rejected', returnTo));
  }
  if (response.status === 403 || code === 'FORBIDDEN') {
    return { ok: false, code: 'FORBIDDEN', message: firstError?.message ?? 'The API refused this request for your role.' };
  }
  if (!body) {
    return { ok: false, code: `HTTP_${response.status}`, message: 'The API sent a response that is not GraphQL.' };
  }
  if (firstError) {
    return { ok: false, code: code ?? 'INTERNAL_SERVER_ERROR', message: firstError.message ?? 'The request failed.', extensions: firstError.extensions ?? {} };
  }
  if (body.data === undefined || body.data === null) {
    return { ok: false, code: `HTTP_${response.status}`, message: 'The API returned no result.' };
  }
  return { ok: true, data: body.data };
}
