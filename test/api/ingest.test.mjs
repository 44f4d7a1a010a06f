// Ingestion end to end on PGlite and PostgreSQL: a tiny synthetic labelled set (sharp-drawn discs, never real
// data) embedded by the tiny ONNX test model. A rerun adds nothing; bad images are rejected with their code and
// write nothing; a failure inside the transaction leaves no row and a rerun completes; a FHIR bundle's
// diagnoses and treatments are written once. Then the CLI on the embedded database.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { BACKENDS, POSTGRES_SKIP_REASON, countRows, createTestDatabase, repositoryRoot } from '../support/backends.mjs';

const dist = (file) => import(path.join(repositoryRoot, 'apps', 'api', 'dist', file));
const { openImport } = await dist('importers/detect-format.js');
const { readBundle } = await dist('importers/fhir.js');
const { ingestCase, ingestRecords } = await dist('modules/ingest/ingest.service.js');
const { Embedder } = await dist('embedding/embedder.js');
const { writeSyntheticSet, makeSyntheticFundusPng } = await dist('embedding/testing/fixtures.js');

const TINY_MODEL = path.join(repositoryRoot, 'test', 'fixtures', 'models', 'tiny-fundus-cbr.onnx');
const CLI = path.join(repositoryRoot, 'apps', 'api', 'dist', 'cli', 'ingest.js');

/** Two patients with both eyes, one patient whose three photographs are each broken in another way. */
const SYNTHETIC_SET = [
  { name: 'a_L.png', patientId: 'synth-001', eye: 'L', grade: 0, kind: 'fundus' },
  { name: 'a_R.png', patientId: 'synth-001', eye: 'R', grade: 1, kind: 'fundus' },
  { name: 'b_L.png', patientId: 'synth-002', eye: 'L', grade: 3, kind: 'fundus' },
  { name: 'b_R.png', patientId: 'synth-002', eye: 'R', grade: 4, kind: 'fundus' },
  { name: 'c_empty.png', patientId: 'synth-003', eye: 'L', grade: 2, kind: 'empty' },
  { name: 'c_garbage.png', patientId: 'synth-003', eye: 'R', grade: 2, kind: 'garbage' },
  { name: 'c_black.png', patientId: 'synth-003', eye: 'R', grade: 2, kind: 'black' },
];
const REJECTED = { EMPTY_FILE: 1, NOT_AN_IMAGE: 1, NO_FUNDUS: 1 };

async function makeSyntheticSet() {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'fundus-ingest-set-'));
  await writeSyntheticSet(folder, SYNTHETIC_SET);
  await appendFile(path.join(folder, 'labels.csv'), 'images/a_L.png,synth-009,Q,1\n');
  return folder;
}

async function ingestFolder(db, embedder, folder) {
  const { items } = await openImport(folder);
  return ingestRecords({ prisma: db.prisma, embedder, items });
}

/** A record of a new patient, built the way an importer builds one. */
function makeRecord(bytes, overrides = {}) {
  return {
    row: 1,
    dataset: { name: 'ingest-e2e', description: null, isSynthetic: false },
    patient: { mrn: 'solo-1', mrnSystem: 'urn:fundus-cbr:dataset:ingest-e2e', isPerImagePatient: true, birthYear: null, sex: null, diabetesType: null },
    visitDate: '1900-01-01',
    isVisitDateKnown: false,
    eye: 'LEFT',
    isEyeAssumed: false,
    image: { kind: 'bytes', bytes, name: 'test', mimeType: null },
    quality: 'UNKNOWN',
    grading: { drGrade: 2, maculopathy: null, macularEdemaRisk: null, source: 'DATASET_LABEL', grader: 'test', originalScale: null, originalValue: null, gradedOn: '1900-01-01' },
    diagnoses: [],
    treatments: [],
    externalLinks: [],
    ...overrides,
  };
}

const BAD_IMAGES = [
  { name: 'empty file', bytes: async () => Buffer.alloc(0), code: 'EMPTY_FILE' },
  { name: 'not an image', bytes: async () => Buffer.from('%PDF-1.4 not a photograph'), code: 'NOT_AN_IMAGE' },
  { name: 'no fundus (black frame)', bytes: () => sharp({ create: { width: 120, height: 90, channels: 3, background: '#000' } }).png().toBuffer(), code: 'NO_FUNDUS' },
];

