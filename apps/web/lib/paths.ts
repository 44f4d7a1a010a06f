// Addresses of the app's pages, with no server-only imports, so client components (the save and revise forms)
// link with the same functions as the server pages.

/** The case page of a photograph. */
export const casePath = (id: string) => `/cases/${encodeURIComponent(id)}`;
