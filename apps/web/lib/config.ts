// The web app's only environment reads. Server-side only: nothing here is sent to the browser.
const apiUrl = process.env.API_URL ?? 'http://127.0.0.1:4000/graphql';

export const config = {
  apiUrl,
  // The API's local demo issuer serves its routes beside /graphql; resolving them against API_URL keeps any
  // path prefix a reverse proxy adds (http://host/api/graphql -> http://host/api/auth/local/users).
  localIssuer: {
    usersUrl: new URL('auth/local/users', apiUrl).href,
    tokenUrl: new URL('auth/local/token', apiUrl).href,
  },
  // A request that takes longer than this is reported as an error instead of hanging the page.
  apiTimeoutMs: 15_000,
  // Holds the API token of the person signed in (lib/session.ts); httpOnly, so page scripts never see it.
  sessionCookieName: 'fundus_session',
  // Saving an uploaded photograph as a case: the identifier system the clinic's MRNs belong to (FHIR
  // Identifier.system), offered in the form, and the dataset new patients are filed under.
  mrnSystem: process.env.MRN_SYSTEM ?? 'urn:fundus-cbr:clinic:mrn',
  caseDataset: process.env.CASE_DATASET ?? 'clinic',
} as const;
