import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CLI_DIRECTORY, TINY_MODEL, writeSyntheticSet, type SyntheticImage } from '../embedding/testing/fixtures.js';

const run = promisify(execFile);
const EVALUATE = path.join(CLI_DIRECTORY, 'evaluate.js');

describe('evaluate CLI (tiny model, synthetic images)', () => {
  let root: string;
  const images: SyntheticImage[] = [];
  for (let patient = 0; patient < 6; patient += 1) {
    for (const eye of ['L', 'R'] as const) {
      images.push({ name: `p${patient}_${eye}.png`, patientId: `toy-${patient}`, eye, grade: patient % 3, kind: 'fundus' });
    }
  }
  images.push({ name: 'broken.jpg', patientId: 'toy-9', eye: 'L', grade: 1, kind: 'garbage' });

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'evaluate-cli-'));
    await writeSyntheticSet(root, images);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('prints one JSON report with model and baselines, skips the broken image and dumps embeddings', async () => {
    const dump = path.join(root, 'embeddings.jsonl');
    const { stdout, stderr } = await run(process.execPath, [
      EVALUATE,
      '--queries',
      path.join(root, 'labels.csv'),
      '--model',
      TINY_MODEL,
      '--device',
      'cpu',
      '--json',
      '--dump-embeddings',
      dump,
    ]);
    assert.match(stderr, /skipped .*broken\.jpg: NOT_AN_IMAGE/);
    const report = JSON.parse(stdout);
    assert.equal(report.queries, 12);
    assert.equal(report.gallery, 12);
    assert.deepEqual(report.skipped.map((entry: { image: string; code: string }) => [entry.image, entry.code]), [['images/broken.jpg', 'NOT_AN_IMAGE']]);
    assert.equal(report.embeddingModel.executionProvider, 'cpu');
    for (const section of [report.model, report.baselines.random, report.baselines.majority]) {
      assert.equal(section.queries, 12);
      for (const k of ['1', '5', '10', '20']) assert.ok(section.precisionAt[k] >= 0 && section.precisionAt[k] <= 1);
      assert.deepEqual(Object.keys(section.precisionAt10ByGrade), ['0', '1', '2']);
    }
    // Grades 0,1,2 each have 2 patients (4 images): R = 2 per query. Analytic random P@k = 2/10.
    assert.ok(Math.abs(report.baselines.random.expectedPrecision - 0.2) < 1e-12);
    // Majority-first with a three-way tie ranks grade 0 first: grade-0 queries get both relevant items on top.
    assert.equal(report.baselines.majority.precisionAt10ByGrade['0'].value, 0.2);
    assert.equal(report.baselines.majority.mapAtR, 1 / 3);

    const lines = (await readFile(dump, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(lines.length, 12);
    assert.deepEqual(Object.keys(lines[0]), ['image', 'patient_id', 'grade', 'embedding']);
    assert.equal(lines[0].embedding.length, 128);
  });

  it('embeds, skips and dumps a file listed in both --queries and --gallery once, with the same figures as no gallery', async () => {
    const labels = path.join(root, 'labels.csv');
    const common = [EVALUATE, '--queries', labels, '--model', TINY_MODEL, '--device', 'cpu', '--json'];
    const dump = path.join(root, 'both.jsonl');
    const alone = JSON.parse((await run(process.execPath, common)).stdout);
    const both = await run(process.execPath, [...common, '--gallery', labels, '--dump-embeddings', dump]);
    const report = JSON.parse(both.stdout);
    assert.equal(report.gallery, 12);
    assert.equal(report.skipped.length, 1);
    assert.equal(both.stderr.match(/skipped .*broken\.jpg/g)?.length, 1);
    assert.deepEqual(report.model, alone.model);
    const lines = (await readFile(dump, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(lines.length, 12);
    assert.equal(new Set(lines.map((line) => line.image)).size, 12);
  });

  it('refuses a file that the two CSVs label differently', async () => {
    const { writeFile } = await import('node:fs/promises');
    const gallery = path.join(root, 'relabelled.csv');
    await writeFile(gallery, 'image,patient_id,eye,grade\nimages/p0_L.png,toy-0,L,4\n');
    await assert.rejects(
      run(process.execPath, [EVALUATE, '--queries', path.join(root, 'labels.csv'), '--gallery', gallery, '--model', TINY_MODEL, '--device', 'cpu']),
      (error: { code: number; stderr: string }) => error.code === 2 && /p0_L\.png is in .*eye L, grade 0 and in .*eye L, grade 4/.test(error.stderr),
    );
  });

  it('fails with a clear message when the model is missing', async () => {
    await assert.rejects(
      run(process.execPath, [EVALUATE, '--queries', path.join(root, 'labels.csv'), '--model', path.join(root, 'none.onnx')]),
      (error: { code: number; stderr: string }) => error.code === 2 && /Cannot read the model file .*none\.onnx/.test(error.stderr),
    );
  });
});
