import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { INDEX_HEADER } from './cache.js';
import { parseCsv } from './dataset.js';
import { CLI_DIRECTORY, makeSyntheticFundusPng, writeSyntheticSet } from './testing/fixtures.js';

const run = promisify(execFile);
const BUILD_CACHE = path.join(CLI_DIRECTORY, 'build-cache.js');

async function runBuildCache(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BUILD_CACHE, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout: string; stderr: string; code: number };
    return { stdout: failure.stdout, stderr: failure.stderr, code: failure.code };
  }
}

describe('build-cache CLI', () => {
  let root: string;
  let setDirectory: string;
  let lesionDirectory: string;
  let out: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'build-cache-'));
    setDirectory = path.join(root, 'toyset');
    lesionDirectory = path.join(root, 'lesions');
    out = path.join(root, 'cache');
    await writeSyntheticSet(setDirectory, [
      { name: 'a_left.jpg', patientId: 'toy-1', eye: 'L', grade: 0, kind: 'fundus' },
      { name: 'a_right.jpg', patientId: 'toy-1', eye: 'R', grade: 2, kind: 'fundus' },
      { name: 'empty.jpg', patientId: 'toy-2', eye: 'L', grade: 1, kind: 'empty' },
      { name: 'garbage.jpg', patientId: 'toy-2', eye: 'R', grade: 1, kind: 'garbage' },
      { name: 'black.png', patientId: 'toy-3', eye: 'L', grade: 4, kind: 'black' },
    ]);
    await mkdir(path.join(lesionDirectory, 'images'), { recursive: true });
    await writeFile(path.join(lesionDirectory, 'images', '0007.jpg'), await makeSyntheticFundusPng({ width: 200, height: 150, tint: 0.5 }));
    await writeFile(path.join(lesionDirectory, 'boxes.csv'), 'image,label,x_center,y_center,width,height\n');
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes size x size RGB PNGs and an index, and reports bad images with their reason', async () => {
    const result = await runBuildCache(['--size', '32', '--out', out, '--lesions', lesionDirectory, setDirectory]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /written 3, already cached 0, skipped 3 \(.*EMPTY_FILE 1.*\)/);
    assert.match(result.stdout, /NOT_AN_IMAGE 1/);
    assert.match(result.stdout, /NO_FUNDUS 1/);
    assert.match(result.stderr, /skipped .*empty\.jpg: EMPTY_FILE/);
    assert.match(result.stderr, /skipped .*garbage\.jpg: NOT_AN_IMAGE/);
    assert.match(result.stderr, /skipped .*black\.png: NO_FUNDUS/);

    const [header, ...rows] = parseCsv(await readFile(path.join(out, 'index.csv'), 'utf8'));
    assert.deepEqual(header, [...INDEX_HEADER]);
    assert.deepEqual(
      rows.map((row) => row.slice(0, 6)),
      [
        ['images/toyset/a_left.png', 'toyset', 'images/a_left.jpg', 'toy-1', 'L', '0'],
        ['images/toyset/a_right.png', 'toyset', 'images/a_right.jpg', 'toy-1', 'R', '2'],
        ['images/lesions/0007.png', 'lesions', 'images/0007.jpg', 'lesions-0007', '', ''],
      ],
    );
    assert.deepEqual(rows[0]?.slice(6, 8), ['160', '120']);
    for (const row of rows) {
      const metadata = await sharp(path.join(out, row[0] ?? '')).metadata();
      assert.deepEqual([metadata.width, metadata.height, metadata.channels, metadata.format], [32, 32, 3, 'png']);
    }
    await assert.rejects(stat(path.join(out, 'images/toyset/empty.png')), 'nothing written for a bad image');
  });

  it('caches a set without laterality (aptos, idrid): eye stays blank, the extra eye_inferred column is not used', async () => {
    const unlateral = path.join(root, 'aptos');
    await writeSyntheticSet(unlateral, [
      { name: 'x.jpg', patientId: 'aptos-x', eye: 'L', grade: 3, kind: 'fundus' },
      { name: 'y.jpg', patientId: 'aptos-y', eye: 'R', grade: 1, kind: 'fundus' },
    ]);
    // The labels are rewritten in the aptos layout: eye blank, eye_inferred beside it.
    await writeFile(path.join(unlateral, 'labels.csv'), 'image,patient_id,eye,grade,eye_inferred\nimages/x.jpg,aptos-x,,3,R\nimages/y.jpg,aptos-y,,1,\n');
    const cache = path.join(root, 'cache-aptos');
    const result = await runBuildCache(['--size', '32', '--out', cache, unlateral]);
    assert.equal(result.code, 0, result.stderr);
    const [, ...rows] = parseCsv(await readFile(path.join(cache, 'index.csv'), 'utf8'));
    assert.deepEqual(
      rows.map((row) => row.slice(1, 6)),
      [
        ['aptos', 'images/x.jpg', 'aptos-x', '', '3'],
        ['aptos', 'images/y.jpg', 'aptos-y', '', '1'],
      ],
    );
  });

  it('reuses cached files on a second run and rewrites them with --force', async () => {
    const png = path.join(out, 'images/toyset/a_left.png');
    const before = (await stat(png)).mtimeMs;
    const again = await runBuildCache(['--size', '32', '--out', out, '--lesions', lesionDirectory, setDirectory]);
    assert.match(again.stdout, /written 0, already cached 3, skipped 3/);
    assert.equal((await stat(png)).mtimeMs, before);
    assert.equal(parseCsv(await readFile(path.join(out, 'index.csv'), 'utf8')).length, 4);

    const forced = await runBuildCache(['--size', '32', '--out', out, '--force', setDirectory]);
    assert.match(forced.stdout, /written 2, already cached 0/);
    // The lesion rows from the earlier run stay in the index when only the toy set is rebuilt.
    assert.equal(parseCsv(await readFile(path.join(out, 'index.csv'), 'utf8')).length, 4);
  });

  it('exits 2 with usage for bad arguments', async () => {
    const missingOut = await runBuildCache([setDirectory]);
    assert.equal(missingOut.code, 2);
    assert.match(missingOut.stderr, /--out is required/);
    const unknown = await runBuildCache(['--out', out, '--sise', '3', setDirectory]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option --sise/);
  });
});
