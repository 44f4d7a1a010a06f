// The API explorer (/explorer) in a real headless Chromium: GraphiQL bundled by Next.js, its queries sent
// through the web server's /explorer/graphql with the session's token to the real API (embedded PGlite, the
// test-clinic cohort, the local demo issuer). Every request the page makes must stay on 127.0.0.1: no CDN for
// scripts, styles, fonts or Monaco's workers. Needs built apps/api and apps/web; skipped only without Chromium.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import { DESKTOP, launchChromium, newPage, readNavLinks, screenshot, signInAs, startWebServer, fetchDemoUsers } from './browser.mjs';

const HEALTH_QUERY = '{ health { status database } }';
const PATIENTS_QUERY = '{ patients(first: 1) { nodes { mrn } } }';

/** Every URL the page (and its workers) asks for, to prove nothing leaves this machine's loopback address. */
function recordRequests(page) {
  const urls = [];
  page.on('request', (request) => urls.push(request.url()));
  page.on('websocket', (socket) => urls.push(socket.url()));
  page.on('worker', (worker) => urls.push(worker.url()));
  return urls;
}

/** The host a URL reaches over the network, or null for data: URLs (inline, nothing is fetched). */
function networkHostOf(url) {
  const parsed = new URL(url);
  if (parsed.protocol === 'data:') return null;
  // blob:http://127.0.0.1:1234/uuid belongs to the origin it was made on.
  return parsed.protocol === 'blob:' ? new URL(parsed.pathname).hostname : parsed.hostname;
}

function assertStaysOnLoopback(urls) {
  assert.ok(urls.length > 0, 'requests were recorded');
  const elsewhere = urls.filter((url) => networkHostOf(url) !== null && networkHostOf(url) !== '127.0.0.1');
  assert.deepEqual(elsewhere, [], 'requests that left 127.0.0.1');
}

const queryEditor = (page) => page.locator('.graphiql-query-editor .monaco-editor').first();
const resultPane = (page) => page.locator('.result-window .view-lines').first();

/** Replaces the query in GraphiQL's Monaco editor (insertText: no auto-closed brackets) and runs it. */
async function runQuery(page, query) {
  await queryEditor(page).click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(query);
  const answer = page.waitForResponse((response) => new URL(response.url()).pathname === '/explorer/graphql' && response.request().method() === 'POST' && response.request().postData()?.includes(query.slice(2, 12)));
  await page.getByRole('button', { name: /Execute query/ }).click();
  const response = await answer;
  return { status: response.status(), body: await response.json() };
}

/** The result pane's text once it shows `expected` (Monaco renders asynchronously). */
async function waitForResult(page, expected) {
  await page.waitForFunction(
    ([selector, source]) => new RegExp(source).test(document.querySelector(selector)?.textContent?.replace(/\u00a0/g, ' ') ?? ''),
    ['.result-window .view-lines', expected.source],
  );
  return (await resultPane(page).innerText()).replace(/\u00a0/g, ' ');
}

test('the API explorer runs queries as the signed-in user, with docs, and loads nothing from elsewhere', { timeout: 180_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite');
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);

  await t.test('without a session the proxy refuses with 401 and /explorer asks to sign in', async () => {
    const response = await fetch(`${web.baseUrl}/explorer/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: HEALTH_QUERY }) });
    assert.equal(response.status, 401);
    assert.equal((await response.json()).errors[0].extensions.code, 'UNAUTHENTICATED');
    const { page, context } = await newPage(browser, DESKTOP);
    await page.goto(`${web.baseUrl}/explorer`);
    await page.waitForURL(/\/signin\?reason=required&next=%2Fexplorer$/);
    await context.close();
  });

  await t.test('demo-admin runs a query, sees the result and opens the schema docs; all requests stay on 127.0.0.1', async () => {
    const { page, context } = await newPage(browser, DESKTOP);
    const urls = recordRequests(page);
    await signInAs(page, web.baseUrl, userOf('demo-admin'));
    assert.ok((await readNavLinks(page)).includes('API explorer'), 'the admin navigation links the explorer');
    await page.goto(`${web.baseUrl}/explorer`);
    await queryEditor(page).waitFor();
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'API explorer');

    // GraphiQL's stylesheet is bundled into this app's CSS: its rules apply, and every stylesheet is served here.
    const styles = await page.evaluate(() => ({
      display: getComputedStyle(document.querySelector('.graphiql-container')).display,
      sheets: [...document.styleSheets].map((sheet) => sheet.href),
      graphiqlRules: [...document.styleSheets].some((sheet) => [...sheet.cssRules].some((rule) => rule.cssText.includes('.graphiql-container'))),
    }));
    assert.equal(styles.display, 'flex', 'GraphiQL CSS is applied');
    assert.ok(styles.graphiqlRules, 'a stylesheet of this app holds the GraphiQL rules');
    for (const href of styles.sheets.filter(Boolean)) assert.equal(new URL(href).origin, web.baseUrl, `stylesheet ${href}`);

    const { status, body } = await runQuery(page, HEALTH_QUERY);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body.data.health, (await api.graphql(HEALTH_QUERY, undefined, { as: 'demo-admin' })).body.data.health);
    const shown = await waitForResult(page, /"status": "ok"/);
    assert.match(shown, /"database": "[^"]+"/);
    assert.ok(page.workers().length > 0, "Monaco's web workers run (bundled, same origin)");

    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByRole('link', { name: 'Query', exact: true }).click();
    await docs.getByRole('link', { name: 'similarCases', exact: true }).waitFor();
    await screenshot(page, 'explorer-admin-1280.png');

    assertStaysOnLoopback(urls);
    assert.ok(urls.some((url) => url.endsWith('/explorer/graphql')), 'queries went to the web server, not the API');
    assert.ok(!urls.some((url) => url.startsWith(api.baseUrl)), 'the browser never talks to the API itself');
    await context.close();
  });

  await t.test("demo-researcher's patient query is refused by the API's policy and the FORBIDDEN is shown", async () => {
    const { page, context } = await newPage(browser, DESKTOP);
    const urls = recordRequests(page);
    await signInAs(page, web.baseUrl, userOf('demo-researcher'));
    await page.goto(`${web.baseUrl}/explorer`);
    await queryEditor(page).waitFor();
    const { body } = await runQuery(page, PATIENTS_QUERY);
    const direct = await api.graphql(PATIENTS_QUERY, undefined, { as: 'demo-researcher' });
    assert.equal(direct.body.errors[0].extensions.code, 'FORBIDDEN', 'the API itself refuses the researcher');
    assert.deepEqual(body, direct.body, "the proxy passes the API's answer through");
    const shown = await waitForResult(page, /FORBIDDEN/);
    assert.doesNotMatch(shown, /"mrn"/);
    await screenshot(page, 'explorer-researcher-forbidden-1280.png');
    assertStaysOnLoopback(urls);
    await context.close();
  });

  await t.test('demo-ehr, which had no page, lands on the explorer', async () => {
    const { page, context } = await newPage(browser, DESKTOP);
    await signInAs(page, web.baseUrl, userOf('demo-ehr'), { landsOn: '/explorer' });
    assert.deepEqual(await readNavLinks(page), ['API explorer']);
    await queryEditor(page).waitFor();
    await context.close();
  });
});
