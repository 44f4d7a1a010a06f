// Where a page sends the browser when the API refused the session's token (lib/api-request.ts): deletes the
// cookie, since a page cannot while rendering, and goes on to the sign-in page with the reason. Only the session
// whose fingerprint is given is ended, so a link from another site cannot sign anyone out.
import { redirect } from 'next/navigation';
import type { NextRequest } from 'next/server';
import { clearSession, currentFingerprint, safeReturnPath, signInPath } from '../../lib/session';

export async function GET(request: NextRequest): Promise<never> {
  const params = request.nextUrl.searchParams;
  const next = safeReturnPath(params.get('next'));
  const fingerprint = await currentFingerprint();
  if (fingerprint === null || fingerprint !== params.get('session')) redirect(signInPath({ next }));
  await clearSession();
  redirect(signInPath({ reason: params.get('reason') === 'expired' ? 'expired' : 'rejected', next }));
}
