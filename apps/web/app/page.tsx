import Link from 'next/link';

export default function HomePage() {
  return (
    <section className="home">
      <h1>Fundus CBR</h1>
      <p className="lead">
        Find earlier cases similar to a fundus photograph — with their DR grades, diagnoses and treatments — to
        support grading and treatment decisions in diabetic retinopathy.
      </p>
      <p>
        <Link className="button" href="/search">
          Start a similar-case search
        </Link>
      </p>
      <p className="note">
        Results support, and do not replace, clinical judgement. Cases marked <span className="badge">synthetic</span>{' '}
        are generated test data, not patients.
      </p>
    </section>
  );
}
