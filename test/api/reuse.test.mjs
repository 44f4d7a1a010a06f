// The CBR reuse and revise steps through the real server, on PGlite and PostgreSQL + pgvector: the suggestion
// checked against a brute-force vote computed here from the stored embeddings and grades, the calibration file
// tied to its model version, abstention, the hits' grades and outcomes, the suggestion log, the clinician's
// revision (grading, reference grade, diagnosis, agreement) and the admins' monitoring; bad input writes nothing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, repositoryRoot, startApi } from '../support/backends.mjs';
import { handWrittenCalibration, writeCalibrationFile } from '../support/reuse-calibration.mjs';

const { FIXTURE_MODEL_VERSION } = await import(path.join(repositoryRoot, 'apps', 'api', 'dist', 'fixtures', 'cohort.js'));

const CALIBRATION = handWrittenCalibration();

const SUGGESTION_FIELDS = `id status suggestedGrade suggestedGradeName confidence reason gradeProbabilities { grade probability }
  referableProbability referable voters vote { grade share neighbours } rule calibrationModelVersion
  hitGrades { grade count } ungradedHits
  outcomes { hits undatedHits treatedAfter treatments { type hits } worsening { years followedUp worsened } }`;

const SEARCH = `query S($input: SimilarCasesInput!) {
  similarCases(input: $input) {
    modelVersion
    hits { case { id referenceGrading { drGrade } visit { date } followUp { gradings { visitDate drGrade source } treatments { type } } } }
    suggestion { ${SUGGESTION_FIELDS} }
  }
}`;

const REVISE = `mutation R($input: ReviseCaseInput!) {
  reviseCase(input: $input) {
    gradingId
    case { id referenceGrading { drGrade source grader maculopathy } diagnoses { code eye } }
    suggestion { id suggestedGrade agrees status }
  }
}`;

const MONITORING = `query M($from: LocalDate, $to: LocalDate) { suggestionMonitoring(from: $from, to: $to) {
  overall { period revised compared agreed agreementRate abstained confusion }
  months { period revised compared agreed agreementRate confusion } } }`;

async function loadUniverse(db) {
  const rows = await db.sql.query(`
    SELECT fi.id, fi.patient_id, fi.dr_grade, e.embedding::text AS embedding
    FROM fundus_image fi JOIN image_embedding e ON e.image_id = fi.id WHERE e.model_version = $1`, [FIXTURE_MODEL_VERSION]);
  return rows.map((row) => ({ ...row, vector: JSON.parse(row.embedding) }));
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i += 1) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.sqrt(na * nb);
}

/** The suggestion computed from scratch: top-n graded photographs of other patients, cosine-weighted shares, power calibration. */
function expectedSuggestion(universe, queryId) {
  const query = universe.find((row) => row.id === queryId);
  const voters = universe
    .filter((row) => row.patient_id !== query.patient_id && row.dr_grade !== null)
    .map((row) => ({ id: row.id, grade: row.dr_grade, similarity: cosine(query.vector, row.vector) }))
    .sort((a, b) => b.similarity - a.similarity || (a.id < b.id ? -1 : 1))
    .slice(0, CALIBRATION.rule.neighbours);
  const weights = [0, 0, 0, 0, 0];
  for (const voter of voters) weights[voter.grade] += Math.max(voter.similarity, 0);
  const total = weights.reduce((a, b) => a + b, 0);
  const shares = weights.map((weight) => weight / total);
  const raw = shares.map((share) => (share + CALIBRATION.calibration.smoothing) ** (1 / CALIBRATION.calibration.temperature));
  const probabilities = raw.map((value) => value / raw.reduce((a, b) => a + b, 0));
  let grade = 0;
  probabilities.forEach((p, g) => { if (p > probabilities[grade]) grade = g; });
  return { shares, probabilities, grade, confidence: probabilities[grade], abstains: probabilities[grade] < CALIBRATION.minimumConfidence, referable: probabilities[2] + probabilities[3] + probabilities[4] };
}

const addYears = (date, years) => `${Number(date.slice(0, 4)) + years}${date.slice(4)}`;

