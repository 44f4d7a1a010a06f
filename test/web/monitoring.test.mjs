// The admins' monitoring page (/monitoring) in headless Chromium against the real API (embedded PGlite, the
// test-clinic cohort, with a hand-written calibration under which some suggestions abstain): before any revision it says so; revisions are then seeded through the API as a clinician
// would make them (a search with the suggestion selected, then reviseCase with its id, some agreeing, some not)
// and every figure on the page (counts, agreement rate, the month table behind the chart, both confusion
// matrices) equals the API's suggestionMonitoring for the same range. The range is in the address; a date that
// does not exist or a range that ends before it starts is reported and no query reaches the API (its audit log
// says so). Clinicians and researchers get the refusal with the API's FORBIDDEN code and no link. axe-core at
// 1280 and 768 px; screenshots in test-artifacts/web/. Needs built apps/api and apps/web and the system
// Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import { handWrittenCalibration, writeCalibrationFile } from '../support/reuse-calibration.mjs';
import { DESKTOP, PAGE_ALERT, TABLET, assertFitsWidth, fetchDemoUsers, launchChromium, newPage, readNavLinks, screenshot, signInAs, startWebServer } from './browser.mjs';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');
const PAGE = '/monitoring';
const LINK = 'Suggestion monitoring';

// A calibration for the fixture vectors (as test/api/reuse.test.mjs uses), so that some suggestions abstain.
const CALIBRATION = handWrittenCalibration();

const MONITORING = /* GraphQL */ `
  query Monitoring($from: LocalDate, $to: LocalDate) {
    suggestionMonitoring(from: $from, to: $to) {
      overall { period revised compared agreed agreementRate abstained confusion }
      months { period revised compared agreed agreementRate abstained confusion }
    }
  }
`;
const FIRST_CASES = /* GraphQL */ `
  query FirstCases { patients(first: 50) { nodes { cases(first: 1) { nodes { id } } } } }
`;
const SUGGEST = /* GraphQL */ `
  query Suggest($input: SimilarCasesInput!) { similarCases(input: $input) { suggestion { id status suggestedGrade } } }
`;
const REVISE = /* GraphQL */ `
  mutation Revise($input: ReviseCaseInput!) { reviseCase(input: $input) { suggestion { id agrees } } }
`;

/** As the page writes a rate (lib/suggestion-monitoring.ts formatAgreementRate). */
const formatRate = (rate) => (rate === null ? '–' : `${(rate * 100).toFixed(1)} %`);

async function assertNoSeriousAxeViolations(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations.map((violation) => ({ id: violation.id, impact: violation.impact, targets: violation.nodes.map((node) => node.target.join(' ')) })));
  const blocking = violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  assert.deepEqual(blocking, [], `${label}: axe violations of impact serious or critical`);
}

/** The counts block of one period as the page shows it. */
async function readCounts(page, testId) {
  const block = page.getByTestId(testId);
  const field = async (name) => (await block.locator(`dd[data-field="${name}"]`).innerText()).trim();
  return {
    period: await block.getAttribute('data-period'),
    revised: Number(await field('revised')),
    compared: Number(await field('compared')),
    agreed: Number(await field('agreed')),
    abstained: Number(await field('abstained')),
    agreementRate: await field('agreement-rate'),
    // The exact value behind the rounded percentage.
    exactRate: await block.locator('dd[data-field="agreement-rate"]').getAttribute('data-value'),
  };
}

const expectedCounts = (period) => ({ period: period.period, revised: period.revised, compared: period.compared, agreed: period.agreed, abstained: period.abstained, agreementRate: formatRate(period.agreementRate), exactRate: String(period.agreementRate) });

/** A confusion matrix table as numbers, rows = suggested grade. */
const readMatrix = (page, testId) => page.getByTestId(testId).locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => Number(cell.innerText.trim()))));

const countMonitoringAudits = async (api) => (await api.db.sql.query("SELECT count(*)::int AS n FROM audit_event WHERE operation = 'read-suggestion-monitoring'"))[0].n;

