// The case-based reasoning cycle on the search page, in headless Chromium against the real API on the seeded demo
// database (embedded PGlite, the demo-clinic cohort embedded by the tiny region test model, which has the
// contract's feature_map output and a region head): the suggestion panel shows what the API suggests for the same
// search (grade or abstention, calibrated probabilities, P(referable), outcomes of similar patients); the
// clinician's reading of the stored query photograph is recorded through reviseCase (refusals by code, nothing
// written) and the case then shows it; relevance marks refine the search, the address keeps the refined search and
// a reload shows the same hits; the compare view's correspondence maps are explainSimilarity's grids, value by
// value; a rectangle drawn on the crop runs the region search and the page's hits are the API's. A second, small
// API and web server on the plain tiny model (no feature map) show the refusal path: MODEL_UNAVAILABLE by code.
// Screenshots at 1280 and 768 px; axe-core on the new controls. Needs built apps/api and apps/web and the system
// Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { TINY_MODEL, TINY_REGION_MODEL, startApi } from '../support/backends.mjs';
import { handWrittenCalibration, writeCalibrationFile } from '../support/reuse-calibration.mjs';
import { DESKTOP, TABLET, assertFitsWidth, fetchDemoUsers, launchChromium, newPage, screenshot, signInAs, startWebServer } from './browser.mjs';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');
const K = 8;

const FIRST_CASES = /* GraphQL */ `
  query FirstCases {
    patients(first: 5) { nodes { cases(first: 5) { nodes { id referenceGrading { drGrade } } } } }
  }
`;
const SUGGESTION = /* GraphQL */ `
  query Suggestion($input: SimilarCasesInput!) {
    similarCases(input: $input) {
      searchId
      hits { case { id } }
      suggestion {
        status suggestedGrade reason confidence referableProbability
        gradeProbabilities { grade probability }
        hitGrades { grade count }
        outcomes { hits treatedAfter worsening { years followedUp worsened } }
      }
    }
  }
`;
const CASE_GRADING = /* GraphQL */ `
  query CaseGrading($id: ID!) {
    case(id: $id) { referenceGrading { drGrade maculopathy source grader } diagnoses { code } }
  }
`;
const REFINE = /* GraphQL */ `
  mutation Refine($input: RelevanceFeedbackInput!) {
    submitRelevanceFeedback(input: $input) { recorded refined { hits { case { id } } } }
  }
`;

const EXPLAIN = /* GraphQL */ `
  query Explain($input: ExplainSimilarityInput!) {
    explainSimilarity(input: $input) { queryMap { width height values } hitMap { width height values } matches { similarity } }
  }
`;

// A calibration for the tiny region model's version (hand-written: the tiny model is untrained), so the panel's
// calibrated view (probability per grade, P(referable), abstention) is drawn from the real API's answer.
const TINY_REGION_CALIBRATION = handWrittenCalibration({
  modelVersion: 'tiny-test-regions-1',
  rule: { neighbours: 15, weighting: 'similarity', softmaxTemperature: null, decision: 'argmax' },
  minimumConfidence: 0.3,
});

const percent = (value) => `${(value * 100).toFixed(0)}%`;
const hitIds = (page) => page.locator('table.hits tbody tr').evaluateAll((rows) => rows.map((row) => row.querySelector('td a[href^="/cases/"]').getAttribute('href').split('/').pop()));

async function assertNoSeriousAxeViolations(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations.map((violation) => ({ id: violation.id, impact: violation.impact, targets: violation.nodes.map((node) => node.target.join(' ')) })));
  const blocking = violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  assert.deepEqual(blocking, [], `${label}: axe violations of impact serious or critical`);
}

