// The clinician's search workflow in a real headless Chromium against the real API on the seeded demo database
// (embedded PGlite, the demo-clinic cohort with synthetic photographs embedded by the tiny test model, so every
// stored case has bytes and a heat map): upload a real photograph (../shared/data; a synthetic one where the data
// are absent), filter by several grades, get k hits with thumbnails and heat maps, read the facet counts, compare
// one hit side by side, open its case timeline; every filter of the form; grade=7 in the address reported; save
// an uploaded photograph as a case with its records, see each refusal in the API's words, and find the case again
// by its own photograph. Screenshots at 1280 and 768 px; axe-core on the new views. Needs built apps/api and
// apps/web and the system Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { TINY_MODEL, repositoryRoot, startApi } from '../support/backends.mjs';
import { DESKTOP, PAGE_ALERT, TABLET, assertFitsWidth, fetchDemoUsers, launchChromium, newPage, screenshot, signInAs, startWebServer } from './browser.mjs';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');
const { renderSyntheticFundus } = await import(path.join(repositoryRoot, 'apps/api/dist/fixtures/synthetic-fundus.js'));

const K = 8;
const GRADE_NAMES = ['No DR', 'Mild NPDR', 'Moderate NPDR', 'Severe NPDR', 'Proliferative DR'];
const SHARED_DATA = path.resolve(repositoryRoot, '..', 'shared', 'data');

/** Two real photographs (srahim, as photographed) or, where ../shared/data is absent, two synthetic ones. */
async function loadQueryPhotographs() {
  const labels = path.join(SHARED_DATA, 'srahim', 'labels.csv');
  if (existsSync(labels)) {
    const rows = readFileSync(labels, 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
    const pick = (grade) => rows.find((row) => row[3] === grade);
    return {
      real: true,
      photographs: [pick('2'), pick('3')].map((row) => ({ name: path.basename(row[0]), mimeType: 'image/jpeg', buffer: readFileSync(path.join(SHARED_DATA, 'srahim', row[0])) })),
    };
  }
  const make = async (seed, grade) => ({ name: `synthetic-${seed}.jpg`, mimeType: 'image/jpeg', buffer: await renderSyntheticFundus({ seed, eye: 'LEFT', grade, maculopathy: false, width: 640, height: 480 }) });
  return { real: false, photographs: [await make(91_001, 2), await make(91_002, 3)] };
}

const CASE_CHECK = /* GraphQL */ `
  query CaseCheck($id: ID!) {
    case(id: $id) {
      id
      image { eye }
      visit { date }
      patient { mrn mrnSystem sex birthYear }
      referenceGrading { drGrade grader }
      diagnoses { code text eye date }
      treatments { type agent eye date }
    }
  }
`;

async function readRows(page) {
  return page.locator('table.hits tbody tr').evaluateAll((rows) =>
    rows.map((row) => ({
      cells: [...row.querySelectorAll('td')].map((cell) => cell.innerText.replace(/\s+/g, ' ').trim()),
      caseId: row.querySelector('td a[href^="/cases/"]')?.getAttribute('href')?.split('/').pop() ?? null,
    })),
  );
}
// Columns: rank, photograph and heat map, similarity, case (and Compare), patient, eye, grade, diagnoses, treatments, next.
const gradeOf = (row) => Number(row.cells[6].split(' ')[0]);

/** Every <img> in `selector` has loaded and decoded (naturalWidth > 0); returns their natural widths. */
async function loadedImageWidths(page, selector) {
  // Thumbnails load lazily; load them all now, as scrolling would.
  await page.locator(selector).evaluateAll((images) => images.forEach((image) => (image.loading = 'eager')));
  await page.waitForFunction((selector) => [...document.querySelectorAll(selector)].every((image) => image.complete), selector);
  return page.locator(selector).evaluateAll((images) => images.map((image) => image.naturalWidth));
}

async function assertNoSeriousAxeViolations(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations.map((violation) => ({ id: violation.id, impact: violation.impact, targets: violation.nodes.map((node) => node.target.join(' ')) })));
  const blocking = violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  assert.deepEqual(blocking, [], `${label}: axe violations of impact serious or critical`);
}

