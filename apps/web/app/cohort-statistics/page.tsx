import type { Metadata } from 'next';
import { AccessRefused } from '../../components/access-refused';
import { PAGES, mayUsePage } from '../../lib/access';
import { requireSession } from '../../lib/session';

export const metadata: Metadata = { title: 'Cohort statistics' };

export default async function CohortStatisticsPage() {
  const session = await requireSession(PAGES['cohort-statistics'].href);
  return (
    <>
      <h1>Cohort statistics</h1>
      {mayUsePage(session.user.role, 'cohort-statistics') ? (
        <section className="placeholder" aria-labelledby="coming-heading">
          <h2 id="coming-heading">Coming</h2>
          <p>
            This page will show aggregate figures over cohorts (grade distributions, treatments, outcomes), never
            individual cases or patients. The API has no cohort-statistics query yet, so there is nothing to show.
          </p>
        </section>
      ) : (
        <AccessRefused session={session} page={PAGES['cohort-statistics']} />
      )}
    </>
  );
}
