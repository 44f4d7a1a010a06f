import type { Metadata } from 'next';
import './explorer.css';
import { AccessRefused } from '../../components/access-refused';
import { ApiExplorer } from '../../components/explorer/api-explorer';
import { PAGES, mayUsePage } from '../../lib/access';
import { requireSession } from '../../lib/session';

export const metadata: Metadata = { title: 'API explorer' };

export default async function ExplorerPage() {
  const session = await requireSession(PAGES.explorer.href);
  if (!mayUsePage(session.user.role, 'explorer')) {
    return (
      <>
        <h1>API explorer</h1>
        <AccessRefused session={session} page={PAGES.explorer} />
      </>
    );
  }
  return (
    <>
      <h1>API explorer</h1>
      <p>
        The GraphQL API, signed in as {session.user.name} ({session.user.role}): what your role may not do is refused
        with <code>FORBIDDEN</code>, as for any API client.
      </p>
      <ApiExplorer />
    </>
  );
}
