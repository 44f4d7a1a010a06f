import Link from 'next/link';
import { pagesFor } from '../lib/access';
import { readSession } from '../lib/session';

export default async function HomePage() {
  const session = await readSession();
  const pages = session ? pagesFor(session.user.role) : [];
  return (
    <section className="home">
      <h1>Fundus CBR</h1>
      <p className="lead">
        Find earlier cases similar to a fundus photograph — with their DR grades, diagnoses and treatments — to
        support grading and treatment decisions in diabetic retinopathy.
      </p>
      {!session ? (
        <p>
          <Link className="button" href="/signin">
            Sign in
          </Link>
        </p>
      ) : pages.length === 0 ? (
        <p>The {session.user.role} role has no pages in this web app; it is for access through the API.</p>
      ) : (
        <ul className="plain home-links">
          {pages.map((page) => (
            <li key={page.href}>
              <Link className="button" href={page.href}>
                {page.href === '/search' ? 'Start a similar-case search' : page.label}
              </Link>
            </li>
          ))}
        </ul>
      )}
      <p className="note">
        Results support, and do not replace, clinical judgement. Cases marked <span className="badge">synthetic</span>{' '}
        are generated test data, not patients.
      </p>
    </section>
  );
}
