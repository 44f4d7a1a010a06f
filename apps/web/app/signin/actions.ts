'use server';
// The sign-in and sign-out forms' server actions. Next.js refuses a server action posted from another origin,
// and the cookie is SameSite=Lax, so neither can be triggered by another site.
import { redirect } from 'next/navigation';
import { landingPathFor } from '../../lib/access';
import { clearSession, safeReturnPath, signInPath, writeSession } from '../../lib/session';
import { signInAsDemoUser } from '../../lib/sign-in';

export async function signInAction(formData: FormData): Promise<void> {
  const subject = formData.get('subject');
  const next = safeReturnPath(formData.get('next'));
  const session = typeof subject === 'string' && subject !== '' ? await signInAsDemoUser(subject) : null;
  if (!session) redirect(signInPath({ reason: 'signin-failed', next }));
  await writeSession(session);
  redirect(next ?? landingPathFor(session.user.role));
}

export async function signOutAction(): Promise<void> {
  // The token itself stays valid at the API until it expires (JWTs are not revoked); only this browser forgets it.
  await clearSession();
  redirect(signInPath({ reason: 'signed-out' }));
}
