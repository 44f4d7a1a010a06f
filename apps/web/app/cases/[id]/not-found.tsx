import Link from 'next/link';
import { PAGES } from '../../../lib/access';

/** /cases/<id> for an id the API has no case for (NOT_FOUND); served with status 404. */
export default function CaseNotFound() {
  return (
    <>
      <h1>Case not found</h1>
      <div className="alert" role="alert" data-error-code="NOT_FOUND">
        <p className="alert-title">There is no case with this id</p>
        <p>The photograph may have been removed, or the link is wrong.</p>
      </div>
      <p>
        <Link href={PAGES.patients.href}>Find a patient by MRN</Link>
      </p>
    </>
  );
}
