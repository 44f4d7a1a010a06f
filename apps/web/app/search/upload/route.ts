// The browser's photograph, forwarded to the API's POST /uploads with the session's token (page scripts never
// see the token: it is in an httpOnly cookie). Answers the upload token and heat map, or a refusal with the
// message to show. Raw body both ways, as the API takes it; the API decides what the bytes are and enforces
// its size limit.
import { NextResponse, type NextRequest } from 'next/server';
import { config } from '../../../lib/config';
import { describeUploadRefusal } from '../../../lib/upload-messages';
import { readSession, sessionEndedPath, signInPath } from '../../../lib/session';

export const dynamic = 'force-dynamic';

const RETURN_TO = '/search';

interface ApiErrorBody {
  errors?: { message?: string; extensions?: { code?: string; reason?: string } }[];
}

function refuse(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
  return NextResponse.json({ ok: false, code, message, ...extra }, { status });
}

/** No Origin (not a browser's cross-origin request) or one naming the host the browser asked. */
function isSameOrigin(request: NextRequest): boolean {
  const origin = request.headers.get('origin');
  if (origin === null) return true;
  try {
    return new URL(origin).host === request.headers.get('host');
  } catch {
    return false;
  }
}

export async function POST(request: NextRequest) {
  // The session cookie is SameSite=Lax, so other sites' POSTs arrive without it; this also refuses a same-site
  // page on another port or subdomain.
  if (!isSameOrigin(request)) return refuse(403, 'FORBIDDEN', 'Uploads are accepted from this site only.');

  const session = await readSession();
  if (!session) return refuse(401, 'UNAUTHENTICATED', 'Sign in to search by photograph.', { signIn: signInPath({ reason: 'required', next: RETURN_TO }) });

  const bytes = await request.arrayBuffer();
  let response: Response;
  try {
    response = await fetch(new URL('uploads', config.apiUrl), {
      method: 'POST',
      headers: {
        'content-type': request.headers.get('content-type') || 'application/octet-stream',
        accept: 'application/json',
        authorization: `Bearer ${session.token}`,
      },
      body: bytes,
      cache: 'no-store',
      // Decoding and embedding a large photograph on CPU takes longer than a GraphQL query.
      signal: AbortSignal.timeout(config.apiTimeoutMs * 4),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    const code = timedOut ? 'API_TIMEOUT' : 'API_UNREACHABLE';
    return refuse(502, code, describeUploadRefusal({ code }));
  }

  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // Reported below by status.
  }
  if (response.status === 201 && body && typeof body === 'object' && 'uploadToken' in body) {
    const { uploadToken, expiresAt, modelVersion, image, attention } = body as Record<string, unknown>;
    return NextResponse.json({ ok: true, uploadToken, expiresAt, modelVersion, image, attention }, { status: 201 });
  }

  const firstError = (body as ApiErrorBody | null)?.errors?.[0];
  const code = firstError?.extensions?.code ?? `HTTP_${response.status}`;
  const reason = firstError?.extensions?.reason ?? null;
  if (response.status === 401 || code === 'UNAUTHENTICATED') {
    const why = reason === 'TOKEN_EXPIRED' ? 'expired' : 'rejected';
    return refuse(401, 'UNAUTHENTICATED', 'The API no longer accepts your sign-in.', { signIn: sessionEndedPath(session, why, RETURN_TO) });
  }
  return refuse(response.status >= 400 ? response.status : 502, code, describeUploadRefusal({ code, reason, message: firstError?.message }), { reason });
}