test('suggestion monitoring for admins against the real API, in headless Chromium', { timeout: 420_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const written = await writeCalibrationFile(CALIBRATION);
  t.after(written.remove);
  const api = await startApi('pglite', { cohort: 'test-clinic', env: { REUSE_CALIBRATION_PATH: written.file } });
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const admin = userOf('demo-admin');

  const { context, page } = await newPage(browser, DESKTOP);
  await signInAs(page, web.baseUrl, admin, { from: PAGE, landsOn: PAGE });

  const apiMonitoring = async (variables = {}) => {
    const { body } = await api.graphql(MONITORING, variables, { as: 'demo-admin' });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    return body.data.suggestionMonitoring;
  };

  await t.test('before any revision the page says so plainly, and the navigation links it for the admin', async () => {
    assert.equal((await apiMonitoring()).overall.revised, 0, 'the seeded cohort has no revisions');
    assert.ok((await readNavLinks(page)).includes(LINK));
    const empty = page.getByTestId('monitoring-empty');
    await empty.waitFor();
    assert.match(await empty.innerText(), /^No revisions yet/);
    assert.equal(await page.getByTestId('monitoring-results').count(), 0);
    assert.equal(await page.locator(PAGE_ALERT).count(), 0);
    await screenshot(page, 'monitoring-empty-1280.png');
    await assertNoSeriousAxeViolations(page, 'monitoring, empty');
  });

  // Revisions as a clinician makes them: a search showing the suggestion, then the reading with its id; some
  // readings agree with the suggestion, some correct it, and some follow an abstention (nothing to compare).
  const listed = await api.graphql(FIRST_CASES);
  const caseIds = listed.body.data.patients.nodes.flatMap((patient) => patient.cases.nodes.map((found) => found.id));
  const wanted = { agreed: 6, disagreed: 5, abstained: 3 };
  // Every suggestion first, then the readings: a reading changes the reference grade, and with it later votes.
  const shown = [];
  for (const caseId of caseIds) {
    const { body } = await api.graphql(SUGGEST, { input: { imageId: caseId, k: 5 } });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    shown.push({ caseId, suggestion: body.data.similarCases.suggestion });
  }
  const abstained = shown.filter(({ suggestion }) => suggestion.suggestedGrade === null).slice(0, wanted.abstained);
  const suggested = shown.filter(({ suggestion }) => suggestion.suggestedGrade !== null);
  const readings = [
    ...suggested.slice(0, wanted.agreed).map(({ caseId, suggestion }) => ({ kind: 'agreed', caseId, suggestion, drGrade: suggestion.suggestedGrade })),
    ...suggested.slice(wanted.agreed, wanted.agreed + wanted.disagreed).map(({ caseId, suggestion }, index) => ({ kind: 'disagreed', caseId, suggestion, drGrade: (suggestion.suggestedGrade + 1 + (index % 4)) % 5 })),
    ...abstained.map(({ caseId, suggestion }, index) => ({ kind: 'abstained', caseId, suggestion, drGrade: index % 5 })),
  ];
  const seeded = { agreed: 0, disagreed: 0, abstained: 0 };
  for (const { kind, caseId, suggestion, drGrade } of readings) {
    const revised = await api.graphql(REVISE, { input: { caseId, drGrade, suggestionId: suggestion.id } });
    assert.equal(revised.body.errors, undefined, JSON.stringify(revised.body.errors));
    assert.equal(revised.body.data.reviseCase.suggestion.agrees, kind === 'abstained' ? null : kind === 'agreed');
    seeded[kind] += 1;
  }
  t.diagnostic(`seeded revisions: ${JSON.stringify(seeded)}`);
  assert.deepEqual(seeded, wanted, 'the cohort gives agreeing, correcting and abstained readings');

  await t.test("every figure on the page is the API's: counts, agreement rate, the months behind the chart, both confusion matrices", async () => {
    const expected = await apiMonitoring();
    assert.deepEqual(
      [expected.overall.revised, expected.overall.compared, expected.overall.agreed, expected.overall.abstained],
      [14, wanted.agreed + wanted.disagreed, wanted.agreed, wanted.abstained],
      'the API counts the seeded revisions',
    );
    await page.goto(`${web.baseUrl}${PAGE}`);
    await page.getByTestId('monitoring-results').waitFor();
    assert.deepEqual(await readCounts(page, 'overall-counts'), expectedCounts(expected.overall));
    assert.deepEqual(await readMatrix(page, 'confusion-overall'), expected.overall.confusion);

    const months = await page.getByTestId('months-table').locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('th, td')].map((cell) => cell.innerText.trim())));
    assert.deepEqual(months, expected.months.map((month) => [month.period, String(month.revised), String(month.compared), String(month.agreed), formatRate(month.agreementRate), String(month.abstained)]));
    // The chart draws one point per month that has a rate.
    const chart = page.locator('.agreement-chart .recharts-wrapper > svg');
    await chart.waitFor();
    assert.equal(await chart.locator('.recharts-line-dot, .recharts-dot').count(), expected.months.filter((month) => month.agreementRate !== null).length);

    // The chosen month defaults to the latest; its counts and matrix are that month's.
    const latest = expected.months.at(-1);
    assert.deepEqual(await readCounts(page, 'month-counts'), expectedCounts(latest));
    assert.deepEqual(await readMatrix(page, 'confusion-month'), latest.confusion);
    assert.equal(await page.getByLabel('Month', { exact: true }).inputValue(), latest.period);
    await screenshot(page, 'monitoring-1280.png');
    await assertNoSeriousAxeViolations(page, 'monitoring with revisions at 1280 px');
  });

  await t.test('the date range is in the address and reaches the API; a month can be chosen', async () => {
    const today = new Date().toISOString().slice(0, 10);
    await page.getByLabel('From (inclusive)').fill(today);
    await page.getByLabel('To (inclusive)').fill(today);
    await Promise.all([page.waitForURL(/[?&]to=/), page.getByRole('button', { name: 'Show', exact: true }).click()]);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('from'), today);
    assert.equal(url.searchParams.get('to'), today);
    const expected = await apiMonitoring({ from: today, to: today });
    assert.deepEqual(await readCounts(page, 'overall-counts'), expectedCounts(expected.overall));
    assert.deepEqual(await readMatrix(page, 'confusion-overall'), expected.overall.confusion);

    await Promise.all([page.waitForURL(/[?&]month=/), page.getByRole('button', { name: 'Show this month' }).click()]);
    const chosen = new URL(page.url());
    assert.equal(chosen.searchParams.get('from'), today, 'choosing a month keeps the range');
    const month = expected.months.find((candidate) => candidate.period === chosen.searchParams.get('month'));
    assert.ok(month);
    assert.deepEqual(await readMatrix(page, 'confusion-month'), month.confusion);

    await page.goto(`${web.baseUrl}${PAGE}?month=2000-01`);
    assert.match(await page.getByTestId('month-empty').innerText(), /^No revisions in 2000-01\./);

    await page.goto(`${web.baseUrl}${PAGE}?from=2999-01-01`);
    assert.equal((await apiMonitoring({ from: '2999-01-01' })).overall.revised, 0);
    assert.match(await page.getByTestId('monitoring-empty').innerText(), /^No revisions from 2999-01-01 on/);
  });

  await t.test('a date that does not exist, or a range that ends before it starts, is reported and nothing is asked of the API', async () => {
    for (const [query, text] of [
      ['from=2026-02-30', /From: "2026-02-30" is not a date/],
      ['from=yesterday&to=2026-01-01', /From: "yesterday" is not a date/],
      ['from=2026-03-01&to=2026-02-01', /The range ends \(2026-02-01\) before it starts \(2026-03-01\)/],
      ['month=2026-13', /Month: "2026-13" is not a month/],
    ]) {
      const before = await countMonitoringAudits(api);
      await page.goto(`${web.baseUrl}${PAGE}?${query}`);
      const alert = page.locator(PAGE_ALERT);
      await alert.waitFor();
      assert.equal(await alert.getAttribute('data-error-code'), 'INVALID_FILTER', query);
      assert.match(await alert.innerText(), text);
      assert.equal(await page.getByTestId('monitoring-results').count(), 0, `no figures for ${query}`);
      assert.equal(await countMonitoringAudits(api), before, `no monitoring query reached the API for ${query}`);
    }
    await screenshot(page, 'monitoring-bad-date-1280.png');
    // The check counts queries that do reach it.
    const before = await countMonitoringAudits(api);
    await page.goto(`${web.baseUrl}${PAGE}?from=2026-01-01`);
    await page.getByTestId('monitoring-results').waitFor();
    assert.equal(await countMonitoringAudits(api), before + 1);
  });

  await t.test('fits a tablet, and axe finds nothing serious there', async () => {
    const { page: narrow, context: narrowContext } = await newPage(browser, TABLET);
    await narrowContext.addCookies(await context.cookies());
    await narrow.goto(`${web.baseUrl}${PAGE}`);
    await narrow.locator('.agreement-chart .recharts-wrapper > svg').waitFor();
    await screenshot(narrow, 'monitoring-768.png');
    await assertFitsWidth(narrow);
    await assertNoSeriousAxeViolations(narrow, 'monitoring at 768 px');
    await narrowContext.close();
  });

  for (const subject of ['demo-clinician', 'demo-researcher']) {
    await t.test(`${subject} gets the refusal with the API's FORBIDDEN code, no figures and no link`, async () => {
      const user = userOf(subject);
      const { body } = await api.graphql(MONITORING, {}, { as: subject });
      assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN', 'the API refuses this role');
      const { page: other, context: otherContext } = await newPage(browser, DESKTOP);
      await signInAs(other, web.baseUrl, user, { from: PAGE, landsOn: PAGE });
      const refusal = other.locator(PAGE_ALERT);
      await refusal.waitFor();
      assert.equal(await refusal.getAttribute('data-error-code'), 'FORBIDDEN');
      assert.match(await refusal.innerText(), new RegExp(`Not available to the ${user.role} role[\\s\\S]*Error code: FORBIDDEN`));
      assert.equal(await other.getByTestId('monitoring-results').count(), 0);
      assert.equal(await other.getByRole('form', { name: 'Date range' }).count(), 0);
      assert.ok(!(await readNavLinks(other)).includes(LINK), 'no link to the page');
      await screenshot(other, `monitoring-refused-${user.role}-1280.png`);
      await assertNoSeriousAxeViolations(other, `refusal for ${user.role}`);
      await otherContext.close();
    });
  }
});
