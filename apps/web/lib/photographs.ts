// Photographs as the browser asks this web server for them, and how the server fetches them from the API: with
// the signed-in person's own token, so the API's policy and audit see who looked (never a shared credential).
import 'server-only';
import { config } from './config';
import { readSession } from './session';

/**
 * GET `apiPath` (relative to the API's root) as the session's user and pass the image through; the API's refusal
 * keeps its status and comes back as JSON with its code. Never cached: each view is one audited access.
 */
export async function proxyApiImage(apiPath: string): Promise<Response> {
  const noStore = { 'cache-control': 'private, no-store' };
  const session = await readSession();
  if (!session) return Response.json({ code: 'UNAUTHENTICATED', message: 'Sign in to see photographs.' }, { status: 401, headers: noStore });
  let response: Response;
  try {
    response = await fetch(new URL(apiPath, config.apiUrl), {
      headers: { authorization: `Bearer ${session.token}`, accept: 'image/*' },
      cache: 'no-store',
      signal: AbortSignal.timeout(config.apiTimeoutMs),
    });
  } catch {
    return Response.json({ code: 'API_UNREACHABLE', message: 'The API could not be reached.' }, { status: 502, headers: noStore });
  }
  const type = response.headers.get('content-type') ?? 'application/octet-stream';
  if (!response.ok || !type.startsWith('image/')) {
    let code = `HTTP_${response.status}`;
    try {
      code = ((await response.json()) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code ?? code;
    } catch {
      // Not JSON: the status says enough.
    }
    return Response.json({ code }, { status: response.ok ? 502 : response.status, headers: noStore });
  }
  return new Response(response.body, { status: 200, headers: { 'content-type': type, ...noStore } });
}