for (const kind of BACKENDS) {
  describe(`ingest on ${kind}`, { skip: kind === 'postgres' ? POSTGRES_SKIP_REASON : false }, () => {
    let database;
    let embedder;
    let folder;
    before(async () => {
      [database, embedder, folder] = await Promise.all([createTestDatabase(kind), Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' }), makeSyntheticSet()]);
    });
    after(async () => {
      await database?.drop();
      await embedder?.release();
      if (folder) await rm(folder, { recursive: true, force: true });
    });

    test('a synthetic set is ingested once: images, gradings, embeddings with attention, one visit per patient; a second run adds nothing', async () => {
      const db = database.db;
      const first = await ingestFolder(db, embedder, folder);
      assert.deepEqual([first.added, first.duplicates, first.rejected, first.badRows], [4, 0, REJECTED, 1]);
      assert.equal(first.problems.find((problem) => problem.code === 'BAD_ROW')?.reason, 'bad eye "Q" (L or R expected)');
      const counts = await countRows(db);
      assert.deepEqual(
        { dataset: counts.dataset, patient: counts.patient, visit: counts.visit, image_blob: counts.image_blob, fundus_image: counts.fundus_image, grading: counts.grading, image_embedding: counts.image_embedding },
        { dataset: 1, patient: 2, visit: 2, image_blob: 4, fundus_image: 4, grading: 4, image_embedding: 4 },
        'the rejected patient synth-003 has no row at all; both eyes of a patient share the undated visit',
      );

      const image = await db.prisma.fundusImage.findFirstOrThrow({ where: { patient: { mrn: 'synth-002' }, eye: 'RIGHT' }, include: { gradings: true, blob: true, visit: true, patient: { include: { dataset: true } } } });
      const written = await sharp(path.join(folder, 'images', 'b_R.png')).metadata();
      assert.deepEqual([image.width, image.height], [written.width, written.height], 'width and height of the decoded photograph');
      assert.deepEqual([image.drGrade, image.gradings[0].drGrade, image.gradings[0].source], [4, 4, 'DATASET_LABEL']);
      assert.equal(image.blob.mimeType, 'image/png');
      assert.equal(image.visit.visitDate.toISOString().slice(0, 10), '1900-01-01');
      assert.deepEqual([image.patient.mrnSystem, image.patient.dataset.isSynthetic], ['urn:fundus-cbr:dataset:synth', false]);
      const [embedding] = await db.sql.query(
        `SELECT model_version, vector_dims(embedding) AS dims, octet_length(attention_map) AS bytes, attention_width * attention_height AS cells FROM image_embedding WHERE image_id = $1`,
        [image.id],
      );
      assert.deepEqual([embedding.model_version, embedding.dims], ['tiny-test-1', 128]);
      assert.ok(embedding.cells > 0);
      assert.equal(embedding.bytes, embedding.cells * 4, 'attention map is float32 per cell');

      const second = await ingestFolder(db, embedder, folder);
      assert.deepEqual([second.added, second.duplicates, second.rejected, second.badRows], [0, 4, REJECTED, 1]);
      assert.deepEqual(await countRows(db), counts, 'the rerun wrote nothing');
    });

    test('a photograph of a set without laterality is stored with its inferred eye and eye_inferred; a published eye is not marked', async () => {
      const db = database.db;
      const unlateral = await mkdtemp(path.join(os.tmpdir(), 'fundus-ingest-aptos-'));
      try {
        await writeSyntheticSet(unlateral, [
          { name: 'x.png', patientId: 'aptos-x', eye: '', grade: 2, kind: 'fundus' },
          { name: 'y.png', patientId: 'aptos-y', eye: 'L', grade: 3, kind: 'fundus' },
        ]);
        // The shared layout's sets without laterality add eye_inferred (a guess from the optic disc's side).
        const rows = ['image,patient_id,eye,grade,eye_inferred', 'images/x.png,aptos-x,,2,R', 'images/y.png,aptos-y,L,3,R'];
        await writeFile(path.join(unlateral, 'labels.csv'), `${rows.join('\n')}\n`);
        const summary = await ingestFolder(db, embedder, unlateral);
        assert.equal(summary.added, 2);
        const images = await db.prisma.fundusImage.findMany({ where: { patient: { mrn: { in: ['aptos-x', 'aptos-y'] } } }, include: { patient: true }, orderBy: { patient: { mrn: 'asc' } } });
        assert.deepEqual(images.map((image) => [image.patient.mrn, image.eye, image.eyeInferred]), [['aptos-x', 'RIGHT', true], ['aptos-y', 'LEFT', false]]);
      } finally {
        await rm(unlateral, { recursive: true, force: true });
      }
    });

    for (const bad of BAD_IMAGES) {
      test(`a photograph that is a(n) ${bad.name} is rejected with ${bad.code} and nothing is written`, async () => {
        const db = database.db;
        const before = await countRows(db);
        const result = await ingestCase({ prisma: db.prisma, embedder, record: makeRecord(await bad.bytes(), { patient: { ...makeRecord(null).patient, mrn: `bad-${bad.code}` } }) });
        assert.equal(result.status, 'rejected');
        assert.equal(result.code, bad.code);
        assert.deepEqual(await countRows(db), before);
      });
    }

    test('an invalid record (grade 7) is BAD_USER_INPUT and nothing is written', async () => {
      const db = database.db;
      const before = await countRows(db);
      const record = makeRecord(await makeSyntheticFundusPng({ width: 150, height: 110, tint: 0.3 }));
      record.grading.drGrade = 7;
      await assert.rejects(ingestCase({ prisma: db.prisma, embedder, record }), (error) => error.code === 'BAD_USER_INPUT' && /ICDR 0-4, got 7/.test(error.message));
      assert.deepEqual(await countRows(db), before);
    });

    test('a failure inside the transaction after the image row leaves no row, and a rerun completes the case', async () => {
      const db = database.db;
      const before = await countRows(db);
      const record = makeRecord(await makeSyntheticFundusPng({ width: 170, height: 130, tint: 0.9 }), {
        patient: { ...makeRecord(null).patient, mrn: 'crash-1' },
        diagnoses: [{ icd10Code: 'E11.3393', text: 'moderate NPDR', eye: 'BOTH', diagnosedOn: '1900-01-01' }],
      });
      let imageRowSeen = false;
      await assert.rejects(
        ingestCase({
          prisma: db.prisma,
          embedder,
          record,
          hooks: {
            afterImageWritten: async () => {
              imageRowSeen = true;
              throw new Error('simulated crash after the image row');
            },
          },
        }),
        /simulated crash/,
      );
      assert.ok(imageRowSeen, 'the failure happened after the image row was written');
      assert.deepEqual(await countRows(db), before, 'dataset, patient, visit, blob, image and grading rolled back');

      const rerun = await ingestCase({ prisma: db.prisma, embedder, record });
      assert.equal(rerun.status, 'added');
      const afterRerun = await countRows(db);
      for (const table of ['patient', 'visit', 'image_blob', 'fundus_image', 'grading', 'image_embedding', 'diagnosis']) assert.equal(afterRerun[table], before[table] + 1, table);
      assert.equal(afterRerun.dataset, before.dataset + 1);
    });

    test('the same photograph of one eye twice in one run (both prepared before either is written) is stored once; the second case writes nothing', async () => {
      const db = database.db;
      const before = await countRows(db);
      const bytes = await makeSyntheticFundusPng({ width: 176, height: 132, tint: 0.45 });
      // The same patient and eye (another patient would be a CONFLICT: test/api/data-entry.test.mjs).
      const items = [2, 3].map((row, index) => ({
        ok: true,
        record: makeRecord(bytes, { row, patient: { ...makeRecord(null).patient, mrn: 'twice-1' }, visitDate: '2024-03-0' + (index + 1) }),
      }));
      const summary = await ingestRecords({ prisma: db.prisma, embedder, items, lookahead: 2 });
      assert.deepEqual([summary.added, summary.duplicates, summary.rejected], [1, 1, {}]);
      const after = await countRows(db);
      for (const table of ['patient', 'visit', 'image_blob', 'fundus_image', 'grading', 'image_embedding']) assert.equal(after[table], before[table] + 1, table);
    });

    test('a later photograph of a stored patient fills in demographics the row lacks, never overwrites them, and shares the visit of its date', async () => {
      const db = database.db;
      const patient = (fields) => ({ ...makeRecord(null).patient, mrn: 'demographics-1', ...fields });
      const ingest = async (tint, fields) =>
        ingestCase({
          prisma: db.prisma,
          embedder,
          // Graded on its visit date: a placeholder date beside a known birth year is refused (clinical-dates.ts).
          record: makeRecord(await makeSyntheticFundusPng({ width: 150, height: 120, tint }), { patient: patient(fields), visitDate: '2023-11-20', grading: { ...makeRecord(null).grading, gradedOn: '2023-11-20' } }),
        });
      assert.equal((await ingest(0.15, {})).status, 'added');
      const before = await countRows(db);
      assert.equal((await ingest(0.25, { birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_1' })).status, 'added');
      assert.equal((await ingest(0.35, { birthYear: 1970, sex: 'MALE', diabetesType: 'TYPE_2' })).status, 'added');
      const stored = await db.prisma.patient.findUniqueOrThrow({ where: { mrnSystem_mrn: { mrnSystem: patient({}).mrnSystem, mrn: 'demographics-1' } }, include: { visits: true, images: true } });
      assert.deepEqual([stored.birthYear, stored.sex, stored.diabetesType], [1961, 'FEMALE', 'TYPE_1']);
      assert.deepEqual([stored.visits.length, stored.images.length], [1, 3]);
      const after = await countRows(db);
      assert.deepEqual([after.dataset, after.patient, after.visit], [before.dataset, before.patient, before.visit], 'dataset, patient and visit are found, not created again');
    });

    test('a FHIR bundle with two photographs writes its diagnosis and treatment once, and a rerun adds nothing', async () => {
      const db = database.db;
      const picture = async (tint) => (await makeSyntheticFundusPng({ width: 180, height: 140, tint })).toString('base64');
      const eye = (code, display) => ({ coding: [{ system: 'http://snomed.info/sct', code, display }] });
      const bundle = {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          { resource: { resourceType: 'Patient', id: 'p', identifier: [{ system: 'urn:oid:1.2.3.4', value: 'FHIR-7', type: { coding: [{ code: 'MR' }] } }], gender: 'male', birthDate: '1950-02-03' } },
          { resource: { resourceType: 'ImagingStudy', id: 's', subject: { reference: 'Patient/p' }, started: '2024-05-14T10:00:00Z', identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.840.99.7' }] } },
          { resource: { resourceType: 'Condition', id: 'c', subject: { reference: 'Patient/p' }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'E11.3553', display: 'PDR, both eyes' }] }, onsetDateTime: '2024-05-14' } },
          { resource: { resourceType: 'Procedure', id: 'x', status: 'completed', subject: { reference: 'Patient/p' }, code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '67228' }] }, bodySite: [eye('362502000', 'right eye')], performedDateTime: '2024-05-14' } },
          { resource: { resourceType: 'Media', id: 'l', subject: { reference: 'Patient/p' }, bodySite: eye('362503005', 'left eye'), content: { contentType: 'image/png', data: await picture(0.1) } } },
          { resource: { resourceType: 'Media', id: 'r', subject: { reference: 'Patient/p' }, bodySite: eye('362502000', 'right eye'), content: { contentType: 'image/png', data: await picture(0.6) } } },
        ],
      };
      const before = await countRows(db);
      const first = await ingestRecords({ prisma: db.prisma, embedder, items: readBundle(bundle, { datasetName: 'fhir-e2e' }) });
      assert.deepEqual([first.added, first.duplicates, first.badRows], [2, 0, 0]);
      const afterFirst = await countRows(db);
      assert.deepEqual(
        ['patient', 'visit', 'fundus_image', 'diagnosis', 'treatment', 'external_link'].map((table) => afterFirst[table] - before[table]),
        [1, 1, 2, 1, 1, 1],
      );
      const patient = await db.prisma.patient.findUniqueOrThrow({ where: { mrnSystem_mrn: { mrnSystem: 'urn:oid:1.2.3.4', mrn: 'FHIR-7' } }, include: { images: { include: { gradings: true } }, treatments: true, diagnoses: true } });
      assert.deepEqual([patient.sex, patient.birthYear, patient.diabetesType], ['MALE', 1950, 'TYPE_2']);
      assert.deepEqual(patient.images.map((image) => image.drGrade), [4, 4], 'grade from the ICD-10-CM severity (proliferative) of both eyes');
      assert.deepEqual([patient.treatments[0].type, patient.treatments[0].eye, patient.diagnoses[0].eye], ['PRP_LASER', 'RIGHT', 'BOTH']);

      const second = await ingestRecords({ prisma: db.prisma, embedder, items: readBundle(bundle, { datasetName: 'fhir-e2e' }) });
      assert.deepEqual([second.added, second.duplicates], [0, 2]);
      assert.deepEqual(await countRows(db), afterFirst);
    });
  });
}

describe('npm run ingest (CLI) on the embedded database', () => {
  let folder;
  let dataDir;
  before(async () => {
    folder = await makeSyntheticSet();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'fundus-ingest-cli-'));
  });
  after(async () => {
    await rm(folder, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
    await rm(`${dataDir}.ingest-lock`, { force: true });
  });
  // PORT 9 (discard): no API answers there, so the "API is running" guard lets the CLI proceed.
  const cliEnvironment = (port) => {
    const { DATABASE_URL: _unused, ...environment } = process.env;
    return { ...environment, PGLITE_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1' };
  };
  const runCli = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: cliEnvironment(9), timeout: 120_000 });

  test('imports the set, prints a JSON summary, and a rerun finds only duplicates', () => {
    const first = runCli(folder, '--model', TINY_MODEL, '--device', 'cpu');
    assert.equal(first.status, 0, first.stderr);
    const summary = JSON.parse(first.stdout.trim().split('\n').at(-1));
    assert.deepEqual([summary.format, summary.added, summary.duplicates, summary.rejected, summary.badRows], ['shared', 4, 0, REJECTED, 1]);
    assert.match(first.stderr, /row 9 \(images\/a_L.png\): BAD_ROW bad eye "Q"/);
    const second = runCli(folder, '--model', TINY_MODEL, '--device', 'cpu');
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout.trim().split('\n').at(-1)).duplicates, 4);
  });

  test('APTOS labels without --assume-eye: every row is reported with the option to pass', async () => {
    const aptos = path.join(folder, 'train.csv');
    await writeFile(aptos, 'id_code,diagnosis\na_L,1\n');
    const run = runCli(aptos, '--model', TINY_MODEL, '--device', 'cpu');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /APTOS has no laterality; pass --assume-eye LEFT\|RIGHT to import/);
    const withEye = runCli(aptos, '--model', TINY_MODEL, '--device', 'cpu', '--assume-eye', 'LEFT', '--images', path.join(folder, 'images'));
    assert.equal(withEye.status, 0, withEye.stderr);
    // a_L.png is already stored (same bytes) for patient synth-001: as APTOS image a_L it would be another patient's.
    const summary = JSON.parse(withEye.stdout.trim().split('\n').at(-1));
    assert.deepEqual([summary.added, summary.duplicates, summary.rejected], [0, 0, { CONFLICT: 1 }]);
    assert.match(withEye.stderr, /row 2 \(.*a_L\.png\): CONFLICT This photograph .* is already stored as case [0-9a-f-]{36}, of another patient/);
  });

  test('refuses the embedded database while an API answers on the configured address', async () => {
    const api = http.createServer((request, response) => response.writeHead(request.url === '/healthz' ? 200 : 404).end('ok'));
    await new Promise((resolve) => api.listen(0, '127.0.0.1', resolve));
    try {
      // Asynchronous spawn: this process must stay free to answer the CLI's liveness probe.
      const child = spawn(process.execPath, [CLI, folder, '--model', TINY_MODEL, '--device', 'cpu'], { env: cliEnvironment(api.address().port) });
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const status = await new Promise((resolve) => child.on('close', resolve));
      assert.equal(status, 3, stderr);
      assert.match(stderr, /The API is running at .*PGlite is single-process: stop the API before ingesting/);
    } finally {
      await new Promise((resolve) => api.close(resolve));
    }
  });

  test('refuses a locked embedded database, and usage errors exit 2', async () => {
    await writeFile(`${dataDir}.ingest-lock`, String(process.pid));
    const locked = runCli(folder, '--model', TINY_MODEL, '--device', 'cpu');
    await rm(`${dataDir}.ingest-lock`, { force: true });
    assert.equal(locked.status, 3);
    assert.match(locked.stderr, /locked by process .* PGlite is single-process/);
    const usage = runCli(folder, '--assume-eye', 'UP');
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--assume-eye must be LEFT or RIGHT/);
  });
});
