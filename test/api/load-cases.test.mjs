// loadCases (case.service.ts) reads a page of cases in one statement, each part a JSON array. Checked here against
// an oracle that reads the same cases another way, through Prisma's ORM (its own queries, Date and Decimal values),
// and applies the documented rules: a case's diagnoses and treatments are those of its eye dated on or before its
// visit; later ones, and the gradings of the eye's later photographs, are its follow-up. Every photograph of the
// cohort, with every part and with parts left out, on both databases.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, createTestDatabase, POSTGRES_SKIP_REASON, repositoryRoot } from '../support/backends.mjs';

const api = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const day = (date) => date.toISOString().slice(0, 10);
const appliesTo = (laterality, eye) => laterality === eye || laterality === 'BOTH' || laterality === 'UNSPECIFIED';

/** The cases as the oracle reads them (ORM queries, rules applied in JavaScript). */
async function oracleCases(prisma, ids, names, undated) {
  const byOldest = [{ gradedOn: 'asc' }, { createdAt: 'asc' }, { id: 'asc' }];
  const images = await prisma.fundusImage.findMany({
    where: { id: { in: ids } },
    include: {
      visit: true,
      gradings: { orderBy: byOldest },
      patient: {
        include: {
          dataset: true,
          hba1cReadings: { orderBy: [{ measuredOn: 'asc' }, { id: 'asc' }] },
          externalLinks: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] },
          diagnoses: { orderBy: [{ diagnosedOn: 'asc' }, { id: 'asc' }] },
          treatments: { orderBy: [{ performedOn: 'asc' }, { id: 'asc' }] },
          images: { include: { visit: true, gradings: { orderBy: byOldest } } },
        },
      },
    },
  });
  const grading = (g) => ({
    id: g.id, drGrade: g.drGrade, drGradeName: names[g.drGrade], maculopathy: g.maculopathy, macularEdemaRisk: g.macularEdemaRisk,
    source: g.source, grader: g.grader, originalScale: g.originalScale, originalValue: g.originalValue, date: day(g.gradedOn),
  });
  const cases = new Map();
  for (const image of images) {
    const { patient } = image;
    const visitDate = day(image.visit.visitDate);
    const gradings = image.gradings.map(grading);
    const diagnoses = patient.diagnoses.filter((d) => appliesTo(d.eye, image.eye)).map((d) => ({ id: d.id, code: d.icd10Code, text: d.text, eye: d.eye, date: day(d.diagnosedOn) }));
    const treatments = patient.treatments.filter((t) => appliesTo(t.eye, image.eye)).map((t) => ({ id: t.id, type: t.type, agent: t.agent, eye: t.eye, date: day(t.performedOn), notes: t.notes }));
    const later = patient.images
      .filter((other) => other.eye === image.eye && day(other.visit.visitDate) > visitDate)
      .sort((a, b) => day(a.visit.visitDate).localeCompare(day(b.visit.visitDate)) || a.id.localeCompare(b.id));
    const manual = gradings.filter((g) => g.source !== 'MODEL_SUGGESTION');
    cases.set(image.id, {
      id: image.id,
      isSynthetic: patient.dataset.isSynthetic,
      image: { id: image.id, eye: image.eye, width: image.width, height: image.height, quality: image.quality, contentHash: image.contentHash },
      patient: {
        id: patient.id, mrn: patient.mrn, mrnSystem: patient.mrnSystem, birthYear: patient.birthYear, sex: patient.sex,
        diabetesType: patient.diabetesType, diabetesDiagnosisYear: patient.diabetesDiagnosisYear,
        dataset: { name: patient.dataset.name, isSynthetic: patient.dataset.isSynthetic }, isSynthetic: patient.dataset.isSynthetic,
        hba1cReadings: patient.hba1cReadings.map((r) => ({ date: day(r.measuredOn), percent: Number(r.percent) })),
        externalLinks: patient.externalLinks.map(({ system, identifier }) => ({ system, identifier })),
      },
      visit: { id: image.visit.id, date: visitDate },
      ageAtVisit: patient.birthYear === null || visitDate === undated ? null : Number(visitDate.slice(0, 4)) - patient.birthYear,
      referenceGrading: manual.at(-1) ?? null,
      gradings,
      diagnoses: diagnoses.filter((d) => d.date <= visitDate),
      treatments: treatments.filter((t) => t.date <= visitDate),
      followUp: {
        gradings: later.flatMap((other) => other.gradings.map((g) => ({
          imageId: other.id, visitDate: day(other.visit.visitDate), date: day(g.gradedOn), drGrade: g.drGrade, drGradeName: names[g.drGrade],
          maculopathy: g.maculopathy, source: g.source,
        }))),
        diagnoses: diagnoses.filter((d) => d.date > visitDate),
        treatments: treatments.filter((t) => t.date > visitDate),
      },
    });
  }
  return cases;
}

