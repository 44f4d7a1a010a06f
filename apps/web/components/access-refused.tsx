import Link from 'next/link';
import { pagesFor, type AppPage } from '../lib/access';
import type { Session } from '../lib/session';

/**
 * What a page shows a role that may not use it, whether this app knew beforehand (lib/access.ts) or the API
 * refused the request (FORBIDDEN, with its message). Shows nothing the page would have loaded.
 */
export function AccessRefused({ session, page, apiMessage, code }: { session: Session; page: AppPage; apiMessage?: string; code?: string }) {
  const others = pagesFor(session.user.role).filter((other) => other.href !== page.href);
  return (
    <section className="refusal" role="alert" aria-labelledby="refusal-heading" data-refused-page={page.operation} data-error-code={code}>
      <h2 id="refusal-heading">Not available to the {session.user.role} role</h2>
      <p>
        You are signed in as {session.user.name} ({session.user.role}). The {session.user.role} role may not {page.refusal},
        so this page shows nothing.
      </p>
      {apiMessage && (
        <p>
          The API said: <q>{apiMessage}</q>
        </p>
      )}
      {code && (
        <p className="alert-code">
          Error code: <code>{code}</code>
        </p>
      )}
      {others.length > 0 ? (
        <p>
          Your role may use:{' '}
          {others.map((other, index) => (
            <span key={other.href}>
              {index > 0 && ', '}
              <Link href={other.href}>{other.label}</Link>
            </span>
          ))}
          .
        </p>
      ) : (
        <p>Your role has no other page in this web app.</p>
      )}
      <p className="note">If you need this access, sign in as a user with another role or ask your administrator.</p>
    </section>
  );
}
