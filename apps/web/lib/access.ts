// Which of the web app's pages each role may use. This mirrors the API's POLICY table
// (apps/api/src/auth/policy.ts) for navigation and for refusing a page before asking the API; the API stays
// the authority, and a request it refuses (FORBIDDEN) gets the same refusal. test/web/search-page.test.mjs signs
// in as every demo user and checks these pages against the API's own policy.
export const ROLES = ['clinician', 'researcher', 'ehr-service', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const isRole = (value: unknown): value is Role => typeof value === 'string' && (ROLES as readonly string[]).includes(value);

export type PageId = 'search' | 'patients' | 'cohort-statistics' | 'monitoring' | 'explorer';

export interface AppPage {
  href: string;
  label: string;
  /** The API operation the page needs (POLICY's key), and what the role would be refused in words. */
  operation: string;
  refusal: string;
  roles: readonly Role[];
}

export const PAGES: Record<PageId, AppPage> = {
  search: {
    href: '/search',
    label: 'Similar-case search',
    operation: 'search',
    refusal: 'search similar cases or see the cases and patients a search returns',
    roles: ['clinician', 'admin'],
  },
  // The API also lets ehr-service read patients of its own identifier system; it is an integration, not a
  // person, so it gets no patient page here.
  patients: {
    href: '/patients',
    label: 'Patients',
    operation: 'read-patient',
    refusal: 'read patients, their photographs or their records',
    roles: ['clinician', 'admin'],
  },
  'cohort-statistics': {
    href: '/cohort-statistics',
    label: 'Cohort statistics',
    operation: 'cohort-statistics',
    refusal: 'read cohort statistics',
    roles: ['researcher', 'admin'],
  },
  monitoring: {
    href: '/monitoring',
    label: 'Suggestion monitoring',
    operation: 'read-suggestion-monitoring',
    refusal: 'read the monitoring of grade suggestions against clinicians’ revisions',
    roles: ['admin'],
  },
  // Every role: each query still runs as the signed-in user under the API's own policy (app/explorer/graphql).
  explorer: {
    href: '/explorer',
    label: 'API explorer',
    operation: 'explorer',
    refusal: 'use the API explorer',
    roles: ['clinician', 'researcher', 'ehr-service', 'admin'],
  },
};

const PAGE_ORDER: readonly PageId[] = ['search', 'patients', 'cohort-statistics', 'monitoring', 'explorer'];

/** A role this app does not know (a newer API) may use no page. */
export function mayUsePage(role: string, page: PageId): boolean {
  return isRole(role) && PAGES[page].roles.includes(role);
}

export function pagesFor(role: string): AppPage[] {
  return PAGE_ORDER.filter((page) => mayUsePage(role, page)).map((page) => PAGES[page]);
}

/** Where a sign-in lands when it was not sent from a page: the role's first page, else the home page. */
export function landingPathFor(role: string): string {
  return pagesFor(role)[0]?.href ?? '/';
}
