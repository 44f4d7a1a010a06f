// The web app's only environment reads. Server-side only: nothing here is sent to the browser.
export const config = {
  apiUrl: process.env.API_URL ?? 'http://127.0.0.1:4000/graphql',
  // A search that takes longer than this is reported as an error instead of hanging the page.
  apiTimeoutMs: 15_000,
} as const;
