// Sign-in, sessions and roles in a real headless Chromium: `next start` against the real API (embedded PGlite,
// the test-clinic cohort, the local demo issuer with a fresh key; test/support/backends.mjs). Needs built
// apps/api and apps/web (npm test builds first) and the system Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import {
  DESKTOP,
  REPO_ROOT,
  PAGE_ALERT,
  SESSION_COOKIE,
  TABLET,
  assertFitsWidth,
  findSessionCookie,
  launchChromium,
  newPage,
  readNavLinks,
  readSignedInUser,
  screenshot,
  signInAs,
  signInButton,
  startWebServer, fetchDemoUsers
} from './browser.mjs';

const SEARCH_QUERY = /* GraphQL */ `
  query Similar($input: SimilarCasesInput!) {
    similarCases(input: $input) { hits { rank case { id patient { mrn } } } }
  }
`;
const PAGE_LINKS = [
  { operation: 'search', label: 'Similar-case search' },
  // ehr-service may read patients of its own system over the API; it is an integration, and the page is for people.
  { operation: 'read-patient', label: 'Patients', except: ['ehr-service'] },
  { operation: 'cohort-statistics', label: 'Cohort statistics' },
  { operation: 'read-suggestion-monitoring', label: 'Suggestion monitoring' },
  // Every role: the explorer's queries are checked by the API one by one (test/web/explorer.test.mjs).
  { operation: null, label: 'API explorer' },
];

const encodeSession = (session) => Buffer.from(JSON.stringify(session), 'utf8').toString('base64url');

