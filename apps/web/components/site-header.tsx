import Link from 'next/link';
import { pagesFor } from '../lib/access';
import type { Session } from '../lib/session';
import { signOutAction } from '../app/signin/actions';

/** Brand, the pages the signed-in role may use, and who is signed in with a sign-out button. */
export function SiteHeader({ session }: { session: Session | null }) {
  const pages = session ? pagesFor(session.user.role) : [];
  return (
    <header className="site-header">
      <Link href="/" className="brand">
        Fundus CBR
      </Link>
      {pages.length > 0 && (
        <nav aria-label="Main">
          <ul className="nav-links">
            {pages.map((page) => (
              <li key={page.href}>
                <Link href={page.href}>{page.label}</Link>
              </li>
            ))}
          </ul>
        </nav>
      )}
      <div className="account">
        {session ? (
          <>
            <p className="account-user" data-testid="signed-in-user">
              <span className="visually-hidden">Signed in as </span>
              <span className="account-name">{session.user.name}</span>{' '}
              <span className="account-role">{session.user.role}</span>
            </p>
            <form action={signOutAction}>
              <button type="submit" className="signout">
                Sign out
              </button>
            </form>
          </>
        ) : (
          <Link href="/signin">Sign in</Link>
        )}
      </div>
    </header>
  );
}
