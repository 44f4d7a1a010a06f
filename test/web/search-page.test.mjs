// The similar-case search page in a real headless Chromium, served by `next start`, talking to a fake GraphQL
// API that records what the web server sent it. The fake executes each request against the committed
// schema.graphql, so a query or variables that drift from the API's schema fail here too. Needs a built apps/web (npm test builds first; built here when
// missing) and the system Chromium (scripts/ci-setup.sh installs it); skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GraphQLError, buildSchema, graphql } from 'graphql';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = path.join(REPO_ROOT, 'apps/web');
const NEXT_BIN = path.join(REPO_ROOT, 'node_modules/next/dist/bin/next');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? os.tmpdir();

const UNKNOWN_IMAGE_ID = 'img-does-not-exist';
// The page's own alerts; Next.js adds an empty role=alert route announcer outside <main>.
const PAGE_ALERT = 'main [role="alert"]';

// Three hits in rank order; the second is synthetic and has no treatments.
const SIMILAR_CASES = {
  modelVersion: 'resnet18-arcface-2026-11-20',
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
      },
    },
  ],
};

/** A stand-in for the GraphQL API: the real schema, fixed data, and a record of every request it got. */
async function startFakeApi() {
  const schema = buildSchema(readFileSync(path.join(REPO_ROOT, 'schema.graphql'), 'utf8'));
  const rootValue = {
    similarCases: ({ input }) => {
      if (input.imageId === UNKNOWN_IMAGE_ID) {
        throw new GraphQLError(`No image with id ${UNKNOWN_IMAGE_ID}.`, { extensions: { code: 'NOT_FOUND' } });
      }
      return SIMILAR_CASES;
    },
  };
  const requests = [];
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
      requests.push({ method: request.method, url: request.url, headers: request.headers, raw, body });
      const result = await graphql({
        schema,
        rootValue,
        source: body?.query ?? '',
        variableValues: body?.variables,
        operationName: body?.operationName,
      });
      const payload = {
        ...(result.data !== undefined && { data: result.data }),
        // Like Apollo: validation failures carry a code too, so they show up in the page's alert.
        ...(result.errors && {
          errors: result.errors.map((error) => ({
            ...error.toJSON(),
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED', ...error.extensions },
          })),
        }),
      };
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(payload));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/graphql`, requests, close: () => server.close() };
}

async function findFreePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function runToCompletion(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited with ${code}`))));
  });
}

/** `next start` in its own process group, so stopping it also stops any worker it forked. */
async function startWebServer({ apiUrl }) {
  const env = { ...process.env, API_URL: apiUrl, NEXT_TELEMETRY_DISABLED: '1' };
  if (!existsSync(path.join(WEB_DIR, '.next/BUILD_ID'))) {
    await runToCompletion(process.execPath, [NEXT_BIN, 'build'], { cwd: WEB_DIR, env });
  }
  const port = await findFreePort();
  const child = spawn(process.execPath, [NEXT_BIN, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: WEB_DIR,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGTERM');
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    try {
      const response = await fetch(baseUrl);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      stop();
      throw new Error(`next start did not answer on ${baseUrl} within 30 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { baseUrl, stop, output: () => output };
}

async function readRows(page) {
  return page.locator('table.hits tbody tr').evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.replace(/\s+/g, ' ').trim())),
  );
}

test('similar-case search page in headless Chromium', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    // CI installs Chromium (scripts/ci-setup.sh), so there a missing browser is a failure, not a skip.
    if (process.env.CI === 'true') assert.fail(`chromium not installed at ${CHROMIUM}; scripts/ci-setup.sh should have installed it`);
    t.skip(`chromium not installed at ${CHROMIUM}: run scripts/ci-setup.sh (apt-get install chromium)`);
    return;
  }
  const { chromium } = await import('playwright-core');

  const api = await startFakeApi();
  t.after(() => api.close());
  const web = await startWebServer({ apiUrl: api.url });
  t.after(() => web.stop());
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(15_000);

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
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'fundus-search-results.png'), fullPage: true });

    assert.equal(api.requests.length, 1, `expected one API request, got ${api.requests.length}`);
    const [request] = api.requests;
    assert.equal(request.method, 'POST');
    assert.match(request.headers['content-type'], /^application\/json/);
    assert.match(request.body.query, /similarCases\(input: \$input\)/);
    assert.deepEqual(request.body.variables, {
      input: { imageId: 'img-0001', k: 5, filters: { drGrades: [2, 4], eye: 'RIGHT' } },
    });

    assert.deepEqual(await readRows(page), [
      [
        '1',
        '0.988',
        'case-0101',
        'MRN-400101',
        'Female',
        '1961',
        'Right',
        '4 – Proliferative DR',
        // Codes show; each code's text is there for screen readers (and as a tooltip).
        'E11.3553 : Type 2 diabetes with stable proliferative diabetic retinopathy, bilateral H35.81 : Retinal edema H35.81 : Retinal edema',
        'Anti-VEGF (aflibercept), 2025-03-14, right eye PRP laser, 2025-06-02, both eyes',
      ],
      [
        '2',
        '0.901',
        'case-syn-0007 SYNTHETIC',
        'SYN-0007',
        'Male',
        '1970',
        'Right',
        '2 – Moderate NPDR',
        'E11.3393 : Type 2 diabetes with moderate NPDR without macular edema, bilateral',
        '—',
      ],
      ['3', '0.800', 'case-0042', 'MRN-400042', 'Male', '—', 'Right', '2 – Moderate NPDR', '—', 'Anti-VEGF (ranibizumab), 2024-11-30'],
    ]);
    assert.equal(await page.locator('table.hits .badge').count(), 1, 'only the synthetic case has the badge');
    assert.equal(await page.getByRole('heading', { name: '3 similar cases' }).count(), 1);

    // The form keeps what was submitted.
    assert.equal(await page.getByLabel('Image id').inputValue(), 'img-0001');
    assert.equal(await page.getByLabel('2 – Moderate NPDR').isChecked(), true);
    assert.equal(await page.getByLabel('1 – Mild NPDR').isChecked(), false);
    assert.equal(await page.getByLabel('Eye').inputValue(), 'RIGHT');
  });

  await t.test('an API error shows its message and code in an alert', async () => {
    api.requests.length = 0;
    await page.goto(`${web.baseUrl}/search`);
    await page.getByLabel('Image id').fill(UNKNOWN_IMAGE_ID);
    await Promise.all([page.waitForURL(/imageId=/), page.getByRole('button', { name: 'Search' }).click()]);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'fundus-search-error.png'), fullPage: true });

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
});
