// POST /uploads from the end-to-end suites: one place to add what every upload request needs (a credential, once
// the API has authentication).

/** Sends `body` as the raw upload; `contentType` null sends no Content-Type header. Returns status and JSON body. */
export async function postUpload(api, body, contentType = 'image/png', { headers = {}, as = 'demo-clinician' } = {}) {
  const response = await api.fetch('/uploads', {
    method: 'POST',
    headers: { ...(contentType ? { 'content-type': contentType } : {}), ...headers },
    body,
  }, { as });
  return { status: response.status, body: await response.json() };
}