test('reuse, revise and relevance feedback on the search page, against the real API, in headless Chromium', { timeout: 600_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const written = await writeCalibrationFile(TINY_REGION_CALIBRATION);
  t.after(written.remove);
  const api = await startApi('pglite', { cohort: 'demo-clinic', modelPath: TINY_REGION_MODEL, photographs: true, env: { REUSE_CALIBRATION_PATH: written.file } });
  t.after(() => api.close());
  assert.equal(api.embedder.metadata.modelVersion, TINY_REGION_CALIBRATION.modelVersion, 'the calibration is for the loaded model');
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const clinician = userOf('demo-clinician');

  const listed = await api.graphql(FIRST_CASES);
  const query = listed.body.data.patients.nodes.flatMap((patient) => patient.cases.nodes).find((found) => found.referenceGrading);
  assert.ok(query, 'the demo cohort has a graded case');
  const searchPath = `/search?imageId=${query.id}&k=${K}`;

  const { page } = await newPage(browser, DESKTOP);
  await signInAs(page, web.baseUrl, clinician, { from: searchPath });
  await page.locator('table.hits').waitFor();

  await t.test('the suggestion panel shows what the API suggests for the same search', async () => {
    const { body } = await api.graphql(SUGGESTION, { input: { imageId: query.id, k: K } });
    const expected = body.data.similarCases.suggestion;
    assert.ok(['SUGGESTED', 'ABSTAINED'].includes(expected.status), `a calibrated suggestion, not ${expected.status}: ${expected.reason}`);
    const panel = page.getByTestId('suggestion');
    assert.equal(await panel.getAttribute('data-status'), expected.status);
    const headline = await panel.getByTestId('suggested-grade').innerText();
    if (expected.status === 'ABSTAINED') {
      assert.equal(headline, 'Abstained');
      assert.match(await panel.getByTestId('suggestion-reason').innerText(), new RegExp(`^Abstained: ${expected.reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    } else if (expected.suggestedGrade !== null) assert.match(headline, new RegExp(`^${expected.suggestedGrade} – `));
    const shown = await panel.getByTestId('grade-probabilities').locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.trim())));
    assert.deepEqual(
      shown,
      expected.gradeProbabilities.map(({ grade, probability }) => [percent(probability), String(expected.hitGrades.find((count) => count.grade === grade)?.count ?? 0)]),
    );
    assert.match(await panel.getByTestId('referable').innerText(), new RegExp(`P\\(referable DR, grade 2 or more\\): ${percent(expected.referableProbability)}`));
    const outcomes = await panel.getByTestId('outcomes').innerText();
    assert.match(outcomes, new RegExp(`Treated after the visit: ${expected.outcomes.treatedAfter} of ${expected.outcomes.hits}`));
    for (const window of expected.outcomes.worsening) {
      assert.match(outcomes, new RegExp(`Worse within ${window.years} years?: ${window.worsened} of ${window.followedUp} followed up`));
    }
    await screenshot(page, 'cbr-suggestion-1280.png');
    await assertNoSeriousAxeViolations(page, 'suggestion, revise form and relevance marks');
  });

  const reviseForm = () => page.getByRole('form', { name: 'Confirm or correct the grade' });
  const submitReading = async () => {
    await reviseForm().getByRole('button', { name: 'Record my reading' }).click();
    await page.getByTestId('revise-outcome').waitFor();
    await page.waitForFunction(() => !document.querySelector('.revise-case button[disabled]'));
  };
  const corrected = (query.referenceGrading.drGrade + 1) % 5;

  await t.test("a refused reading shows the API's code and writes nothing", async () => {
    await reviseForm().getByLabel('DR grade').selectOption(String(corrected));
    await reviseForm().getByLabel('Diagnosis code (optional)').fill('NOT-A-CODE');
    await reviseForm().getByLabel('Diagnosis description').fill('Type 2 diabetes with mild NPDR');
    await submitReading();
    const outcome = page.getByTestId('revise-outcome');
    assert.equal(await outcome.getAttribute('data-error-code'), 'BAD_USER_INPUT', await outcome.innerText());
    assert.match(await outcome.innerText(), /^The reading was not recorded/);
    const { body } = await api.graphql(CASE_GRADING, { id: query.id });
    assert.equal(body.data.case.referenceGrading.drGrade, query.referenceGrading.drGrade, 'the reference grade is unchanged');
    assert.notEqual(body.data.case.referenceGrading.source, 'CLINICIAN');
  });

  await t.test("the clinician's corrected grade, maculopathy and diagnosis become the case's reference grading", async () => {
    await reviseForm().getByLabel('Maculopathy').selectOption('yes');
    await reviseForm().getByLabel('Diagnosis code (optional)').fill('E11.3291');
    await reviseForm().getByLabel('Diagnosis description').fill('Type 2 diabetes with mild NPDR without macular edema, right eye');
    await submitReading();
    const outcome = page.getByTestId('revise-outcome');
    assert.equal(await outcome.getAttribute('data-error-code'), null, await outcome.innerText());
    assert.match(await outcome.innerText(), new RegExp(`now has grade ${corrected} – .*maculopathy \\(clinician ${clinician.subject}\\)`));
    const { body } = await api.graphql(CASE_GRADING, { id: query.id });
    assert.deepEqual(body.data.case.referenceGrading, { drGrade: corrected, maculopathy: true, source: 'CLINICIAN', grader: clinician.subject });
    assert.ok(body.data.case.diagnoses.some((diagnosis) => diagnosis.code === 'E11.3291'));
    await screenshot(page, 'cbr-revised-1280.png');

    const { page: casePage, context } = await newPage(browser, DESKTOP);
    await signInAs(casePage, web.baseUrl, clinician, { from: `/cases/${query.id}` });
    const text = await casePage.locator('main').innerText();
    assert.match(text, new RegExp(`Clinician by ${clinician.subject}`));
    await context.close();
  });

  await t.test('relevance marks refine the search; the address keeps the refined search and a reload shows it again', async () => {
    await page.goto(`${web.baseUrl}${searchPath}`);
    await page.locator('table.hits').waitFor();
    const before = await hitIds(page);
    await page.getByRole('group', { name: 'Is case 1 relevant?' }).getByLabel('Relevant', { exact: true }).check();
    await page.getByRole('group', { name: 'Is case 2 relevant?' }).getByLabel('Not relevant').check();
    await page.getByRole('group', { name: 'Is case 3 relevant?' }).getByLabel('Not relevant').check();
    await Promise.all([page.waitForURL(/[?&]search=/), page.getByRole('button', { name: 'Refine' }).click()]);
    await page.getByTestId('refined').waitFor();
    assert.match(await page.getByTestId('refined').innerText(), /Refined with your 3 relevance marks/);
    const url = new URL(page.url());
    const searchId = url.searchParams.get('search');
    assert.equal(url.searchParams.get(`mark:${before[0]}`), 'relevant');
    assert.equal(url.searchParams.get(`mark:${before[1]}`), 'irrelevant');
    const refined = await hitIds(page);
    assert.equal(refined.length, K);
    // The same marks on the same search replace the stored ones; the API's refinement is the page's.
    const { body } = await api.graphql(REFINE, { input: { searchId, marks: [{ caseId: before[0], relevant: true }, { caseId: before[1], relevant: false }, { caseId: before[2], relevant: false }] } });
    assert.equal(body.data.submitRelevanceFeedback.recorded, 3);
    assert.deepEqual(refined, body.data.submitRelevanceFeedback.refined.hits.map((hit) => hit.case.id));
    await screenshot(page, 'cbr-refined-1280.png');
    await assertNoSeriousAxeViolations(page, 'refined search');

    await page.reload();
    await page.getByTestId('refined').waitFor();
    assert.deepEqual(await hitIds(page), refined, 'a reload shows the same refined hits');
  });

  await t.test('a mark on a case that was not a hit of the search is refused by code', async () => {
    const url = new URL(page.url());
    const { body } = await api.graphql(REFINE, { input: { searchId: url.searchParams.get('search'), marks: [{ caseId: '00000000-0000-4000-8000-000000000000', relevant: true }] } });
    const code = body.errors?.[0]?.extensions?.code;
    assert.ok(code, 'the API refuses it');
    await page.goto(`${web.baseUrl}${searchPath}&search=${url.searchParams.get('search')}&mark:00000000-0000-4000-8000-000000000000=relevant`);
    const alert = page.locator(`[data-error-code="${code}"]`);
    await alert.waitFor();
    assert.match(await alert.innerText(), /^The search was not refined/);
  });

  await t.test('the compare view switches both maps to which regions of query and hit correspond (explainSimilarity)', async () => {
    await page.goto(`${web.baseUrl}${searchPath}`);
    await page.locator('table.hits').waitFor();
    const [, second] = await hitIds(page);
    await Promise.all([page.waitForURL(/[?&]compare=/), page.getByRole('link', { name: 'Compare case 2 with the query' }).click()]);
    const compare = page.locator('section.compare');
    await compare.waitFor();
    const { body } = await api.graphql(EXPLAIN, { input: { imageId: query.id, caseId: second } });
    assert.equal(body.errors, undefined, `the region model explains: ${JSON.stringify(body.errors)}`);
    const hint = compare.getByTestId('explanation-hint');
    const correspondence = compare.getByLabel('Which regions correspond');
    const expected = body.data.explainSimilarity;
    assert.match(await hint.innerText(), new RegExp(`${expected.matches.length} strongest mutual matches`));
    await correspondence.check();
    const maps = compare.getByRole('img', { name: /^Correspondence map of / });
    assert.equal(await maps.count(), 2, 'a correspondence map on each side');
    // The API's grids, one drawn cell per value.
    assert.equal(await maps.nth(0).getAttribute('viewBox'), `0 0 ${expected.queryMap.width} ${expected.queryMap.height}`);
    assert.equal(await maps.nth(1).getAttribute('viewBox'), `0 0 ${expected.hitMap.width} ${expected.hitMap.height}`);
    assert.equal(Number(await maps.nth(0).getAttribute('data-cells')), expected.queryMap.values.length);
    assert.deepEqual([expected.queryMap.width, expected.queryMap.height], [8, 8], "the region model's feature grid");
    // Every cell drawn is the API's value for that cell, in row-major order, on both sides.
    const drawn = (map) => map.locator('rect').evaluateAll((cells) => cells.map((cell) => Number(cell.getAttribute('data-value'))));
    assert.deepEqual(await drawn(maps.nth(0)), expected.queryMap.values);
    assert.deepEqual(await drawn(maps.nth(1)), expected.hitMap.values);
    assert.ok(expected.matches.length > 0, 'some regions correspond');
    await screenshot(page, 'cbr-explanation-1280.png');
    await assertNoSeriousAxeViolations(page, 'compare view with correspondence maps');
    await compare.getByLabel('Where the model looked (attention)').check();
    assert.equal(await compare.getByRole('img', { name: /^Heat map of / }).count(), 2, 'back to the attention maps');
  });

  await t.test('search by region: a rectangle drawn on the crop fills the region fields; the search runs with it', async () => {
    await page.goto(`${web.baseUrl}${searchPath}`);
    await page.locator('table.hits').waitFor();
    const frame = page.getByTestId('region-frame');
    await frame.scrollIntoViewIfNeeded();
    const box = await frame.boundingBox();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.45, { steps: 4 });
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.6, { steps: 4 });
    await page.mouse.up();
    await page.getByTestId('region-box').waitFor();
    const filled = await Promise.all(['Left (%)', 'Top (%)', 'Width (%)', 'Height (%)'].map(async (label) => Number(await page.getByLabel(label).inputValue())));
    for (const [value, wanted] of filled.map((value, index) => [value, [20, 30, 50, 30][index]])) assert.ok(Math.abs(value - wanted) < 2, `region ${filled} near 20, 30, 50, 30`);
    await screenshot(page, 'cbr-region-drawn-1280.png');
    await assertNoSeriousAxeViolations(page, 'region drawing and fields');
    await Promise.all([page.waitForURL(/[?&]regionX=/), page.getByRole('button', { name: 'Search this region' }).click()]);
    await page.locator('#results-heading, [data-error-code]').first().waitFor();
    const region = { x: filled[0] / 100, y: filled[1] / 100, width: filled[2] / 100, height: filled[3] / 100 };
    const { body } = await api.graphql(SUGGESTION, { input: { imageId: query.id, k: K, region } });
    assert.equal(body.errors, undefined, `the region model searches by region: ${JSON.stringify(body.errors)}`);
    assert.equal(await page.locator('main [data-error-code]').count(), 0, 'the page searched without an error');
    assert.deepEqual(await hitIds(page), body.data.similarCases.hits.map((hit) => hit.case.id), "the page's hits are the API's region search");
    // The page's own search was recorded with that rectangle (the API's search log).
    const [recorded] = await api.db.sql.query("SELECT region FROM similar_case_search WHERE subject = 'demo-clinician' AND region IS NOT NULL AND id <> $1 ORDER BY created_at DESC LIMIT 1", [body.data.similarCases.searchId]);
    for (const key of ['x', 'y', 'width', 'height']) assert.ok(Math.abs(recorded.region[key] - region[key]) < 1e-9, `recorded region ${JSON.stringify(recorded.region)}`);
    await screenshot(page, 'cbr-region-results-1280.png');
  });

  await t.test('a region of zero width, or outside the photograph, is reported and nothing is searched', async () => {
    await page.goto(`${web.baseUrl}${searchPath}&regionX=10&regionY=10&regionWidth=0&regionHeight=20`);
    assert.match(await page.locator('.alert[role="alert"]').first().innerText(), /must have a width and a height above 0/);
    assert.equal(await page.locator('table.hits').count(), 0);
    await page.goto(`${web.baseUrl}${searchPath}&regionX=80&regionY=10&regionWidth=30&regionHeight=20`);
    assert.match(await page.locator('.alert[role="alert"]').first().innerText(), /must lie inside the photograph/);
    assert.equal(await page.locator('table.hits').count(), 0);
  });

  await t.test('suggestion, revise form and marks fit a tablet', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: searchPath });
    await narrow.locator('table.hits').waitFor();
    await screenshot(narrow, 'cbr-suggestion-768.png');
    await assertFitsWidth(narrow);
    await assertNoSeriousAxeViolations(narrow, 'CBR controls at 768 px');
    await context.close();
  });
});

test('on a model without a feature map, explanation and region search are refused by code in the browser', { timeout: 300_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  // The plain tiny model (no feature_map output, no region head) on the smallest cohort: only the refusals matter.
  const api = await startApi('pglite', { cohort: 'mini-clinic', modelPath: TINY_MODEL, photographs: true });
  t.after(() => api.close());
  assert.equal(api.embedder.supportsRegions, false);
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const listed = await api.graphql(FIRST_CASES);
  const query = listed.body.data.patients.nodes.flatMap((patient) => patient.cases.nodes)[0];
  const searchPath = `/search?imageId=${query.id}&k=3`;
  const { page } = await newPage(browser, DESKTOP);
  await signInAs(page, web.baseUrl, userOf('demo-clinician'), { from: searchPath });
  await page.locator('table.hits').waitFor();
  const [first] = await hitIds(page);

  // No calibration for this model version: the panel shows the plain vote's hit grades and says why.
  const suggested = await api.graphql(SUGGESTION, { input: { imageId: query.id, k: 3 } });
  const uncalibrated = suggested.body.data.similarCases.suggestion;
  assert.equal(uncalibrated.status, 'UNCALIBRATED');
  const panel = page.getByTestId('suggestion');
  assert.equal(await panel.getAttribute('data-status'), 'UNCALIBRATED');
  assert.deepEqual((await panel.getByTestId('hit-grades').locator('tbody td').allInnerTexts()).map(Number), uncalibrated.hitGrades.map((count) => count.count));
  assert.equal(await panel.getByTestId('grade-probabilities').count(), 0, 'no probabilities without a calibration');
  assert.equal(await panel.getByTestId('suggestion-reason').innerText(), uncalibrated.reason);
  assert.match(uncalibrated.reason, /^Uncalibrated: /);

  const explained = await api.graphql(EXPLAIN, { input: { imageId: query.id, caseId: first } });
  assert.equal(explained.body.errors?.[0]?.extensions?.code, 'MODEL_UNAVAILABLE');
  await Promise.all([page.waitForURL(/[?&]compare=/), page.getByRole('link', { name: 'Compare case 1 with the query' }).click()]);
  const compare = page.locator('section.compare');
  await compare.waitFor();
  assert.match(await compare.getByTestId('explanation-hint').innerText(), /No correspondence maps: .*\(error code MODEL_UNAVAILABLE\)/);
  assert.equal(await compare.getByLabel('Which regions correspond').isDisabled(), true);
  assert.equal(await compare.getByRole('img', { name: /^Heat map of / }).count(), 2, 'the attention maps stay');
  await screenshot(page, 'cbr-explanation-refused-1280.png');
  await assertNoSeriousAxeViolations(page, 'compare view without correspondence maps');

  const region = { x: 0.2, y: 0.3, width: 0.5, height: 0.3 };
  const searched = await api.graphql(SUGGESTION, { input: { imageId: query.id, k: 3, region } });
  assert.equal(searched.body.errors?.[0]?.extensions?.code, 'MODEL_UNAVAILABLE');
  await page.goto(`${web.baseUrl}${searchPath}&regionX=20&regionY=30&regionWidth=50&regionHeight=30`);
  const alert = page.locator('main [data-error-code="MODEL_UNAVAILABLE"]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /The search failed[\s\S]*no feature_map output or region head/);
  assert.equal(await page.locator('table.hits').count(), 0);
  await screenshot(page, 'cbr-region-refused-1280.png');
});