for (const backend of BACKENDS) {
  describe(`reuse and revise on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let api;
    let universe;
    let written;
    before(async () => {
      written = await writeCalibrationFile(CALIBRATION);
      api = await startApi(backend, { env: { REUSE_CALIBRATION_PATH: written.file } });
      universe = await loadUniverse(api.db);
    });
    after(async () => {
      await api?.close();
      await written?.remove();
    });

    const search = async (input, as = 'demo-clinician') => {
      const { body } = await api.graphql(SEARCH, { input }, { as });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data.similarCases;
    };

    test('every stored case gets the brute-force vote, calibrated probabilities and the abstention it calls for', async () => {
      const seen = new Set();
      for (const row of universe) {
        const { suggestion } = await search({ imageId: row.id, k: 10 });
        const expected = expectedSuggestion(universe, row.id);
        assert.equal(suggestion.voters, CALIBRATION.rule.neighbours);
        suggestion.vote.forEach((vote) => assert.ok(Math.abs(vote.share - expected.shares[vote.grade]) < 1e-6, `share of grade ${vote.grade}`));
        suggestion.gradeProbabilities.forEach((p) => assert.ok(Math.abs(p.probability - expected.probabilities[p.grade]) < 1e-6, `probability of grade ${p.grade}`));
        assert.ok(Math.abs(suggestion.gradeProbabilities.reduce((sum, p) => sum + p.probability, 0) - 1) < 1e-9);
        assert.ok(Math.abs(suggestion.referableProbability - expected.referable) < 1e-6);
        assert.equal(suggestion.referable, expected.referable >= CALIBRATION.referableThreshold);
        assert.equal(suggestion.calibrationModelVersion, FIXTURE_MODEL_VERSION);
        if (expected.abstains) {
          assert.equal(suggestion.status, 'ABSTAINED');
          assert.equal(suggestion.suggestedGrade, null);
          assert.match(suggestion.reason, /disagree too much/);
        } else {
          assert.equal(suggestion.status, 'SUGGESTED');
          assert.equal(suggestion.suggestedGrade, expected.grade);
          assert.equal(suggestion.reason, null);
        }
        seen.add(suggestion.status);
      }
      assert.deepEqual([...seen].sort(), ['ABSTAINED', 'SUGGESTED'], 'the fixture exercises both outcomes');
    });

    test('a filtered search still votes over the plain neighbourhood; the hit summary describes the hits shown', async () => {
      const row = universe[3];
      const plain = await search({ imageId: row.id, k: 10 });
      const filtered = await search({ imageId: row.id, k: 10, filters: { drGrades: [4] }, excludeSamePatient: false });
      assert.deepEqual(filtered.suggestion.vote, plain.suggestion.vote, 'filters do not bias the vote');
      // The hits are those of the same search without the suggestion (which finds its voters in the same scan).
      for (const input of [{ imageId: row.id, k: 10 }, { imageId: row.id, k: 30 }, { imageId: row.id, k: 10, filters: { drGrades: [4] }, excludeSamePatient: false }, { imageId: row.id, k: 7, filters: { eye: 'LEFT' } }]) {
        const { body } = await api.graphql('query S($input: SimilarCasesInput!) { similarCases(input: $input) { hits { similarity case { id } } } }', { input });
        const withSuggestion = await search(input);
        assert.deepEqual(withSuggestion.hits.map((hit) => hit.case.id), body.data.similarCases.hits.map((hit) => hit.case.id), JSON.stringify(input));
      }
      assert.ok(filtered.hits.every((hit) => hit.case.referenceGrading.drGrade === 4));
      assert.deepEqual(filtered.suggestion.hitGrades.map((g) => g.count), [0, 0, 0, 0, filtered.hits.length]);
      for (const result of [plain, filtered]) {
        const counts = [0, 0, 0, 0, 0];
        for (const hit of result.hits) counts[hit.case.referenceGrading.drGrade] += 1;
        assert.deepEqual(result.suggestion.hitGrades.map((g) => g.count), counts);
        const outcomes = result.suggestion.outcomes;
        assert.equal(outcomes.hits, result.hits.length);
        assert.equal(outcomes.treatedAfter, result.hits.filter((hit) => hit.case.followUp.treatments.length > 0).length);
        for (const window of outcomes.worsening) {
          const inWindow = (hit) => hit.case.followUp.gradings.filter((g) => g.source !== 'MODEL_SUGGESTION' && g.visitDate <= addYears(hit.case.visit.date, window.years));
          assert.equal(window.followedUp, result.hits.filter((hit) => inWindow(hit).length > 0).length, `followed up within ${window.years} y`);
          assert.equal(window.worsened, result.hits.filter((hit) => inWindow(hit).some((g) => g.drGrade > hit.case.referenceGrading.drGrade)).length, `worsened within ${window.years} y`);
        }
        for (const { type, hits } of outcomes.treatments) assert.equal(hits, result.hits.filter((hit) => hit.case.followUp.treatments.some((t) => t.type === type)).length);
      }
    });

    test('the suggestion is logged when selected, and only then', async () => {
      const row = universe[5];
      const before = (await countRows(api.db)).suggestion_log;
      const { body } = await api.graphql('query($id: ID!) { similarCases(input: { imageId: $id, k: 5 }) { hits { rank } } }', { id: row.id });
      assert.equal(body.errors, undefined);
      assert.equal((await countRows(api.db)).suggestion_log, before, 'a search without the suggestion writes nothing');
      const { suggestion } = await search({ imageId: row.id, k: 5 });
      const [logged] = await api.db.sql.query('SELECT subject, model_version, image_id::text AS image_id, status, suggested_grade, voters, probabilities FROM suggestion_log WHERE id = $1', [suggestion.id]);
      assert.deepEqual(
        { subject: logged.subject, model: logged.model_version, image: logged.image_id, status: logged.status, grade: logged.suggested_grade, voters: logged.voters },
        { subject: 'demo-clinician', model: FIXTURE_MODEL_VERSION, image: row.id, status: suggestion.status, grade: suggestion.suggestedGrade, voters: CALIBRATION.rule.neighbours },
      );
      assert.equal(logged.probabilities.length, 5);
    });

    test('reviseCase stores the clinician grading as the reference grade with the diagnosis, and compares it with the suggestion', async () => {
      const row = universe.find((candidate) => !expectedSuggestion(universe, candidate.id).abstains);
      const { suggestion } = await search({ imageId: row.id, k: 5 });
      const corrected = (suggestion.suggestedGrade + 1) % 5;
      const before = await countRows(api.db);
      const { body } = await api.graphql(REVISE, { input: { caseId: row.id, drGrade: corrected, maculopathy: true, diagnosis: { icd10Code: 'E11.3411', text: 'Type 2 diabetes with severe NPDR with macular edema, right eye' }, suggestionId: suggestion.id } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const revised = body.data.reviseCase;
      assert.deepEqual(revised.case.referenceGrading, { drGrade: corrected, source: 'CLINICIAN', grader: 'demo-clinician', maculopathy: true });
      assert.ok(revised.case.diagnoses.some((d) => d.code === 'E11.3411'));
      assert.deepEqual(revised.suggestion, { id: suggestion.id, suggestedGrade: suggestion.suggestedGrade, agrees: false, status: 'SUGGESTED' });
      const after = await countRows(api.db);
      assert.equal(after.grading, before.grading + 1);
      assert.equal(after.diagnosis, before.diagnosis + 1);
      const [image] = await api.db.sql.query('SELECT dr_grade FROM fundus_image WHERE id = $1', [row.id]);
      assert.equal(image.dr_grade, corrected, 'fundus_image.dr_grade is the new reference grade');
      const [log] = await api.db.sql.query('SELECT clinician_grade, agrees, revised_by, revised_at, revised_grading_id::text AS grading FROM suggestion_log WHERE id = $1', [suggestion.id]);
      assert.deepEqual({ grade: log.clinician_grade, agrees: log.agrees, by: log.revised_by, grading: log.grading }, { grade: corrected, agrees: false, by: 'demo-clinician', grading: revised.gradingId });
      assert.ok(log.revised_at);
      const [audit] = await api.db.sql.query("SELECT outcome, image_ids::text[] AS image_ids FROM audit_event WHERE operation = 'revise-case' ORDER BY seq DESC LIMIT 1");
      assert.deepEqual(audit, { outcome: 'OK', image_ids: [row.id] });

      // Confirming without a suggestion id compares with the latest suggestion for the photograph.
      const again = await search({ imageId: row.id, k: 5 });
      const confirm = await api.graphql(REVISE, { input: { caseId: row.id, drGrade: again.suggestion.suggestedGrade ?? 0 } });
      assert.equal(confirm.body.errors, undefined, JSON.stringify(confirm.body.errors));
      assert.equal(confirm.body.data.reviseCase.suggestion.id, again.suggestion.id);
    });

    test('suggestionMonitoring gives admins the agreement rate and confusion matrix by month, matching the log', async () => {
      const rows = await api.db.sql.query("SELECT to_char(revised_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, suggested_grade, clinician_grade, status FROM suggestion_log WHERE revised_at IS NOT NULL");
      assert.ok(rows.length >= 2);
      const { body } = await api.graphql(MONITORING, {}, { as: 'demo-admin' });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const { overall, months } = body.data.suggestionMonitoring;
      const compared = rows.filter((row) => row.suggested_grade !== null);
      assert.equal(overall.revised, rows.length);
      assert.equal(overall.compared, compared.length);
      assert.equal(overall.agreed, compared.filter((row) => row.suggested_grade === row.clinician_grade).length);
      assert.equal(overall.abstained, rows.filter((row) => row.status === 'ABSTAINED').length);
      assert.ok(Math.abs(overall.agreementRate - overall.agreed / overall.compared) < 1e-12);
      const confusion = Array.from({ length: 5 }, () => [0, 0, 0, 0, 0]);
      for (const row of compared) confusion[row.suggested_grade][row.clinician_grade] += 1;
      assert.deepEqual(overall.confusion, confusion);
      assert.deepEqual(months.map((m) => m.period), [...new Set(rows.map((row) => row.month))].sort());
      const future = await api.graphql(MONITORING, { from: '2999-01-01' }, { as: 'demo-admin' });
      assert.equal(future.body.data.suggestionMonitoring.overall.revised, 0);
      const past = await api.graphql(MONITORING, { to: '2000-01-01' }, { as: 'demo-admin' });
      assert.equal(past.body.data.suggestionMonitoring.overall.revised, 0);
      const today = new Date().toISOString().slice(0, 10);
      const upToToday = await api.graphql(MONITORING, { from: today, to: today }, { as: 'demo-admin' });
      assert.equal(upToToday.body.data.suggestionMonitoring.overall.revised, rows.length, 'to is inclusive of its day');
      const reversed = await api.graphql(MONITORING, { from: '2026-02-01', to: '2026-01-01' }, { as: 'demo-admin' });
      assert.equal(reversed.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      const clinician = await api.graphql(MONITORING, {}, { as: 'demo-clinician' });
      assert.equal(clinician.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    });

    test('bad revisions get a stable code and write nothing', async () => {
      const row = universe[7];
      const other = universe.find((candidate) => candidate.id !== row.id);
      const { suggestion } = await search({ imageId: other.id, k: 3 });
      const cases = [
        ['a case that does not exist', { caseId: '00000000-0000-4000-8000-000000000000', drGrade: 1 }, 'NOT_FOUND', 'caseId'],
        ['a malformed case id', { caseId: 'not-a-uuid', drGrade: 1 }, 'BAD_USER_INPUT', 'caseId'],
        ['grade 5', { caseId: row.id, drGrade: 5 }, 'BAD_USER_INPUT', 'drGrade'],
        ['grade -1', { caseId: row.id, drGrade: -1 }, 'BAD_USER_INPUT', 'drGrade'],
        ['an unknown ICD-10-CM code', { caseId: row.id, drGrade: 1, diagnosis: { icd10Code: 'E11.38', text: 'x' } }, 'BAD_USER_INPUT', 'diagnosis.icd10Code'],
        ["another photograph's suggestion", { caseId: row.id, drGrade: 1, suggestionId: suggestion.id }, 'BAD_USER_INPUT', 'suggestionId'],
        ['an unknown suggestion', { caseId: row.id, drGrade: 1, suggestionId: '00000000-0000-4000-8000-000000000001' }, 'NOT_FOUND', 'suggestionId'],
      ];
      for (const [name, input, code, field] of cases) {
        const before = await countRows(api.db);
        const [revisedBefore] = await api.db.sql.query('SELECT count(*)::int AS n FROM suggestion_log WHERE revised_at IS NOT NULL');
        const [gradeBefore] = await api.db.sql.query('SELECT dr_grade FROM fundus_image WHERE id = $1', [row.id]);
        const { body } = await api.graphql(REVISE, { input });
        assert.equal(body.errors?.[0]?.extensions?.code, code, `${name}: ${JSON.stringify(body.errors)}`);
        assert.equal(body.errors[0].extensions.field, field, name);
        assert.deepEqual(await countRows(api.db), before, `${name} writes nothing`);
        assert.deepEqual((await api.db.sql.query('SELECT count(*)::int AS n FROM suggestion_log WHERE revised_at IS NOT NULL'))[0], revisedBefore, name);
        assert.deepEqual((await api.db.sql.query('SELECT dr_grade FROM fundus_image WHERE id = $1', [row.id]))[0], gradeBefore, name);
      }
    });
  });
}

describe('a calibration for another model version is not used, and says why', () => {
  let api;
  let written;
  before(async () => {
    written = await writeCalibrationFile({ ...CALIBRATION, modelVersion: '9.9.9+wdeadbeef' });
    api = await startApi('pglite', { env: { REUSE_CALIBRATION_PATH: written.file } });
  });
  after(async () => {
    await api?.close();
    await written?.remove();
  });

  test('UNCALIBRATED: a plain 10-NN vote, no probabilities, the reason naming both versions', async () => {
    const [row] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
    const { body } = await api.graphql(SEARCH, { input: { imageId: row.id, k: 3 } });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    const { suggestion } = body.data.similarCases;
    assert.equal(suggestion.status, 'UNCALIBRATED');
    assert.equal(suggestion.gradeProbabilities, null);
    assert.equal(suggestion.referableProbability, null);
    assert.equal(suggestion.calibrationModelVersion, null);
    assert.equal(suggestion.voters, 10, 'the plain vote of ten, although only three hits were asked for');
    assert.match(suggestion.reason, new RegExp(`fitted for model 9\\.9\\.9\\+wdeadbeef.*${FIXTURE_MODEL_VERSION.replace(/[.+]/g, '\\$&')}`));
    const counts = suggestion.vote.map((vote) => vote.neighbours);
    assert.equal(suggestion.suggestedGrade, counts.indexOf(Math.max(...counts)));
  });
});
