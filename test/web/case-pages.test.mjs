// The patient and case pages in a real headless Chromium: `next start` against the real API (embedded PGlite,
// the demo-clinic cohort, which has several visits per patient, treatments and follow-up). Needs built
// apps/api and apps/web and the system Chromium; skipped only when Chromium is missing.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { startApi } from '../support/backends.mjs';
import { DESKTOP, PAGE_ALERT, TABLET, assertFitsWidth, launchChromium, newPage, readNavLinks, screenshot, signInAs, startWebServer, fetchDemoUsers } from './browser.mjs';

const PATIENTS_QUERY = /* GraphQL */ `
  query Patients {
    patients(first: 20) {
      nodes {
        mrn
        mrnSystem
        cases(first: 30) {
          nodes {
            id
            image { eye }
            visit { date }
            treatments { id date type }
            followUp { treatments { id date type } diagnoses { id date } gradings { imageId } }
            diagnoses { id date }
          }
          pageInfo { hasNextPage }
        }
      }
    }
  }
`;
const CASE_QUERY = /* GraphQL */ `
  query Case($id: ID!) {
    case(id: $id) {
      id
      patient { mrn }
      referenceGrading { drGrade drGradeName }
      gradings { drGrade }
      followUp { gradings { imageId visitDate } diagnoses { id } treatments { id } }
    }
  }
`;

const distinct = (values) => [...new Set(values)];

