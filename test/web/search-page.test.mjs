// The similar-case search page in a real headless Chromium, served by `next start`, talking to a fake GraphQL
// API that records what the web server sent it. The fake executes each request against the committed
// schema.graphql, so a query or variables that drift from the API's schema fail here too, and it answers the
// local demo issuer's sign-in routes with tokens of its own, which /graphql then requires. Sign-in, roles and
// sessions against the real API are in signin.test.mjs. Needs a built apps/web (npm test builds first; built
// here when missing) and the system Chromium (scripts/ci-setup.sh installs it); skipped only when Chromium is
// missing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { GraphQLError, buildSchema, graphql } from 'graphql';
import {
  DESKTOP,
  PAGE_ALERT,
  REPO_ROOT,
  TABLET,
  assertFitsWidth,
  launchChromium,
  newPage,
  readNavLinks,
  readSignedInUser,
  screenshot,
  signInButton,
  startWebServer,
} from './browser.mjs';

const UNKNOWN_IMAGE_ID = 'img-does-not-exist';
// The fake refuses searches from this photograph as the real API refuses a role: FORBIDDEN in the GraphQL errors.
const FORBIDDEN_IMAGE_ID = 'img-forbidden';
const CLINICIAN = { subject: 'demo-clinician', name: 'Demo Clinician', role: 'clinician' };
const DEMO_USERS = [CLINICIAN, { subject: 'demo-researcher', name: 'Demo Researcher', role: 'researcher' }];
const tokenOf = (subject) => `fake-token-${subject}`;

