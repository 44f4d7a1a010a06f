// Search by a new photograph in a real headless Chromium: `next start` against the real API (embedded PGlite,
// the test-clinic cohort, the tiny test model), twelve stored cases embedded with that model from synthetic
// photographs as in test/api/upload.test.mjs. The clinician uploads through the page's file input, sees the
// hits with their heat maps and the query's model crop with its overlay, changes a filter without uploading again, and is told in
// plain words when the image is not a fundus photograph. Needs built apps/api and apps/web (npm test builds
// first) and the system Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { TINY_MODEL, repositoryRoot, startApi } from '../support/backends.mjs';
import { DESKTOP, PAGE_ALERT, TABLET, assertFitsWidth, launchChromium, newPage, screenshot, signInAs, startWebServer, fetchDemoUsers } from './browser.mjs';

const { makeSyntheticFundusPng } = await import(path.join(repositoryRoot, 'apps/api/dist/embedding/testing/fixtures.js'));
const { upsertImageEmbedding } = await import(path.join(repositoryRoot, 'apps/api/dist/search/similar-images.js'));

const EMBEDDED_CASES = 12;
const K = 5;
const GRADE_NAMES = ['No DR', 'Mild NPDR', 'Moderate NPDR', 'Severe NPDR', 'Proliferative DR'];

async function readRows(page) {
  return page.locator('table.hits tbody tr').evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.replace(/\s+/g, ' ').trim())),
  );
}

