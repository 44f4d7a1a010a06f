import type { Metadata } from 'next';
import { pagesFor } from '../../lib/access';
import { isSignInReason, readSession, safeReturnPath, type SignInReason, type SignedInUser } from '../../lib/session';
import { listDemoUsers } from '../../lib/sign-in';
import { signInAction } from './actions';

export const metadata: Metadata = { title: 'Sign in' };

const REASON_MESSAGES: Record<SignInReason, { text: string; tone: 'info' | 'problem' }> = {
  required: { text: 'Sign in to continue.', tone: 'info' },
  expired: { text: 'Your session has expired. Sign in again to continue.', tone: 'problem' },
  rejected: { text: 'The API no longer accepts your sign-in (its signing key may have changed). Sign in again.', tone: 'problem' },
  'signin-failed': { text: 'Sign-in failed: the API did not issue a token. Try again.', tone: 'problem' },
  'signed-out': { text: 'You have signed out.', tone: 'info' },
};

type SignInPageProps = { searchParams: Promise<Record<string, string | string[] | undefined>> };

export default async function SignInPage({ searchParams }: SignInPageProps) {
  const params = await searchParams;
  const reason = isSignInReason(params.reason) ? params.reason : null;
  const next = safeReturnPath(params.next) ?? '';
  const [session, demoUsers] = await Promise.all([readSession(), listDemoUsers()]);

  return (
    <section className="signin" aria-labelledby="signin-heading">
      <h1 id="signin-heading">Sign in</h1>
      {reason && (
        <p className={REASON_MESSAGES[reason].tone === 'problem' ? 'alert' : 'notice'} role={REASON_MESSAGES[reason].tone === 'problem' ? 'alert' : 'status'}>
          {REASON_MESSAGES[reason].text}
        </p>
      )}
      {session && (
        <p>
          You are signed in as <strong>{session.user.name}</strong> ({session.user.role}). Signing in as another user
          replaces that session.
        </p>
      )}
      {demoUsers.kind === 'provider-not-configured' && (
        <div className="notice" role="status">
          <p className="alert-title">Sign-in with your organisation&apos;s provider is not configured</p>
          <p>
            This API accepts tokens from an OpenID Connect provider, and this web app cannot yet sign you in through
            one. Ask your administrator, or run the embedded demo (<code>npm start</code> without{' '}
            <code>DATABASE_URL</code>), which has demo users.
          </p>
        </div>
      )}
      {demoUsers.kind === 'unavailable' && (
        <div className="alert" role="alert">
          <p className="alert-title">Sign-in is unavailable</p>
          <p>{demoUsers.message}</p>
        </div>
      )}
      {demoUsers.kind === 'users' && (
        <>
          <p className="lead">Choose a demo user. Each has one role, and sees only what that role may use.</p>
          <ul className="signin-users">
            {demoUsers.users.map((user) => (
              <DemoUserForm key={user.subject} user={user} next={next} />
            ))}
          </ul>
          <p className="note">
            Demo sign-in comes from the API&apos;s local demo issuer, which is on only with the embedded database: anyone
            who can reach it can sign in as any demo user, so it must never be exposed beyond this machine. Every demo
            patient is synthetic.
          </p>
        </>
      )}
    </section>
  );
}

function DemoUserForm({ user, next }: { user: SignedInUser; next: string }) {
  const pages = pagesFor(user.role);
  const hintId = `signin-${user.subject}-pages`;
  return (
    <li className="signin-user">
      <form action={signInAction}>
        <input type="hidden" name="subject" value={user.subject} />
        <input type="hidden" name="next" value={next} />
        <button type="submit" aria-describedby={hintId}>
          Sign in as {user.name} ({user.role})
        </button>
        <p id={hintId} className="hint">
          {pages.length > 0
            ? `Can use: ${pages.map((page) => page.label.toLowerCase()).join(', ')}.`
            : 'No pages of this web app; this role is for API access.'}
        </p>
      </form>
    </li>
  );
}