test('patient and case pages against the real API in headless Chromium', { timeout: 240_000 }, async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const api = await startApi('pglite', { cohort: 'demo-clinic' });
  t.after(() => api.close());
  const web = await startWebServer(t, { apiUrl: api.url });
  const { userOf } = await fetchDemoUsers(api);
  const clinician = userOf('demo-clinician');
  const researcher = userOf('demo-researcher');

  const listed = await api.graphql(PATIENTS_QUERY);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  // A patient with both eyes photographed on several dates and a treatment, all cases on one page.
  // One treated with more than observation when there is one.
  const treatmentsOf = (candidate) => candidate.cases.nodes.flatMap((item) => [...item.treatments, ...item.followUp.treatments]);
  const candidates = listed.body.data.patients.nodes.filter((candidate) => {
    const cases = candidate.cases.nodes;
    return (
      !candidate.cases.pageInfo.hasNextPage &&
      distinct(cases.map((item) => item.image.eye)).length === 2 &&
      distinct(cases.map((item) => item.visit.date)).length >= 2 &&
      treatmentsOf(candidate).length > 0
    );
  });
  const patient = candidates.find((candidate) => treatmentsOf(candidate).some((treatment) => treatment.type !== 'OBSERVATION')) ?? candidates[0];
  assert.ok(patient, 'demo-clinic has a patient with both eyes on several visits and a treatment');
  const cases = patient.cases.nodes;
  const recordDates = cases.flatMap((item) => [item.visit.date, ...[...item.diagnoses, ...item.treatments, ...item.followUp.diagnoses, ...item.followUp.treatments].map((record) => record.date)]);
  const expectedDates = distinct(recordDates).sort();
  const treatmentIds = distinct(cases.flatMap((item) => [...item.treatments, ...item.followUp.treatments].map((record) => record.id)));
  // The case to open: one with later photographs of its eye, so "what happened next" has gradings.
  const caseWithFollowUp = cases.find((item) => item.followUp.gradings.length > 0);
  assert.ok(caseWithFollowUp, 'the patient has a case with follow-up gradings');

  const { page } = await newPage(browser, DESKTOP);
  await signInAs(page, web.baseUrl, clinician, { from: '/patients', landsOn: '/patients' });

  await t.test('the clinician finds the patient by MRN through the labelled form and sees both eyes visit by visit', async () => {
    assert.ok((await readNavLinks(page)).includes('Patients'), 'the navigation links to the patient page');
    await page.getByLabel('Medical record number (MRN)').fill(patient.mrn);
    await Promise.all([page.waitForURL(/\/patients\?mrn=/), page.getByRole('button', { name: 'Find patient' }).click()]);
    await page.getByTestId('timeline').waitFor();
    assert.equal(await page.locator(PAGE_ALERT).count(), 0);
    assert.equal(await page.getByTestId('patient-mrn').innerText(), patient.mrn);
    assert.equal(await page.getByTestId('synthetic-mark').count(), 1, 'demo patients are marked synthetic');

    const dates = await page.getByTestId('visit').evaluateAll((items) => items.map((item) => item.getAttribute('data-date')));
    assert.deepEqual(dates, expectedDates, 'one row per date, oldest first');
    const shown = await page.getByTestId('photograph').evaluateAll((items) =>
      items.map((item) => ({ id: item.getAttribute('data-case-id'), eye: item.closest('[data-eye]').getAttribute('data-eye'), date: item.closest('[data-date]').getAttribute('data-date') })),
    );
    assert.deepEqual(
      shown.map((item) => `${item.id} ${item.eye} ${item.date}`).sort(),
      cases.map((item) => `${item.id} ${item.image.eye.toLowerCase()} ${item.visit.date}`).sort(),
      'every photograph under its eye on its visit date',
    );
    assert.ok(shown.some((item) => item.eye === 'right') && shown.some((item) => item.eye === 'left'));
    // Each treatment once, on its date (both-eye ones once, not under each eye).
    const treatmentsShown = await page.locator('[data-testid="timeline"] [data-testid="treatments"] li').count();
    assert.equal(treatmentsShown, treatmentIds.length);
    assert.ok(treatmentsShown > 0);
    await screenshot(page, 'patient-1280.png');
  });

  await t.test('the patient page fits a 768 px viewport', async () => {
    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: `/patients?mrn=${encodeURIComponent(patient.mrn)}` });
    await narrow.getByTestId('timeline').waitFor();
    await assertFitsWidth(narrow);
    await screenshot(narrow, 'patient-768.png');
    await context.close();
  });

  await t.test('a case page shows the reference grading and what happened next, and links back to the patient', async () => {
    const expected = (await api.graphql(CASE_QUERY, { id: caseWithFollowUp.id })).body.data.case;
    await Promise.all([page.waitForURL(new RegExp(`/cases/${caseWithFollowUp.id}$`)), page.locator(`a[href="/cases/${caseWithFollowUp.id}"]`).first().click()]);
    assert.equal(await page.getByTestId('case-id').innerText(), caseWithFollowUp.id);
    const reference = await page.getByTestId('reference-grading').innerText();
    assert.ok(expected.referenceGrading, 'demo cases are graded');
    assert.match(reference, new RegExp(`${expected.referenceGrading.drGrade} – ${expected.referenceGrading.drGradeName}`));
    assert.equal(await page.getByTestId('reference-grading').locator('[data-testid="gradings"] li').count(), expected.gradings.length);
    const followUpVisits = await page.getByTestId('follow-up-gradings').locator('li time').allInnerTexts();
    assert.deepEqual(followUpVisits, expected.followUp.gradings.map((grading) => grading.visitDate));
    const similar = page.getByRole('link', { name: 'Search similar cases' });
    assert.equal(await similar.getAttribute('href'), `/search?imageId=${caseWithFollowUp.id}`);
    await screenshot(page, 'case-1280.png');

    const { page: narrow, context } = await newPage(browser, TABLET);
    await signInAs(narrow, web.baseUrl, clinician, { from: `/cases/${caseWithFollowUp.id}` });
    await narrow.getByTestId('follow-up').waitFor();
    await assertFitsWidth(narrow);
    await screenshot(narrow, 'case-768.png');
    await context.close();

    await Promise.all([page.waitForURL(/\/patients\?mrn=/), page.getByTestId('patient-link').click()]);
    await page.getByTestId('timeline').waitFor();
    assert.equal(await page.getByTestId('patient-mrn').innerText(), expected.patient.mrn);
  });

  await t.test('an unknown MRN says there is no patient with it', async () => {
    await page.goto(`${web.baseUrl}/patients?mrn=NO-SUCH-MRN-000`);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    assert.match(await alert.innerText(), /no patient with MRN NO-SUCH-MRN-000\b/);
    assert.equal(await alert.getAttribute('data-error-code'), 'NOT_FOUND');
    assert.equal(await page.getByTestId('timeline').count(), 0);
    await screenshot(page, 'patient-unknown-mrn-1280.png');
  });

  await t.test('an unknown case id is a 404 page saying so; a malformed one gets a clear message', async () => {
    const response = await page.goto(`${web.baseUrl}/cases/${randomUUID()}`);
    assert.equal(response.status(), 404);
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Case not found');
    assert.match(await page.locator(PAGE_ALERT).innerText(), /no case with this id/);
    await screenshot(page, 'case-not-found-1280.png');

    await page.goto(`${web.baseUrl}/cases/not-a-case`);
    const alert = page.locator(PAGE_ALERT);
    await alert.waitFor();
    assert.match(await alert.innerText(), /“not-a-case” is not a case id/);
    await screenshot(page, 'case-malformed-id-1280.png');
  });

  await t.test('a researcher gets the refusal on both pages and no patient data', async () => {
    const { page: other, context } = await newPage(browser, DESKTOP);
    await signInAs(other, web.baseUrl, researcher, { from: `/patients?mrn=${encodeURIComponent(patient.mrn)}` });
    assert.equal(new URL(other.url()).pathname, '/patients');
    assert.match(await other.locator(PAGE_ALERT).innerText(), /Not available to the researcher role/);
    assert.equal(await other.getByTestId('patient').count(), 0);
    assert.equal(await other.getByLabel('Medical record number (MRN)').count(), 0);
    assert.ok(!(await readNavLinks(other)).includes('Patients'));
    await screenshot(other, 'patient-researcher-1280.png');
    await other.goto(`${web.baseUrl}/cases/${caseWithFollowUp.id}`);
    assert.match(await other.locator(PAGE_ALERT).innerText(), /Not available to the researcher role/);
    assert.equal(await other.getByTestId('reference-grading').count(), 0);
    await context.close();
  });
});