test('the search workflow against the real API on the seeded demo database, in headless Chromium', { timeout: 600_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const { real, photographs } = await loadQueryPhotographs();
  if (!real) t.diagnostic(`${SHARED_DATA} is absent: searching with synthetic photographs instead of real ones`);
  const api = await startApi('pglite', { cohort: 'demo-clinic', modelPath: TINY_MODEL, photographs: true });
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const clinician = userOf('demo-clinician');

  const { page } = await newPage(browser, DESKTOP);
  const imageRequests = [];
  page.on('request', (request) => {
    if (request.resourceType() === 'image') imageRequests.push(new URL(request.url()));
  });
  await signInAs(page, web.baseUrl, clinician, { from: '/search', landsOn: '/search' });

  let uploadToken;
  let rows;
  await t.test(`a ${real ? 'real' : 'synthetic'} photograph, grades 2 and 3: ${K} hits of those grades with thumbnails and heat maps, and the query's crop with its heat map`, async () => {
    await page.getByLabel('Number of cases').fill(String(K));
    await page.getByLabel(`2 – ${GRADE_NAMES[2]}`).check();
    await page.getByLabel(`3 – ${GRADE_NAMES[3]}`).check();
    await Promise.all([page.waitForURL(/[?&]upload=upl_/), page.getByLabel('Photograph', { exact: true }).setInputFiles(photographs[0])]);
    await page.locator('table.hits').waitFor();
    const url = new URL(page.url());
    uploadToken = url.searchParams.get('upload');
    assert.deepEqual(url.searchParams.getAll('grade'), ['2', '3']);
    rows = await readRows(page);
    assert.equal(rows.length, K);
    assert.ok(rows.every((row) => [2, 3].includes(gradeOf(row))), `grades ${rows.map(gradeOf)}`);
    const similarities = rows.map((row) => Number(row.cells[2]));
    assert.deepEqual([...similarities].sort((a, b) => b - a), similarities, 'most similar first');

    const heatMaps = page.locator('table.hits .hit-attention svg[role="img"]');
    assert.equal(await heatMaps.count(), K, 'every hit has its heat map');
    const thumbnails = await loadedImageWidths(page, 'table.hits .hit-thumbnail img');
    assert.equal(thumbnails.length, K);
    assert.ok(thumbnails.every((width) => width > 0 && width <= 256), `thumbnails decoded, at most 256 px: ${thumbnails}`);
    for (const row of rows) {
      assert.ok(imageRequests.some((request) => request.origin === web.baseUrl && request.pathname === `/photographs/${row.caseId}` && request.searchParams.get('size') === 'thumbnail'), `thumbnail of ${row.caseId} from this site`);
    }
    assert.ok(imageRequests.every((request) => request.origin === web.baseUrl || request.protocol === 'data:'), 'the browser never asks the API itself');

    const overlay = page.getByTestId('query-overlay');
    const [cropWidth] = await loadedImageWidths(page, '[data-testid="query-overlay"] img');
    assert.equal(cropWidth, 512, "the model's 512 px crop of the upload");
    assert.equal(await overlay.getByRole('img', { name: 'Heat map of the uploaded photograph' }).count(), 1);
    await screenshot(page, 'search-workflow-results-1280.png');
    await assertNoSeriousAxeViolations(page, 'results with thumbnails, crop and facets');
  });

  await t.test('the query heat map toggles and fades over the crop', async () => {
    const heatMap = page.getByTestId('query-overlay').getByRole('img', { name: 'Heat map of the uploaded photograph' });
    const controls = page.locator('.query-heat-map');
    await controls.getByLabel('Show heat map').uncheck();
    assert.equal(await heatMap.count(), 0);
    assert.equal(await page.getByRole('img', { name: "The model's crop of the uploaded photograph" }).count(), 1, 'the crop stays');
    await controls.getByLabel('Show heat map').check();
    await controls.getByLabel('Heat-map opacity').fill('80');
    assert.equal(await heatMap.locator('g').getAttribute('opacity'), '0.8');
  });

  await t.test('facet counts by grade and treatment add up to the hits shown', async () => {
    const facet = async (testId) => Object.fromEntries(await page.getByTestId(testId).locator('tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('th').innerText.trim(), Number(tr.querySelector('td').innerText)])));
    const grades = await facet('facet-grades');
    for (const grade of [0, 1, 2, 3, 4]) {
      assert.equal(grades[`${grade} – ${GRADE_NAMES[grade]}`], rows.filter((row) => gradeOf(row) === grade).length, `grade ${grade}`);
    }
    const treatments = await facet('facet-treatments');
    const treated = (label) => rows.filter((row) => row.cells[8].includes(label)).length;
    assert.equal(treatments['Anti-VEGF'], treated('Anti-VEGF'));
    assert.equal(treatments['PRP laser'], treated('PRP laser'));
    assert.equal(treatments['No treatment'], rows.filter((row) => row.cells[8] === '—').length);
  });

  let compared;
  await t.test('compare shows the query and one hit side by side, both crops with their heat maps', async () => {
    compared = rows[1];
    await Promise.all([page.waitForURL(/[?&]compare=/), page.getByRole('link', { name: 'Compare case 2 with the query' }).click()]);
    const compare = page.locator('section.compare');
    await compare.waitFor();
    assert.equal(new URL(page.url()).searchParams.get('compare'), compared.caseId);
    assert.equal(new URL(page.url()).searchParams.get('upload'), uploadToken, 'same upload, no second upload');
    const widths = await loadedImageWidths(page, 'section.compare img');
    assert.deepEqual(widths, [512, 512], 'both crops loaded');
    assert.ok(imageRequests.some((request) => request.pathname === `/photographs/${compared.caseId}` && request.searchParams.get('size') === 'crop'));
    assert.equal(await compare.locator('svg[role="img"]').count(), 2, 'two heat maps');
    assert.match(await page.getByTestId('compare-hit').innerText(), new RegExp(`Similarity ${compared.cells[2]}`));
    await compare.getByLabel('Show heat map').uncheck();
    assert.equal(await compare.locator('svg[role="img"]').count(), 0, 'one toggle hides both');
    await compare.getByLabel('Show heat map').check();
    await screenshot(page, 'search-workflow-compare-1280.png');
    await assertNoSeriousAxeViolations(page, 'compare view');
  });

  await t.test('compare at 768 px fits the page', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: `/search?${new URL(page.url()).searchParams}` });
    await narrow.locator('section.compare').waitFor();
    await loadedImageWidths(narrow, 'section.compare img');
    await screenshot(narrow, 'search-workflow-compare-768.png');
    await assertFitsWidth(narrow);
    await assertNoSeriousAxeViolations(narrow, 'compare view at 768 px');
    await context.close();
  });

  await t.test("the compared hit's case timeline opens from the compare view", async () => {
    await Promise.all([page.waitForURL(/\/cases\//), page.locator('section.compare').getByRole('link', { name: 'Open the case timeline' }).click()]);
    assert.equal(await page.getByTestId('case-id').innerText(), compared.caseId);
    await page.getByRole('heading', { name: 'What happened next' }).waitFor();
  });

  await t.test('eye, sex, age range and treatment filters all hold for every hit (checked against the API)', async () => {
    const params = new URLSearchParams({ upload: uploadToken, k: '20', eye: 'LEFT', sex: 'FEMALE', ageMin: '40', ageMax: '85', treatment: 'ANTI_VEGF' });
    params.append('treatment', 'PRP_LASER');
    await page.goto(`${web.baseUrl}/search?${params}`);
    await page.locator('#results-heading').waitFor();
    const filtered = await readRows(page);
    assert.ok(filtered.length > 0, 'the demo cohort has such cases');
    for (const row of filtered) {
      const { body } = await api.graphql(CASE_CHECK, { id: row.caseId });
      const found = body.data.case;
      const age = Number(found.visit.date.slice(0, 4)) - found.patient.birthYear;
      assert.equal(found.image.eye, 'LEFT');
      assert.equal(found.patient.sex, 'FEMALE');
      assert.ok(age >= 40 && age <= 85, `age ${age}`);
      assert.ok(row.cells[8].includes('Anti-VEGF') || row.cells[8].includes('PRP laser') || row.cells[9].match(/Anti-VEGF|PRP laser/), `treated: ${row.cells[8]} / ${row.cells[9]}`);
    }
    const searchForm = page.getByRole('form', { name: 'Similar-case search' });
    assert.equal(await searchForm.getByLabel('Eye', { exact: true }).inputValue(), 'LEFT', 'the form keeps the filters');
    assert.equal(await searchForm.getByLabel('Anti-VEGF').isChecked(), true);
  });

  await t.test('grade=7 and an unknown treatment in the address are reported, and nothing is searched', async () => {
    await page.goto(`${web.baseUrl}/search?upload=${uploadToken}&k=5&grade=2&grade=7&treatment=MAGIC`);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    const text = await alert.innerText();
    assert.match(text, /DR grade "7" is not an ICDR grade/);
    assert.match(text, /Treatment "MAGIC" is not one of/);
    assert.equal(await page.locator('table.hits').count(), 0);
  });

  let savedCaseId;
  let saveToken;
  const mrn = `WEB-${Date.now()}`;
  const saveForm = () => page.getByRole('form', { name: 'Save the photograph as a case' });
  const submitSave = async () => {
    await saveForm().getByRole('button', { name: 'Save case' }).click();
    await page.getByTestId('save-outcome').waitFor();
    await page.waitForFunction(() => !document.querySelector('.save-case button[disabled]'));
  };
  await t.test('an uploaded photograph is saved as a case with its patient, visit, eye, grade, diagnosis and treatment', async () => {
    await page.goto(`${web.baseUrl}/search?k=3`);
    await Promise.all([page.waitForURL(/[?&]upload=upl_/), page.getByLabel('Photograph', { exact: true }).setInputFiles(photographs[1])]);
    await page.locator('#results-heading').waitFor();
    saveToken = new URL(page.url()).searchParams.get('upload');
    const form = saveForm();
    await form.getByLabel('Patient MRN').fill(mrn);
    await form.getByLabel('Birth year').fill('1958');
    await form.getByLabel('Sex').selectOption('MALE');
    await form.getByLabel('Visit date').fill('2025-06-02');
    await form.getByLabel('Eye photographed').selectOption('RIGHT');
    await form.getByLabel('DR grade (ICDR)').selectOption('3');
    const diagnosis = form.getByRole('group', { name: 'Diagnosis 1 (optional)' });
    await diagnosis.getByLabel('ICD-10-CM code').fill('E11.3491');
    await diagnosis.getByLabel('Description').fill('Type 2 diabetes with severe NPDR without macular edema, right eye');
    const treatment = form.getByRole('group', { name: 'Treatment 1 (optional)' });
    await treatment.getByLabel('Treatment', { exact: true }).selectOption('PRP_LASER');
    await treatment.getByLabel('Date').fill('2025-06-02');
    await screenshot(page, 'search-workflow-save-form-1280.png');
    await assertNoSeriousAxeViolations(page, 'save form');
    await submitSave();
    const outcome = page.getByTestId('save-outcome');
    assert.equal(await outcome.getAttribute('data-status'), 'ADDED', await outcome.innerText());
    savedCaseId = (await outcome.locator('a').getAttribute('href')).split('/').pop();
    const { body } = await api.graphql(CASE_CHECK, { id: savedCaseId });
    const saved = body.data.case;
    assert.deepEqual(
      { mrn: saved.patient.mrn, sex: saved.patient.sex, birthYear: saved.patient.birthYear, eye: saved.image.eye, date: saved.visit.date, grade: saved.referenceGrading.drGrade, grader: saved.referenceGrading.grader },
      { mrn, sex: 'MALE', birthYear: 1958, eye: 'RIGHT', date: '2025-06-02', grade: 3, grader: clinician.name },
    );
    assert.deepEqual(saved.diagnoses.map((d) => [d.code, d.eye, d.date]), [['E11.3491', 'RIGHT', '2025-06-02']]);
    assert.deepEqual(saved.treatments.map((tr) => [tr.type, tr.agent, tr.eye, tr.date]), [['PRP_LASER', null, 'RIGHT', '2025-06-02']]);
    await screenshot(page, 'search-workflow-saved-1280.png');
  });

  await t.test('saving again is reported as a duplicate; for another patient as a conflict naming the stored case', async () => {
    await submitSave();
    const outcome = page.getByTestId('save-outcome');
    assert.equal(await outcome.getAttribute('data-status'), 'DUPLICATE');
    assert.match(await outcome.innerText(), /Already stored for this patient and eye/);
    await saveForm().getByLabel('Patient MRN').fill(`${mrn}-OTHER`);
    await submitSave();
    assert.equal(await outcome.getAttribute('data-error-code'), 'CONFLICT');
    assert.match(await outcome.innerText(), new RegExp(`The case was not saved\\s+This photograph .* is already stored as case ${savedCaseId}, of another patient`));
    assert.equal(await outcome.locator(`a[href="/cases/${savedCaseId}"]`).count(), 1, 'links the stored case');
    await screenshot(page, 'search-workflow-save-conflict-1280.png');
    await assertNoSeriousAxeViolations(page, 'save refused');
  });

  await t.test("the API's validation is shown with its field; an expired upload token in plain words", async () => {
    await saveForm().getByLabel('Patient MRN').fill(`${mrn}-BAD`);
    await saveForm().getByRole('group', { name: 'Diagnosis 1 (optional)' }).getByLabel('ICD-10-CM code').fill('NOT-A-CODE');
    await submitSave();
    const outcome = page.getByTestId('save-outcome');
    assert.equal(await outcome.getAttribute('data-error-code'), 'BAD_USER_INPUT');
    assert.match(await outcome.innerText(), /^The case was not saved\s+.*NOT-A-CODE/s);

    await page.evaluate(() => {
      document.querySelector('.save-case input[name="uploadToken"]').value = 'upl_expiredExpiredExpired';
    });
    await saveForm().getByRole('group', { name: 'Diagnosis 1 (optional)' }).getByLabel('ICD-10-CM code').fill('E11.3491');
    await submitSave();
    assert.equal(await outcome.getAttribute('data-error-code'), 'NOT_FOUND');
    assert.match(await outcome.innerText(), /has expired \(it is kept for 10 minutes\)/);
  });

  await t.test('searching with the saved photograph finds its case', async () => {
    await page.goto(`${web.baseUrl}/search?k=3`);
    await Promise.all([page.waitForURL((url) => url.searchParams.has('upload') && url.searchParams.get('upload') !== saveToken), page.getByLabel('Photograph', { exact: true }).setInputFiles(photographs[1])]);
    const stored = page.getByTestId('stored-query');
    await stored.waitFor();
    assert.equal(await stored.locator(`a[href="/cases/${savedCaseId}"]`).count(), 1);
    assert.match(await stored.innerText(), new RegExp(`patient ${mrn}, right eye, 2025-06-02`));
    const hits = await readRows(page);
    assert.ok(hits.every((row) => row.caseId !== savedCaseId), 'never its own hit');
    await screenshot(page, 'search-workflow-found-saved-1280.png');
  });

  await t.test('results, facets and the save form fit a tablet', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: `/search?upload=${uploadToken}&k=${K}&grade=2&grade=3` });
    await narrow.locator('table.hits').waitFor();
    await loadedImageWidths(narrow, 'table.hits .hit-thumbnail img');
    await screenshot(narrow, 'search-workflow-results-768.png');
    await assertFitsWidth(narrow);
    await assertNoSeriousAxeViolations(narrow, 'results at 768 px');
    await context.close();
  });
});