test('sign-in, sessions and roles against the real API in headless Chromium', { timeout: 180_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite');
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { isAllowed } = await import(path.join(REPO_ROOT, 'apps/api/dist/auth/policy.js'));

  const { users, userOf } = await fetchDemoUsers(api);
  const clinician = userOf('demo-clinician');
  const researcher = userOf('demo-researcher');
  const patients = await api.graphql('{ patients(first: 100) { nodes { mrn cases(first: 1) { nodes { id } } } } }');
  assert.equal(patients.status, 200, JSON.stringify(patients.body));
  const allMrns = patients.body.data.patients.nodes.map((patient) => patient.mrn);
  const imageId = patients.body.data.patients.nodes.find((patient) => patient.cases.nodes.length > 0).cases.nodes[0].id;
  assert.ok(allMrns.length > 10 && imageId);

  const { context, page } = await newPage(browser, DESKTOP);

  await t.test('without a session /search redirects to the sign-in page, which lists the demo users from the API', async () => {
    await page.goto(`${web.baseUrl}/search?imageId=${imageId}`);
    await page.waitForURL(/\/signin\?/);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('reason'), 'required');
    assert.equal(url.searchParams.get('next'), `/search?imageId=${imageId}`);
    assert.match(await page.getByRole('main').getByRole('status').innerText(), /Sign in to continue/);
    assert.equal(users.length, 4);
    for (const user of users) assert.equal(await signInButton(page, user).count(), 1, `a button for ${user.subject}`);
    assert.deepEqual(await readNavLinks(page), [], 'no page links before signing in');
    assert.equal(await readSignedInUser(page), null);
    await screenshot(page, 'signin-1280.png');
    const { page: narrow, context: narrowContext } = await newPage(browser, TABLET);
    await narrow.goto(`${web.baseUrl}/signin`);
    await screenshot(narrow, 'signin-768.png');
    await assertFitsWidth(narrow);
    await narrowContext.close();
  });

  await t.test('signing in as demo-clinician by keyboard sets an httpOnly cookie and returns to the page asked for', async () => {
    // Still on /signin?next=/search?imageId=...: Tab to the clinician's button, Enter.
    let focused = '';
    for (let presses = 0; presses < 25 && focused !== 'Sign in as Demo Clinician (clinician)'; presses += 1) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
    }
    assert.equal(focused, 'Sign in as Demo Clinician (clinician)', 'the sign-in button is reachable by Tab');
    await Promise.all([page.waitForURL(/\/search\?imageId=/), page.keyboard.press('Enter')]);

    assert.equal(await readSignedInUser(page), 'Signed in as Demo Clinician clinician');
    assert.deepEqual(await readNavLinks(page), ['Similar-case search', 'Patients', 'API explorer']);
    const cookie = await findSessionCookie(context);
    assert.ok(cookie, 'a session cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.secure, false, 'plain http here; Secure is set when served over https');
    assert.equal(cookie.path, '/');
    // The API's demo tokens last 8 hours; the cookie expires with the token.
    const hoursLeft = (cookie.expires * 1000 - Date.now()) / 3600_000;
    assert.ok(hoursLeft > 7.9 && hoursLeft <= 8, `cookie expires in ${hoursLeft} h`);
    assert.equal(await page.evaluate(() => document.cookie.includes('fundus_session')), false, 'page scripts cannot read the token');
  });

  await t.test("the clinician's search shows the hits the API returns for that clinician", async () => {
    // Landed on /search?imageId=... after signing in: the search ran with the default k (10).
    await page.locator('table.hits').waitFor();
    const expected = await api.graphql(SEARCH_QUERY, { input: { imageId, k: 10 } });
    const hits = expected.body.data.similarCases.hits;
    assert.ok(hits.length > 0);
    const rows = await page.locator('table.hits tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim())));
    // Columns: rank, thumbnail, similarity, case id (with its Compare link), patient (MRN, then sex and birth year).
    assert.deepEqual(rows.map((row) => row[3].split(/\s/)[0]), hits.map((hit) => hit.case.id));
    assert.deepEqual(rows.map((row) => row[4].split(/\s/)[0]), hits.map((hit) => hit.case.patient.mrn));
  });

  await t.test('sign-out forgets the session: /search redirects to the sign-in page again', async () => {
    await Promise.all([page.waitForURL(/\/signin\?reason=signed-out/), page.getByRole('button', { name: 'Sign out' }).click()]);
    assert.match(await page.getByRole('main').getByRole('status').innerText(), /You have signed out/);
    assert.equal(await findSessionCookie(context), null);
    assert.equal(await readSignedInUser(page), null);
    await page.goto(`${web.baseUrl}/search`);
    await page.waitForURL(/\/signin\?reason=required&next=%2Fsearch$/);
  });

  await t.test('a researcher opening /search is told the role may not, and the page holds no patient data', async () => {
    await signInAs(page, web.baseUrl, researcher, { landsOn: '/cohort-statistics' });
    assert.equal(await readSignedInUser(page), 'Signed in as Demo Researcher researcher');
    assert.deepEqual(await readNavLinks(page), ['Cohort statistics', 'API explorer']);
    assert.equal(await page.getByRole('form', { name: 'Cohort builder' }).count(), 1, 'the researcher lands on the cohort builder');

    for (const url of ['/search', `/search?imageId=${imageId}`]) {
      const response = await page.goto(`${web.baseUrl}${url}`);
      assert.equal(response.status(), 200, 'a refusal page, not an error page');
      const refusal = page.locator(PAGE_ALERT);
      assert.match(await refusal.innerText(), /Not available to the researcher role[\s\S]*The researcher role may not search similar cases/);
      assert.equal(await page.getByLabel('Image id').count(), 0, 'no search form');
      assert.equal(await page.locator('table').count(), 0, 'no results');
      const html = await page.content();
      const leaked = allMrns.filter((mrn) => html.includes(mrn));
      assert.deepEqual(leaked, [], 'no MRN of the cohort in the page');
      assert.equal(html.includes(imageId) && url === '/search', false);
    }
    await screenshot(page, 'refusal-researcher-1280.png');
    const { page: narrow, context: narrowContext } = await newPage(browser, TABLET);
    await narrowContext.addCookies(await context.cookies());
    await narrow.goto(`${web.baseUrl}/search`);
    await narrow.locator(PAGE_ALERT).waitFor();
    await screenshot(narrow, 'refusal-researcher-768.png');
    await assertFitsWidth(narrow);
    await narrowContext.close();
  });

  await t.test("each demo user's pages match what the API lets that role do", async () => {
    for (const user of users) {
      const { page: own, context: ownContext } = await newPage(browser, DESKTOP);
      await signInAs(own, web.baseUrl, user);
      const expected = PAGE_LINKS.filter((link) => link.operation === null || (isAllowed(user.role, link.operation) && !link.except?.includes(user.role))).map((link) => link.label);
      assert.deepEqual(await readNavLinks(own), expected, `navigation of ${user.subject}`);
      // The API's answer for the same role: a search is refused exactly when the page refuses it.
      const search = await api.graphql(SEARCH_QUERY, { input: { imageId, k: 1 } }, { as: user.subject });
      const apiRefuses = search.body.errors?.[0]?.extensions?.code === 'FORBIDDEN';
      assert.equal(apiRefuses, !isAllowed(user.role, 'search'), `API refusal for ${user.subject}`);
      await own.goto(`${web.baseUrl}/search`);
      assert.equal(await own.getByLabel('Image id').count(), apiRefuses ? 0 : 1, `search form for ${user.subject}`);
      assert.equal(await own.getByRole('heading', { name: `Not available to the ${user.role} role` }).count(), apiRefuses ? 1 : 0);
      await ownContext.close();
    }
  });

  await t.test('an expired token sends the browser to the sign-in page with a message, and signing in again returns', async () => {
    const { page: stale, context: staleContext } = await newPage(browser, DESKTOP);
    const token = await api.server.localIssuer.sign(
      { subject: clinician.subject, name: clinician.name, role: clinician.role },
      { audience: api.config.auth.audience, roleClaim: api.config.auth.roleClaim, systemClaim: api.config.auth.systemClaim, ttlSeconds: -300 },
    );
    // The cookie says an hour is left (a clock behind, say); the API knows better.
    const session = { token, expiresAt: new Date(Date.now() + 3600_000).toISOString(), user: clinician };
    await staleContext.addCookies([{ name: SESSION_COOKIE, value: encodeSession(session), url: web.baseUrl, httpOnly: true, sameSite: 'Lax' }]);
    await stale.goto(`${web.baseUrl}/search?imageId=${imageId}&k=3`);
    await stale.waitForURL(/\/signin\?/);
    const url = new URL(stale.url());
    assert.equal(url.searchParams.get('reason'), 'expired');
    assert.equal(url.searchParams.get('next'), `/search?imageId=${imageId}&k=3`);
    assert.match(await stale.locator(PAGE_ALERT).innerText(), /Your session has expired/);
    await screenshot(stale, 'signin-expired-1280.png');
    assert.equal(await findSessionCookie(staleContext), null, 'the expired session cookie is deleted');
    assert.equal(await readSignedInUser(stale), null);

    await Promise.all([stale.waitForURL(/\/search\?imageId=/), signInButton(stale, clinician).click()]);
    assert.equal((await stale.locator('table.hits tbody tr').count()), 3);
    await staleContext.close();
  });

  await t.test('a malformed cookie counts as no session, and a link from elsewhere cannot end a session', async () => {
    const { page: other, context: otherContext } = await newPage(browser, DESKTOP);
    await otherContext.addCookies([{ name: SESSION_COOKIE, value: 'not-a-session', url: web.baseUrl }]);
    await other.goto(`${web.baseUrl}/search`);
    await other.waitForURL(/\/signin\?reason=required/);

    await signInAs(other, web.baseUrl, clinician, { landsOn: '/search' });
    await other.goto(`${web.baseUrl}/session-ended?session=guessed&reason=expired`);
    await other.waitForURL(`${web.baseUrl}/signin`);
    assert.ok(await findSessionCookie(otherContext), 'a wrong fingerprint leaves the session alone');
    assert.equal(await readSignedInUser(other), 'Signed in as Demo Clinician clinician');
    await otherContext.close();
  });

  await t.test('a return path to another site is ignored after sign-in', async () => {
    const { page: other, context: otherContext } = await newPage(browser, DESKTOP);
    await other.goto(`${web.baseUrl}/signin?next=//example.org/phish`);
    await Promise.all([other.waitForURL(`${web.baseUrl}/search`), signInButton(other, clinician).click()]);
    await otherContext.close();
  });

  await t.test('behind a proxy that says https the cookie is Secure', async () => {
    const proxied = await browser.newContext({ viewport: DESKTOP, extraHTTPHeaders: { 'x-forwarded-proto': 'https' } });
    const own = await proxied.newPage();
    await signInAs(own, web.baseUrl, clinician, { landsOn: '/search' });
    // Chromium keeps Secure cookies from http://127.0.0.1 (a potentially trustworthy origin).
    assert.equal((await findSessionCookie(proxied))?.secure, true);
    await proxied.close();
  });
});
