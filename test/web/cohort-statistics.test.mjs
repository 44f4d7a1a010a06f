// The researcher's cohort statistics page in a real headless Chromium: `next start` against the real API
// (embedded PGlite, the demo-clinic cohort so the statistics have data, the local demo issuer). Needs built
// apps/api and apps/web and the system Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import { DESKTOP, PAGE_ALERT, SCREENSHOT_DIR, TABLET, assertFitsWidth, launchChromium, newPage, screenshot, signInAs, startWebServer, fetchDemoUsers } from './browser.mjs';

const PAGE = '/cohort-statistics';

/** A rendered table as CSV lines (cells' text joined by commas), to compare with the API's csv field. */
async function readTableAsCsv(table) {
  return table.evaluate((element) =>
    [...element.querySelectorAll('thead tr, tbody tr, tfoot tr')].map((row) =>
      [...row.querySelectorAll('th, td')].map((cell) => cell.textContent.trim()).join(','),
    ),
  );
}

test('cohort statistics for a researcher against the real API in headless Chromium', { timeout: 240_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite', { cohort: 'demo-clinic' });
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const researcher = userOf('demo-researcher');
  const clinician = userOf('demo-clinician');

  const { context, page } = await newPage(browser, DESKTOP);
  await signInAs(page, web.baseUrl, researcher, { from: PAGE, landsOn: PAGE });

  await t.test('the default cohort shows its size, tables with suppressed cells, and Kaplan-Meier curves', async () => {
    const results = page.getByTestId('cohort-results');
    await results.waitFor();
    assert.equal(await page.locator(PAGE_ALERT).count(), 0, 'no error for the default cohort');
    assert.ok(Number(await page.getByTestId('cohort-patients').innerText()) >= 5);
    assert.ok(Number(await page.getByTestId('cohort-eyes').innerText()) >= Number(await page.getByTestId('cohort-patients').innerText()));
    assert.match(await page.getByTestId('cohort-k').innerText(), /^\d+$/);
    const captions = await page.locator('[data-testid="cohort-results"] table caption').allInnerTexts();
    assert.ok(captions.length >= 16, `every table has a caption (${captions.length})`);
    assert.ok(captions.some((caption) => /^Eyes by baseline ICDR grade and age band/.test(caption)));
    assert.ok(captions.some((caption) => /^Eyes by baseline grade \(rows\) and latest grade/.test(caption)));
    const suppressedCells = page.locator('td .suppressed');
    assert.ok((await suppressedCells.count()) > 0, 'at least one suppressed cell');
    assert.equal((await suppressedCells.first().innerText()).trim(), 'suppressed');
    const style = await suppressedCells.first().evaluate((element) => getComputedStyle(element).fontStyle);
    assert.equal(style, 'italic', 'suppressed cells look unlike counts');
    assert.match(await page.locator('#disclosure-note').innerText(), /disclosure control/);

    const chart = page.locator('.km-chart .recharts-wrapper > svg');
    await chart.waitFor();
    assert.ok((await chart.locator('path.recharts-curve').count()) > 0, 'the Kaplan-Meier chart draws step curves');
    const atRisk = page.locator('table[data-table="numbers-at-risk"]');
    assert.match(await atRisk.locator('caption').innerText(), /Numbers at risk/);
    assert.ok((await atRisk.locator('tbody tr').count()) >= 1);
    assert.ok((await page.locator('.chart:not(.km-chart) svg .recharts-bar-rectangle').count()) > 0, 'the grade distribution bars are drawn');
    await screenshot(page, 'cohort-statistics-1280.png');
    await assertFitsWidth(page);
  });

  await t.test('a CSV download returns text/csv whose content equals the table on the page', async () => {
    const figure = page.locator('figure[data-table="grade-per-eye-baseline-by-age-band"]');
    const href = await figure.getByRole('link', { name: /as CSV/ }).getAttribute('href');
    assert.match(href, /^\/cohort-statistics\/csv\?/);
    const response = await context.request.get(`${web.baseUrl}${href}`);
    assert.equal(response.status(), 200, await response.text());
    assert.match(response.headers()['content-type'], /^text\/csv/);
    assert.match(response.headers()['content-disposition'], /attachment; filename="cohort-grade-per-eye-baseline-by-age-band\.csv"/);
    const csv = (await response.text()).trimEnd().split('\n');
    assert.ok(csv.some((line) => line.includes('suppressed')), 'the CSV writes suppressed cells as "suppressed"');
    const shown = await readTableAsCsv(figure.locator('table'));
    assert.deepEqual(shown.map((line) => line.toLowerCase()), csv.map((line) => line.toLowerCase()));

    const unsigned = await fetch(`${web.baseUrl}${href}`, { redirect: 'manual' });
    assert.ok([303, 307].includes(unsigned.status), `without a session the CSV redirects to sign-in (${unsigned.status})`);
  });

  await t.test('stratified curves list withheld strata and the numbers at risk per stratum', async () => {
    await page.goto(`${web.baseUrl}${PAGE}?event=ONE_STEP&stratum=BASELINE_GRADE`);
    await page.getByTestId('cohort-results').waitFor();
    assert.match(await page.getByTestId('withheld-strata').innerText(), /Withheld .*Baseline grade \d/);
    assert.ok((await page.locator('table[data-table="numbers-at-risk"] tbody tr').count()) >= 2);
    assert.ok((await page.locator('.km-chart .recharts-wrapper > svg path.recharts-curve').count()) >= 2);
    await screenshot(page, 'cohort-statistics-stratified-1280.png');
    await page.locator('section[aria-labelledby="survival-heading"]').screenshot({ path: `${SCREENSHOT_DIR}/cohort-statistics-km-1280.png` });
    const { page: narrow, context: narrowContext } = await newPage(browser, TABLET);
    await narrowContext.addCookies(await context.cookies());
    await narrow.goto(`${web.baseUrl}${PAGE}?event=ONE_STEP&stratum=BASELINE_GRADE`);
    await narrow.locator('.km-chart .recharts-wrapper > svg').waitFor();
    await screenshot(narrow, 'cohort-statistics-768.png');
    await narrow.locator('section[aria-labelledby="survival-heading"]').screenshot({ path: `${SCREENSHOT_DIR}/cohort-statistics-km-768.png` });
    await narrow.locator('.cohort-form').screenshot({ path: `${SCREENSHOT_DIR}/cohort-statistics-form-768.png` });
    await assertFitsWidth(narrow);
    await narrowContext.close();
  });

  await t.test('the builder is a keyboard-usable GET form whose choices reach the address', async () => {
    await page.goto(`${web.baseUrl}${PAGE}`);
    await page.getByRole('checkbox', { name: '4 – Proliferative DR' }).focus();
    await page.keyboard.press('Space');
    await page.getByLabel('Eye', { exact: true }).focus();
    await page.keyboard.press('Tab');
    await Promise.all([page.waitForURL(/grade=4/), page.getByRole('button', { name: 'Show statistics' }).press('Enter')]);
    assert.equal(new URL(page.url()).searchParams.getAll('grade').join(), '4');
    assert.ok(await page.getByRole('checkbox', { name: '4 – Proliferative DR' }).isChecked(), 'the form shows what was asked');
  });

  await t.test('a filter too narrow is refused with COHORT_TOO_SMALL or EMPTY_COHORT, and says so', async () => {
    for (const [query, code, text] of [
      ['grade=4&sex=OTHER', 'EMPTY_COHORT', /No eye matches this cohort/],
      ['grade=4&age=UNDER_40&sex=FEMALE', 'COHORT_TOO_SMALL', /too small to show.*fewer than 5 patients/s],
    ]) {
      await page.goto(`${web.baseUrl}${PAGE}?${query}`);
      const alert = page.locator(PAGE_ALERT);
      await alert.waitFor();
      assert.equal(await alert.getAttribute('data-error-code'), code, query);
      assert.match(await alert.innerText(), text);
      assert.equal(await page.getByTestId('cohort-results').count(), 0, 'no figures for a refused cohort');
    }
    await screenshot(page, 'cohort-statistics-too-small-1280.png');
  });

  await t.test('values the page does not accept in the address are named, not ignored', async () => {
    await page.goto(`${web.baseUrl}${PAGE}?grade=7&sex=MALE&event=SOON`);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    const text = await alert.innerText();
    assert.match(text, /"7" is not an ICDR grade; grades are 0, 1, 2, 3 and 4/);
    assert.match(text, /Worsening event: "SOON" is not one of ONE_STEP, REFERABLE, PDR/);
    assert.equal(await page.getByTestId('cohort-results').count(), 0, 'nothing is computed with a dropped filter');
    assert.ok(await page.getByRole('checkbox', { name: 'Male', exact: true }).isChecked(), 'the accepted values stay in the form');
    await screenshot(page, 'cohort-statistics-bad-grade-1280.png');
    const csv = await context.request.get(`${web.baseUrl}/cohort-statistics/csv?grade=7&table=transition-matrix`);
    assert.equal(csv.status(), 400);
  });

  await t.test('a clinician opening the page gets the refusal and no statistics', async () => {
    const { page: other, context: otherContext } = await newPage(browser, DESKTOP);
    await signInAs(other, web.baseUrl, clinician, { from: PAGE, landsOn: PAGE });
    const refusal = other.locator(PAGE_ALERT);
    await refusal.waitFor();
    assert.match(await refusal.innerText(), /Not available to the clinician role/);
    assert.equal(await other.getByRole('form', { name: 'Cohort builder' }).count(), 0);
    assert.equal(await other.getByTestId('cohort-results').count(), 0);
    const csv = await otherContext.request.get(`${web.baseUrl}/cohort-statistics/csv?table=transition-matrix`);
    assert.equal(csv.status(), 403, 'the API refuses the CSV too');
    await screenshot(other, 'cohort-statistics-clinician-1280.png');
    await otherContext.close();
  });
});