for (const backend of BACKENDS) {
  describe(`loadCases in one statement on ${backend}`, { skip: backend === 'postgres' && POSTGRES_SKIP_REASON }, () => {
    let database;
    let modules;
    let ids;
    before(async () => {
      const [cases, enums, dates, cohort, seed] = await Promise.all([
        api('modules/case/case.service.js'), api('modules/common/enums.js'), api('modules/common/clinical-dates.js'), api('fixtures/cohort.js'), api('fixtures/seed.js'),
      ]);
      modules = { ...cases, ...enums, ...dates };
      database = await createTestDatabase(backend);
      await seed.loadCohort(database.db, cohort.buildCohort('test-clinic'));
      ids = (await database.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id')).map((row) => row.id);
      // Parts the fixture leaves empty or single: an external link, a second grading of one photograph with the
      // same date (ordered by when it was recorded) and a model suggestion after it (never the reference).
      const [first] = await database.db.sql.query('SELECT fi.id::text AS id, fi.patient_id::text AS patient_id FROM fundus_image fi ORDER BY fi.id LIMIT 1');
      await database.db.sql.query('INSERT INTO external_link (system, identifier, patient_id) VALUES ($1, $2, $3::uuid)', ['urn:test:ehr', 'load-cases-1', first.patient_id]);
      await database.db.sql.query(`INSERT INTO grading (image_id, dr_grade, source, grader, graded_on, created_at)
        SELECT image_id, 3, source, 'second reader', graded_on, created_at + interval '1 second' FROM grading WHERE image_id = $1::uuid LIMIT 1`, [first.id]);
      await database.db.sql.query(`INSERT INTO grading (image_id, dr_grade, source, graded_on, created_at)
        SELECT image_id, 4, 'MODEL_SUGGESTION', graded_on, created_at + interval '2 seconds' FROM grading WHERE image_id = $1::uuid LIMIT 1`, [first.id]);
    });
    after(async () => database?.drop());

    test('every case of the cohort, every part, as the ORM oracle reads it', async () => {
      assert.ok(ids.length > 50, `${ids.length} photographs`);
      const loaded = await modules.loadCases(database.db.prisma, ids);
      const expected = await oracleCases(database.db.prisma, ids, modules.ICDR_GRADE_NAMES, modules.UNDATED_VISIT_DATE);
      assert.equal(loaded.size, ids.length);
      for (const id of ids) assert.deepEqual(loaded.get(id), expected.get(id), `case ${id}`);
      const [first] = ids;
      assert.deepEqual(loaded.get(first).gradings.map((g) => g.drGrade).slice(-2), [3, 4], 'gradings oldest first, ties by when recorded');
      assert.equal(loaded.get(first).referenceGrading.drGrade, 3, 'the model suggestion is never the reference');
      assert.deepEqual(loaded.get(first).patient.externalLinks, [{ system: 'urn:test:ehr', identifier: 'load-cases-1' }]);
      for (const part of ['diagnoses', 'treatments']) assert.ok([...loaded.values()].some((found) => found[part].length > 0 && found.followUp[part].length > 0), `${part} on both sides of a visit`);
      assert.ok([...loaded.values()].some((found) => found.followUp.gradings.length > 0), 'follow-up gradings are loaded');
      assert.ok([...loaded.values()].some((found) => found.patient.hba1cReadings.length > 0), 'HbA1c readings are loaded');
    });

    test('a part left out is empty and the rest is unchanged; unknown ids are absent, repeated ids load once', async () => {
      const page = ids.slice(0, 11);
      const all = await modules.loadCases(database.db.prisma, page);
      const parts = { followUpGradings: false, diagnoses: false, treatments: true, hba1cReadings: false, externalLinks: false };
      // A client that nobody registered a driver runner for, so the statement goes through $queryRaw, where it is seen.
      const statements = [];
      const watched = { $queryRaw: (statement) => (statements.push(statement.sql), database.db.prisma.$queryRaw(statement)) };
      const some = await modules.loadCases(watched, [...page, page[0], '00000000-0000-4000-8000-000000000000'], parts);
      assert.equal(statements.length, 1, 'one statement');
      assert.match(statements[0], /FROM treatment /);
      for (const table of ['diagnosis', 'hba1c_reading', 'external_link']) assert.doesNotMatch(statements[0], new RegExp(`FROM ${table}\\b`), `${table} is not read`);
      assert.match(statements[0], /WHERE fi2\.id = fi\.id/, 'only the cases\' own photographs are read for their gradings');
      assert.deepEqual([...some.keys()].sort(), [...page].sort());
      for (const id of page) {
        const full = all.get(id);
        assert.deepEqual(some.get(id), {
          ...full,
          patient: { ...full.patient, hba1cReadings: [], externalLinks: [] },
          diagnoses: [],
          followUp: { ...full.followUp, gradings: [], diagnoses: [] },
        });
      }
      assert.equal((await modules.loadCases(database.db.prisma, [])).size, 0);
    });
  });
}