test('search by an uploaded photograph with heat maps, in headless Chromium against the real API', { timeout: 240_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite', { modelPath: TINY_MODEL });
  t.after(() => api.close());
  const photographs = [];
  const embeddedCaseIds = [];
  const cases = await api.db.sql.query(`SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT ${EMBEDDED_CASES}`);
  for (const [index, row] of cases.entries()) {
    const png = await makeSyntheticFundusPng({ width: 480, height: 360, tint: index / EMBEDDED_CASES });
    const result = await api.embedder.embedImage(png);
    await upsertImageEmbedding(api.db.prisma, { imageId: row.id, modelVersion: api.embedder.metadata.modelVersion, embedding: result.embedding, attention: result.attention });
    photographs.push(png);
    embeddedCaseIds.push(row.id);
  }
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const clinician = userOf('demo-clinician');

  const { page } = await newPage(browser, DESKTOP);
  const uploadsSent = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/search/upload') uploadsSent.push(request);
  });
  await signInAs(page, web.baseUrl, clinician, { from: '/search', landsOn: '/search' });

  let uploadToken;
  let firstRows;
  await t.test('choosing a synthetic fundus photograph runs the search: k hits with heat maps and the query overlay', async () => {
    await page.getByLabel('Number of cases').fill(String(K));
    await Promise.all([
      page.waitForURL(/[?&]upload=upl_/),
      page.getByLabel('Photograph', { exact: true }).setInputFiles({ name: 'fundus.png', mimeType: 'image/png', buffer: photographs[5] }),
    ]);
    await page.locator('table.hits').waitFor();
    const url = new URL(page.url());
    uploadToken = url.searchParams.get('upload');
    assert.match(uploadToken, /^upl_/);
    assert.equal(url.searchParams.get('k'), String(K), 'the filters typed before choosing the photograph apply');
    assert.equal(url.searchParams.has('imageId'), false);
    assert.equal(uploadsSent.length, 1);
    assert.equal(uploadsSent[0].headers()['content-type'], 'image/png', 'the bytes go with the file type');

    firstRows = await readRows(page);
    assert.equal(firstRows.length, K);
    assert.equal(await page.getByRole('heading', { name: `${K} similar cases` }).count(), 1);
    // The stored case with the same picture comes first, as good as identical.
    assert.equal(firstRows[0][3].split(' ')[0], embeddedCaseIds[5]);
    assert.ok(Number(firstRows[0][2]) > 0.999, `similarity ${firstRows[0][2]}`);
    for (const row of firstRows) assert.ok(embeddedCaseIds.includes(row[3].split(' ')[0]), 'only cases embedded by the tiny model');
    const similarities = firstRows.map((row) => Number(row[2]));
    assert.deepEqual([...similarities].sort((a, b) => b - a), similarities, 'most similar first');

    const thumbnails = page.locator('table.hits tbody .hit-attention svg[role="img"]');
    assert.equal(await thumbnails.count(), K, 'each hit has its heat-map thumbnail');
    const cells = Number(await thumbnails.first().getAttribute('data-cells'));
    assert.ok(cells >= 4, `a grid of cells, got ${cells}`);
    assert.equal(await thumbnails.first().locator('rect').count(), cells);

    const overlay = page.getByTestId('query-overlay');
    assert.equal(await overlay.getByRole('img', { name: "The model's crop of the uploaded photograph", exact: true }).count(), 1, "the model's crop of the chosen file");
    await page.waitForFunction(() => document.querySelector('[data-testid="query-overlay"] img')?.complete);
    assert.equal(await overlay.locator('img').evaluate((image) => image.naturalWidth), 512, 'served by the API through this site');
    assert.equal(await overlay.getByRole('img', { name: 'Heat map of the uploaded photograph' }).count(), 1);
    assert.match(await page.locator('.query-heat-map figcaption').innerText(), /its attention over the square it saw/);
    await screenshot(page, 'search-upload-results-1280.png');
  });

  await t.test('the overlay toggles off and on, and its opacity follows the slider', async () => {
    const heatMap = page.getByRole('img', { name: 'Heat map of the uploaded photograph' });
    const toggle = page.getByLabel('Show heat map');
    assert.equal(await toggle.isChecked(), true);
    await toggle.uncheck();
    assert.equal(await heatMap.count(), 0, 'hidden');
    assert.equal(await page.getByRole('img', { name: "The model's crop of the uploaded photograph", exact: true }).count(), 1, 'the photograph stays');
    await screenshot(page, 'search-upload-overlay-off-1280.png');
    await toggle.check();
    assert.equal(await heatMap.count(), 1);
    await page.getByLabel('Heat-map opacity').fill('80');
    assert.equal(await heatMap.locator('g').getAttribute('opacity'), '0.8');
  });

  await t.test('changing a grade filter runs the search again with the same upload, without uploading again', async () => {
    const gradeOf = (row) => Number(row[6].split(' ')[0]);
    const grade = gradeOf(firstRows[1]);
    await page.getByLabel(`${grade} – ${GRADE_NAMES[grade]}`).check();
    await Promise.all([page.waitForURL(/[?&]grade=/), page.getByRole('button', { name: 'Search', exact: true }).click()]);
    await page.locator('table.hits').waitFor();
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('upload'), uploadToken, 'the address keeps the upload');
    assert.deepEqual(url.searchParams.getAll('grade'), [String(grade)]);
    assert.equal(uploadsSent.length, 1, 'no second upload');
    const rows = await readRows(page);
    assert.ok(rows.length > 0 && rows.length <= K);
    assert.ok(rows.every((row) => gradeOf(row) === grade), `every hit has grade ${grade}: ${rows.map((row) => row[6]).join(', ')}`);
    assert.notDeepEqual(rows, firstRows, 'the filter changed the hits');
    assert.equal(await page.getByLabel(`${grade} – ${GRADE_NAMES[grade]}`).isChecked(), true, 'the form keeps the filter');
    assert.equal(await page.getByRole('img', { name: "The model's crop of the uploaded photograph", exact: true }).count(), 1, 'the crop is shown again after the reload');
    await screenshot(page, 'search-upload-grade-filter-1280.png');
  });

  await t.test('a plain grey image is refused in plain words: not a fundus photograph', async () => {
    const grey = await sharp({ create: { width: 400, height: 300, channels: 3, background: '#808080' } }).png().toBuffer();
    await page.goto(`${web.baseUrl}/search`);
    await page.getByLabel('Photograph', { exact: true }).setInputFiles({ name: 'grey.png', mimeType: 'image/png', buffer: grey });
    const alert = page.locator(`${PAGE_ALERT}[data-error-code]`);
    await alert.waitFor();
    assert.equal(await alert.getAttribute('data-error-code'), 'BAD_USER_INPUT');
    assert.match(await alert.innerText(), /This does not look like a fundus photograph: the image is uniform/);
    assert.equal(new URL(page.url()).search, '', 'no search was run');
    assert.equal(await page.locator('table.hits').count(), 0);
    await screenshot(page, 'search-upload-no-fundus-1280.png');
  });

  await t.test('a file that is not an image at all gets its own message', async () => {
    await page.getByLabel('Photograph', { exact: true }).setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photograph') });
    const alert = page.locator(`${PAGE_ALERT}[data-error-code]`);
    await page.waitForFunction(() => !document.querySelector('main [role="alert"]')?.textContent?.includes('fundus photograph:'));
    assert.equal(await alert.getAttribute('data-error-code'), 'UNSUPPORTED_MEDIA_TYPE');
    assert.match(await alert.innerText(), /cannot be searched with/);
  });

  await t.test('dropping a photograph on the drop zone uploads and searches with it', async () => {
    await page.goto(`${web.baseUrl}/search?k=3`);
    const bytes = [...photographs[2]];
    const dataTransfer = await page.evaluateHandle((data) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(data)], 'dropped.png', { type: 'image/png' }));
      return transfer;
    }, bytes);
    const before = uploadsSent.length;
    await Promise.all([page.waitForURL(/[?&]upload=upl_/), page.getByRole('group', { name: 'Photograph drop zone' }).dispatchEvent('drop', { dataTransfer })]);
    await page.locator('table.hits').waitFor();
    assert.equal(uploadsSent.length, before + 1);
    assert.notEqual(new URL(page.url()).searchParams.get('upload'), uploadToken, 'a new upload token');
    const rows = await readRows(page);
    assert.equal(rows.length, 3);
    assert.equal(rows[0][3].split(' ')[0], embeddedCaseIds[2], 'the dropped picture finds its stored case first');
  });

  await t.test('the upload page fits a tablet', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: `/search?upload=${uploadToken}&k=${K}` });
    await narrow.locator('table.hits').waitFor();
    await narrow.waitForFunction(() => document.querySelector('[data-testid="query-overlay"] img')?.complete);
    assert.equal(await narrow.getByTestId('query-overlay').locator('img').evaluate((image) => image.naturalWidth), 512, 'another tab gets the crop from the API too');
    await screenshot(narrow, 'search-upload-768.png');
    await assertFitsWidth(narrow);
    await context.close();
  });
});
