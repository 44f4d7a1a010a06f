// The API explorer's GraphQL endpoint: forwards the browser's JSON body to the API with the session's bearer
// token and passes the API's answer (status and body) back unchanged, so every query runs as the signed-in
// user under the API's policy and audit, and the browser never sees the token. Cross-site requests cannot use
// it: the session cookie is SameSite=Lax (not sent on a cross-site POST) and only application/json is accepted,
// which a cross-site form cannot send without a CORS preflight this route never answers.
import { config } from '../../../lib/config';
import { clearSession, readSession } from '../../../lib/session';

export const dynamic = 'force-dynamic';

// Far above any query a person types; a larger body is refused before it reaches the API.
const MAX_BODY_BYTES = 100_000;

/** An error in GraphQL's response shape, so GraphiQL shows it in the result pane like the API's own. */
function graphqlError(status: number, code: string, message: string): Response {
  return Response.json({ errors: [{ message, extensions: { code } }] }, { status, headers: { 'cache-control': 'no-store' } });
}

export async function POST(request: Request): Promise<Response> {
  const session = await readSession();
  if (!session) return graphqlError(401, 'UNAUTHENTICATED', 'Not signed in: sign in on /signin, then reload the explorer.');

  if (!request.headers.get('content-type')?.toLowerCase().startsWith('application/json')) {
    return graphqlError(415, 'BAD_REQUEST', 'Send the GraphQL request as application/json.');
  }
  const body = await request.text();
  if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) {
    return graphqlError(413, 'BAD_REQUEST', `The request is larger than ${MAX_BODY_BYTES} bytes.`);
  }

  let response: Response;
  try {
    response = await fetch(config.apiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${session.token}` },
      body,
      cache: 'no-store',
      signal: AbortSignal.timeout(config.apiTimeoutMs),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    return timedOut
      ? graphqlError(504, 'API_TIMEOUT', `The API did not answer within ${config.apiTimeoutMs / 1000} s.`)
      : graphqlError(502, 'API_UNREACHABLE', 'The API could not be reached. Try again shortly.');
  }

  // The API refused the token (expired, or its signing key changed): the session is over, as on every page.
  if (response.status === 401) await clearSession();
  return new Response(await response.text(), {
    status: response.status,
    headers: {
      'content-type': response.headers.get('content-type') ?? 'application/json',
      'cache-control': 'no-store',
    },
  });
}