// Three hits in rank order; the second is synthetic and has no treatments.
const SIMILAR_CASES = {
  modelVersion: 'resnet18-arcface-2026-11-20',
  searchId: 'search-0001',
  // The CBR reuse step the page shows beside the hits (test/web/cbr-workflow.test.mjs checks it against the real API).
  suggestion: {
    id: 'suggestion-0001',
    status: 'SUGGESTED',
    suggestedGrade: 2,
    suggestedGradeName: 'Moderate NPDR',
    confidence: 0.61,
    reason: null,
    gradeProbabilities: [0.04, 0.08, 0.61, 0.17, 0.1].map((probability, grade) => ({ grade, probability })),
    referableProbability: 0.88,
    referable: true,
    voters: 3,
    vote: [{ grade: 2, share: 0.66, neighbours: 2 }, { grade: 4, share: 0.34, neighbours: 1 }],
    rule: 'similarity-weighted vote of the nearest graded cases',
    calibrationModelVersion: 'resnet18-arcface-2026-11-20',
    hitGrades: [{ grade: 2, gradeName: 'Moderate NPDR', count: 2 }, { grade: 4, gradeName: 'Proliferative DR', count: 1 }],
    ungradedHits: 0,
    outcomes: { hits: 3, undatedHits: 0, treatedAfter: 1, treatments: [{ type: 'ANTI_VEGF', hits: 1 }], worsening: [{ years: 1, followedUp: 1, worsened: 0 }, { years: 2, followedUp: 1, worsened: 0 }] },
  },
  hits: [
    {
      rank: 1,
      similarity: 0.98765,
      case: {
        id: 'case-0101',
        isSynthetic: false,
        image: { id: 'img-0101', eye: 'RIGHT' },
        patient: { mrn: 'MRN-400101', sex: 'FEMALE', birthYear: 1961 },
        referenceGrading: { drGrade: 4, maculopathy: true },
        diagnoses: [
          { id: 'dx-1', code: 'E11.3553', text: 'Type 2 diabetes with stable proliferative diabetic retinopathy, bilateral' },
          { id: 'dx-2', code: 'H35.81', text: 'Retinal edema' },
          { id: 'dx-2b', code: 'H35.81', text: 'Retinal edema' },
        ],
        treatments: [
          { id: 'tx-1', type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', date: '2025-03-14', eye: 'RIGHT' },
          { id: 'tx-2', type: 'PRP_LASER', agent: null, date: '2025-06-02', eye: 'BOTH' },
        ],
        followUp: {
          gradings: [
            { imageId: 'img-0102', visitDate: '2025-09-01', drGrade: 4 },
            { imageId: 'img-0103', visitDate: '2026-02-10', drGrade: 3 },
          ],
          treatments: [
            { id: 'tx-4', type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', date: '2025-09-01', eye: 'RIGHT' },
            { id: 'tx-5', type: 'ANTI_VEGF', agent: 'AFLIBERCEPT', date: '2025-10-06', eye: 'RIGHT' },
          ],
        },
      },
    },
    {
      rank: 2,
      similarity: 0.9012,
      case: {
        id: 'case-syn-0007',
        isSynthetic: true,
        image: { id: 'img-syn-0007', eye: 'RIGHT' },
        patient: { mrn: 'SYN-0007', sex: 'MALE', birthYear: 1970 },
        referenceGrading: { drGrade: 2, maculopathy: false },
        diagnoses: [{ id: 'dx-3', code: 'E11.3393', text: 'Type 2 diabetes with moderate NPDR without macular edema, bilateral' }],
        treatments: [],
        followUp: { gradings: [], treatments: [] },
      },
    },
    {
      rank: 3,
      similarity: 0.8,
      case: {
        id: 'case-0042',
        isSynthetic: false,
        image: { id: 'img-0042', eye: 'RIGHT' },
        patient: { mrn: 'MRN-400042', sex: 'MALE', birthYear: null },
        referenceGrading: { drGrade: 2, maculopathy: null },
        diagnoses: [],
        treatments: [{ id: 'tx-3', type: 'ANTI_VEGF', agent: 'RANIBIZUMAB', date: '2024-11-30', eye: 'UNSPECIFIED' }],
        followUp: { gradings: [], treatments: [] },
      },
    },
  ],
};

/**
 * A stand-in for the API: the real schema, fixed data, the local issuer's two sign-in routes (switched off with
 * `localIssuer = false`, as on a deployment with an OpenID Connect provider), and a record of every GraphQL
 * request it got. /graphql answers 401 UNAUTHENTICATED, as the real API does, without a token it issued.
 */
async function startFakeApi() {
  const schema = buildSchema(readFileSync(path.join(REPO_ROOT, 'schema.graphql'), 'utf8'));
  const rootValue = {
    similarCases: ({ input }) => {
      if (input.imageId === UNKNOWN_IMAGE_ID) {
        throw new GraphQLError(`No image with id ${UNKNOWN_IMAGE_ID}.`, { extensions: { code: 'NOT_FOUND' } });
      }
      if (input.imageId === FORBIDDEN_IMAGE_ID) {
        throw new GraphQLError('The clinician role may not search similar cases', { extensions: { code: 'FORBIDDEN', operation: 'search' } });
      }
      return SIMILAR_CASES;
    },
  };
  const fake = { localIssuer: true, requests: [], photographRequests: [] };
  const send = (response, status, payload) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(payload));
  };
  const server = http.createServer((request, response) => {
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => (raw += chunk));
    request.on('end', async () => {
      let body = null;
      try {
        body = JSON.parse(raw);
      } catch {
        // Recorded as null; the assertions on the body then fail.
      }
      if (request.url.startsWith('/auth/local/')) {
        if (!fake.localIssuer) return send(response, 404, { error: 'not found' });
        if (request.method === 'GET' && request.url === '/auth/local/users') return send(response, 200, { issuer: 'urn:test:fake', users: DEMO_USERS });
        const user = DEMO_USERS.find((candidate) => candidate.subject === body?.subject);
        if (request.method === 'POST' && request.url === '/auth/local/token' && user) {
          return send(response, 201, { token: tokenOf(user.subject), expiresAt: new Date(Date.now() + 3600_000).toISOString(), user });
        }
        return send(response, 400, { errors: [{ message: 'bad sign-in request', extensions: { code: 'BAD_USER_INPUT' } }] });
      }
      if (request.url.startsWith('/photographs/')) {
        // The web server fetches photographs for <img> as the signed-in user; this fake has none to give.
        fake.photographRequests.push({ url: request.url, authorization: request.headers.authorization ?? null });
        return send(response, 404, { errors: [{ message: 'No photograph', extensions: { code: 'NOT_FOUND' } }] });
      }
      fake.requests.push({ method: request.method, url: request.url, headers: request.headers, raw, body });
      if (!DEMO_USERS.some((user) => request.headers.authorization === `Bearer ${tokenOf(user.subject)}`)) {
        return send(response, 401, { errors: [{ message: 'Sign in', extensions: { code: 'UNAUTHENTICATED', reason: 'MISSING_CREDENTIAL' } }] });
      }
      const result = await graphql({
        schema,
        rootValue,
        source: body?.query ?? '',
        variableValues: body?.variables,
        operationName: body?.operationName,
      });
      send(response, 200, {
        ...(result.data !== undefined && { data: result.data }),
        // Like Apollo: validation failures carry a code too, so they show up in the page's alert.
        ...(result.errors && {
          errors: result.errors.map((error) => ({
            ...error.toJSON(),
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED', ...error.extensions },
          })),
        }),
      });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${server.address().port}/graphql`;
  fake.close = () => server.close();
  return fake;
}

async function readRows(page) {
  return page.locator('table.hits tbody tr').evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.replace(/\s+/g, ' ').trim())),
  );
}

test('similar-case search page in headless Chromium', { timeout: 120_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startFakeApi();
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { page } = await newPage(browser, DESKTOP);

  await t.test('signing in as demo-clinician through the sign-in page lands on the search', async () => {
    await page.goto(web.baseUrl);
    assert.equal(await readSignedInUser(page), null);
    await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(`${web.baseUrl}/signin`);
    await Promise.all([page.waitForURL(`${web.baseUrl}/search`), signInButton(page, CLINICIAN).click()]);
    assert.equal(await readSignedInUser(page), 'Signed in as Demo Clinician clinician');
    assert.deepEqual(await readNavLinks(page), ['Similar-case search', 'Patients', 'API explorer']);
  });

  await t.test('the home page links to the search', async () => {
    await page.goto(web.baseUrl);
    await page.getByRole('link', { name: 'Start a similar-case search' }).click();
    await page.waitForURL(`${web.baseUrl}/search`);
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Similar-case search');
    assert.equal(api.requests.length, 0, 'an empty form must not call the API');
  });

  await t.test('submitting grade and eye filters sends them to the API and lists the hits', async () => {
    await page.goto(`${web.baseUrl}/search`);
    await page.getByLabel('Image id').fill('img-0001');
    await page.getByLabel('Number of cases').fill('5');
    await page.getByLabel('2 – Moderate NPDR').check();
    await page.getByLabel('4 – Proliferative DR').check();
    await page.getByLabel('Eye').selectOption('RIGHT');
    await Promise.all([page.waitForURL(/imageId=img-0001/), page.getByRole('button', { name: 'Search' }).click()]);
    await page.locator('table.hits').waitFor();
    await screenshot(page, 'search-results-1280.png');

    assert.equal(api.requests.length, 1, `expected one API request, got ${api.requests.length}`);
    const [request] = api.requests;
    assert.equal(request.method, 'POST');
    assert.match(request.headers['content-type'], /^application\/json/);
    assert.equal(request.headers.authorization, `Bearer ${tokenOf(CLINICIAN.subject)}`, 'the session token goes to the API as the Bearer header');
    assert.match(request.body.query, /similarCases\(input: \$input\)/);
    assert.deepEqual(request.body.variables, {
      input: { imageId: 'img-0001', k: 5, filters: { drGrades: [2, 4], eye: 'RIGHT' } },
    });

    // Columns: rank, photograph (an image; no heat map: no hit has one), similarity, case (and its Compare link),
    // patient, eye, grade, diagnoses, treatments, what happened next.
    assert.deepEqual(await readRows(page), [
      [
        '1',
        '',
        '0.988',
        'case-0101 Compare Is case 1 relevant? Relevant Not relevant Unmarked',
        'MRN-400101 Female, born 1961',
        'Right',
        '4 – Proliferative DR',
        // Codes show, each once; each code's text is there for screen readers (and as a tooltip).
        'E11.3553 : Type 2 diabetes with stable proliferative diabetic retinopathy, bilateral H35.81 : Retinal edema',
        'Anti-VEGF (aflibercept), 2025-03-14, right eye PRP laser, 2025-06-02, both eyes',
        // Grade changes only (4 then 3), and later treatments grouped.
        'Grade 4 (2025-09) → 3 (2026-02) Anti-VEGF (aflibercept) ×2, 2025-09-01 to 2025-10-06, right eye',
      ],
      [
        '2',
        '',
        '0.901',
        'case-syn-0007 SYNTHETIC Compare Is case 2 relevant? Relevant Not relevant Unmarked',
        'SYN-0007 Male, born 1970',
        'Right',
        '2 – Moderate NPDR',
        'E11.3393 : Type 2 diabetes with moderate NPDR without macular edema, bilateral',
        '—',
        '—',
      ],
      ['3', '', '0.800', 'case-0042 Compare Is case 3 relevant? Relevant Not relevant Unmarked', 'MRN-400042 Male, birth year unknown', 'Right', '2 – Moderate NPDR', '—', 'Anti-VEGF (ranibizumab), 2024-11-30', '—'],
    ]);
    assert.deepEqual(
      await page.locator('table.hits .hit-thumbnail img').evaluateAll((images) => images.map((image) => image.getAttribute('src'))),
      ['/photographs/case-0101?size=thumbnail', '/photographs/case-syn-0007?size=thumbnail', '/photographs/case-0042?size=thumbnail'],
      'thumbnails through this site, never the API directly',
    );
    // Thumbnails load lazily: load them now, as scrolling would.
    await page.locator('.hit-thumbnail img').evaluateAll((images) => images.forEach((image) => (image.loading = 'eager')));
    await page.waitForFunction(() => [...document.querySelectorAll('.hit-thumbnail img')].every((image) => image.complete));
    const thumbnailRequests = api.photographRequests.filter((request) => request.url.endsWith('size=thumbnail'));
    assert.deepEqual(thumbnailRequests.map((request) => request.url).sort(), ['/photographs/case-0042?size=thumbnail', '/photographs/case-0101?size=thumbnail', '/photographs/case-syn-0007?size=thumbnail']);
    assert.ok(thumbnailRequests.every((request) => request.authorization === `Bearer ${tokenOf(CLINICIAN.subject)}`), "the web server asks for each photograph with the signed-in user's own token");
    assert.equal(await page.getByTestId('query-overlay').getByRole('status').innerText(), 'The photograph could not be loaded', 'a refused crop says so');
    assert.equal(await page.locator('table.hits .badge').count(), 1, 'only the synthetic case has the badge');
    assert.equal(await page.getByRole('heading', { name: '3 similar cases' }).count(), 1);

    // The form keeps what was submitted.
    assert.equal(await page.getByLabel('Image id').inputValue(), 'img-0001');
    assert.equal(await page.getByLabel('2 – Moderate NPDR').isChecked(), true);
    assert.equal(await page.getByLabel('1 – Mild NPDR').isChecked(), false);
    assert.equal(await page.getByLabel('Eye').inputValue(), 'RIGHT');
  });

  await t.test('a calibrated suggestion shows its probability per grade and P(referable)', async () => {
    const panel = page.getByTestId('suggestion');
    assert.equal(await panel.getAttribute('data-status'), 'SUGGESTED');
    assert.match(await panel.getByTestId('suggested-grade').innerText(), /^2 – Moderate NPDR$/);
    const shown = await panel.getByTestId('grade-probabilities').locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.trim())));
    const { gradeProbabilities, hitGrades } = SIMILAR_CASES.suggestion;
    assert.deepEqual(shown, gradeProbabilities.map(({ grade, probability }) => [`${Math.round(probability * 100)}%`, String(hitGrades.find((count) => count.grade === grade)?.count ?? 0)]));
    assert.match(await panel.getByTestId('referable').innerText(), /P\(referable DR, grade 2 or more\): 88% – at or above the referral threshold/);
    assert.match(await panel.getByTestId('outcomes').innerText(), /Treated after the visit: 1 of 3 \(anti-vegf 1\)/);
  });

  await t.test('an API error shows its message and code in an alert', async () => {
    api.requests.length = 0;
    await page.goto(`${web.baseUrl}/search`);
    await page.getByLabel('Image id').fill(UNKNOWN_IMAGE_ID);
    await Promise.all([page.waitForURL(/imageId=/), page.getByRole('button', { name: 'Search' }).click()]);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    await screenshot(page, 'search-error-1280.png');

    const text = await alert.innerText();
    assert.match(text, /No image with id img-does-not-exist\./);
    assert.match(text, /NOT_FOUND/);
    assert.equal(await page.locator('table.hits').count(), 0);
    assert.deepEqual(api.requests[0]?.body?.variables, { input: { imageId: UNKNOWN_IMAGE_ID, k: 10 } });
  });

  await t.test('an out-of-range k is rejected without calling the API', async () => {
    api.requests.length = 0;
    await page.goto(`${web.baseUrl}/search?imageId=img-0001&k=500`);
    assert.match(await page.locator(PAGE_ALERT).innerText(), /whole number from 1 to 100/);
    assert.equal(api.requests.length, 0);
  });

  await t.test('at 768 px the search form and results fit, the table scrolling in its own box', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await context.addCookies(await page.context().cookies());
    await narrow.goto(`${web.baseUrl}/search?imageId=img-0001&k=3`);
    await narrow.locator('table.hits').waitFor();
    await screenshot(narrow, 'search-results-768.png');
    await assertFitsWidth(narrow);
    await context.close();
  });

  await t.test('a FORBIDDEN from the API shows the refusal instead of results', async () => {
    api.requests.length = 0;
    await page.goto(`${web.baseUrl}/search?imageId=${FORBIDDEN_IMAGE_ID}`);
    const refusal = page.locator(PAGE_ALERT);
    await refusal.waitFor();
    const text = await refusal.innerText();
    assert.match(text, /Not available to the clinician role/);
    assert.match(text, /The clinician role may not search similar cases/, "the API's own message is shown");
    assert.equal(api.requests.length, 1);
    assert.equal(await page.locator('table.hits').count(), 0);
    assert.equal(await page.getByLabel('Image id').count(), 0, 'no search form for a refused role');
  });

  await t.test('a 401 from the API ends the session and asks to sign in again', async () => {
    const { page: stale, context } = await newPage(browser, DESKTOP);
    const [cookie] = await page.context().cookies();
    const session = JSON.parse(Buffer.from(cookie.value, 'base64url').toString('utf8'));
    const forged = Buffer.from(JSON.stringify({ ...session, token: 'a-token-the-api-never-issued' })).toString('base64url');
    await context.addCookies([{ ...cookie, value: forged }]);
    await stale.goto(`${web.baseUrl}/search?imageId=img-0001`);
    await stale.waitForURL(/\/signin\?/);
    const url = new URL(stale.url());
    assert.equal(url.searchParams.get('reason'), 'rejected');
    assert.equal(url.searchParams.get('next'), '/search?imageId=img-0001');
    assert.match(await stale.locator(PAGE_ALERT).innerText(), /no longer accepts your sign-in/);
    assert.equal((await context.cookies()).length, 0, 'the refused session cookie is deleted');
    assert.equal(await readSignedInUser(stale), null);
    await context.close();
  });

  await t.test("without the API's local issuer the sign-in page says the organisation's provider is not configured", async () => {
    api.localIssuer = false;
    t.after(() => (api.localIssuer = true));
    const { page: fresh, context } = await newPage(browser, DESKTOP);
    await fresh.goto(`${web.baseUrl}/signin`);
    assert.match(await fresh.getByRole('main').innerText(), /Sign-in with your organisation's provider is not configured/);
    assert.equal(await fresh.getByRole('button', { name: /^Sign in as/ }).count(), 0);
    await context.close();
  });
});
