// axe-core on every page, as the role that uses it, at 1280 px and 768 px: no violation of impact serious or
// critical. `next start` against the real API (embedded PGlite, the demo-clinic cohort, the local demo issuer),
// axe.min.js injected into the page by playwright-core. Needs built apps/api and apps/web and the system
// Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import { DESKTOP, PAGE_ALERT, TABLET, launchChromium, newPage, signInAs, startWebServer, fetchDemoUsers } from './browser.mjs';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');
const BLOCKING = new Set(['serious', 'critical']);

const CASES_QUERY = /* GraphQL */ `
  query Cases {
    patients(first: 5) {
      nodes {
        mrn
        cases(first: 5) { nodes { id image { id } } }
      }
    }
  }
`;

/**
 * Runs axe in the page and returns its violations. `thirdParty`: { root, rules } — the page is checked without
 * `root`, then `root` on its own with only `rules` turned off, so the rest of its markup is still checked.
 */
async function runAxe(page, { thirdParty } = {}) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE_PATH });
  return page.evaluate(async (thirdParty) => {
    const runs = thirdParty
      ? [
          [{ exclude: [[thirdParty.root]] }, {}],
          [{ include: [[thirdParty.root]] }, { rules: Object.fromEntries(thirdParty.rules.map((rule) => [rule, { enabled: false }])) }],
        ]
      : [[document, {}]];
    const violations = [];
    for (const [context, options] of runs) violations.push(...(await window.axe.run(context, { ...options, resultTypes: ['violations'] })).violations);
    return violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      targets: violation.nodes.map((node) => `${node.target.join(' ')}${node.failureSummary ? ` (${node.failureSummary.replace(/\s+/g, ' ')})` : ''}`),
    }));
  }, thirdParty ?? null);
}

function describeViolations(violations) {
  return violations.map((violation) => `- [${violation.impact}] ${violation.id}: ${violation.help}\n    ${violation.targets.join('\n    ')}`).join('\n');
}

async function assertNoSeriousViolations(page, label, options) {
  const violations = await runAxe(page, options);
  const blocking = violations.filter((violation) => BLOCKING.has(violation.impact));
  assert.deepEqual(
    blocking.map((violation) => violation.id),
    [],
    `${label} (${page.url()}): axe violations of impact serious or critical. All violations:\n${describeViolations(violations)}`,
  );
}

test('axe-core finds no serious or critical violation on any page, at 1280 px and 768 px', { timeout: 300_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite', { cohort: 'demo-clinic' });
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);

  const listed = await api.graphql(CASES_QUERY);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  const patient = listed.body.data.patients.nodes.find((node) => node.cases.nodes.length > 0);
  assert.ok(patient, 'demo-clinic has a patient with cases');
  const someCase = patient.cases.nodes[0];

  /** Signs in once at 1280 px and hands out pages of that session at either width. */
  const sessions = new Map();
  async function pageAs(subject, viewport) {
    if (!sessions.has(subject)) {
      const { context, page } = await newPage(browser, DESKTOP);
      await signInAs(page, web.baseUrl, userOf(subject));
      sessions.set(subject, await context.cookies());
      await context.close();
    }
    const { context, page } = await newPage(browser, viewport);
    await context.addCookies(sessions.get(subject));
    t.after(() => context.close());
    return page;
  }

  const PAGES = [
    { label: 'sign-in, signed out', as: null, path: '/signin', ready: (page) => page.getByRole('button', { name: /^Sign in as / }).first().waitFor() },
    { label: 'search, empty form', as: 'demo-clinician', path: '/search', ready: (page) => page.getByLabel('Image id').waitFor() },
    { label: 'search with results', as: 'demo-clinician', path: `/search?imageId=${encodeURIComponent(someCase.image.id)}&k=5`, ready: (page) => page.locator('table.hits').waitFor() },
    { label: 'search, error', as: 'demo-clinician', path: '/search?imageId=img-does-not-exist', ready: (page) => page.locator(PAGE_ALERT).waitFor() },
    { label: 'patient', as: 'demo-clinician', path: `/patients?mrn=${encodeURIComponent(patient.mrn)}`, ready: (page) => page.getByRole('heading', { level: 1 }).waitFor() },
    { label: 'case', as: 'demo-clinician', path: `/cases/${encodeURIComponent(someCase.id)}`, ready: (page) => page.getByRole('heading', { level: 1 }).waitFor() },
    {
      label: 'cohort statistics with Kaplan-Meier chart',
      as: 'demo-researcher',
      path: '/cohort-statistics?event=ONE_STEP&stratum=BASELINE_GRADE',
      ready: async (page) => {
        await page.getByTestId('cohort-results').waitFor();
        await page.locator('.km-chart .recharts-wrapper > svg').waitFor();
      },
    },
    {
      label: 'API explorer',
      as: 'demo-admin',
      path: '/explorer',
      ready: (page) => page.locator('.graphiql-query-editor .monaco-editor').first().waitFor(),
      // GraphiQL's tab bar (third-party markup) puts each tab's close button inside the tab, a focusable
      // role=tab: axe's nested-interactive (serious). Only that rule is off, and only inside GraphiQL's root.
      axe: { thirdParty: { root: '.graphiql-container', rules: ['nested-interactive'] } },
    },
    { label: 'suggestion monitoring, no revisions yet', as: 'demo-admin', path: '/monitoring', ready: (page) => page.getByTestId('monitoring-empty').waitFor() },
    { label: 'refusal (researcher on search)', as: 'demo-researcher', path: '/search', ready: (page) => page.locator(PAGE_ALERT).waitFor() },
  ];

  await t.test('the check fails on a violation: the search form without its "Image id" label', async () => {
    const page = await pageAs('demo-clinician', DESKTOP);
    await page.goto(`${web.baseUrl}/search`);
    await page.getByLabel('Image id').waitFor();
    await page.locator('label[for="imageId"]').evaluate((label) => label.remove());
    const blocking = (await runAxe(page)).filter((violation) => BLOCKING.has(violation.impact));
    const label = blocking.find((violation) => violation.id === 'label');
    assert.ok(label, `axe reports the unlabelled input:\n${describeViolations(blocking)}`);
    assert.ok(label.targets.some((target) => target.startsWith('#imageId')), label.targets.join('\n'));
    await assert.rejects(assertNoSeriousViolations(page, 'search without label'), /\[critical\] label: .*\n\s+#imageId/);
  });

  for (const [width, viewport] of [['1280', DESKTOP], ['768', TABLET]]) {
    for (const entry of PAGES) {
      await t.test(`${entry.label} at ${width} px`, async () => {
        let page;
        if (entry.as) page = await pageAs(entry.as, viewport);
        else {
          const fresh = await newPage(browser, viewport);
          t.after(() => fresh.context.close());
          page = fresh.page;
        }
        await page.goto(`${web.baseUrl}${entry.path}`);
        assert.equal(new URL(page.url()).pathname, entry.path.split('?')[0], 'the page opened, not a redirect');
        await entry.ready(page);
        await assertNoSeriousViolations(page, `${entry.label} at ${width} px`, entry.axe);
      });
    }
  }
});
