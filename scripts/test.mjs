// `npm test`: every suite in one run, after `turbo run build`.
//   1. node:test — API unit tests (apps/api/dist/**/*.test.js), end-to-end GraphQL suites (test/api) on PGlite and,
//      when TEST_DATABASE_URL is set, PostgreSQL + pgvector, and the browser test (test/web).
//   2. pytest — the model's unit tests (models/tests) with Debian's PyTorch (/usr/bin/python3).
// Prints one closing line "N passed, N failed, N skipped" over both runners; exits non-zero on any failure.
// Under CI=true a missing prerequisite (PyTorch) is a failure, not a skip.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const inCi = process.env.CI === 'true';

function findFiles(dir, pattern) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : findFiles(full, pattern);
    return pattern.test(entry.name) ? [full] : [];
  });
}

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk) => { output += chunk; process.stdout.write(chunk); });
    child.stderr.on('data', (chunk) => { output += chunk; process.stderr.write(chunk); });
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };

// Two node:test runs. The API's unit tests (pure functions, no servers) run without --test-force-exit: under it a
// file's process can exit before its report reaches this runner, and its tests silently vanish from the count (26
// of them once in CI: disclosure, survival, ICD-10-CM unit files). The suites that start servers keep it: some
// (data-entry, photographs) now and then keep a handle open after their last test (not found yet) and would hang.
// --test-timeout bounds each test FILE as a whole too: the two browser workflow suites seed the 2,094-photograph demo
// cohort and take 3-5 minutes each on a loaded 2-core machine, so the bound is 15 minutes.
const unitFiles = findFiles(path.join(root, 'apps', 'api', 'dist'), /\.test\.js$/).sort();
const suiteFiles = [
  ...findFiles(path.join(root, 'test', 'api'), /\.test\.mjs$/),
  ...findFiles(path.join(root, 'test', 'web'), /\.test\.mjs$/),
].sort();
if (!process.env.TEST_DATABASE_URL) {
  console.log('# NOTE: TEST_DATABASE_URL is not set, so the PostgreSQL suites are skipped (each says why); `bash scripts/test-all.sh` sets one up.');
}
for (const [files, flags] of [[unitFiles, []], [suiteFiles, ['--test-force-exit']]]) {
  if (files.length === 0) continue;
  const node = await run(process.execPath, ['--test', '--test-timeout=900000', ...flags, ...files]);
  const count = (label) => Number(node.output.match(new RegExp(`^# ${label} (\\d+)$`, 'm'))?.[1] ?? 0);
  totals.passed += count('pass');
  totals.failed += count('fail') + count('cancelled');
  // A todo test is a known gap, not a pass: counted with the skipped so the closing line shows it.
  totals.skipped += count('skipped') + count('todo');
  if (node.code !== 0 && count('fail') + count('cancelled') === 0) totals.failed += 1;
}

const python = '/usr/bin/python3';
const torchCheck = spawnSync(python, ['-c', 'import torch, pytest'], { encoding: 'utf8' });
if (torchCheck.status === 0) {
  const pytest = await run(python, ['-m', 'pytest', 'models/tests', '-q', '-p', 'no:cacheprovider'], { env: { PYTHONDONTWRITEBYTECODE: '1' } });
  const summary = pytest.output.split('\n').reverse().find((line) => /\d+ (passed|failed)/.test(line)) ?? '';
  totals.passed += Number(summary.match(/(\d+) passed/)?.[1] ?? 0);
  totals.failed += Number(summary.match(/(\d+) failed/)?.[1] ?? 0) + Number(summary.match(/(\d+) error/)?.[1] ?? 0);
  totals.skipped += Number(summary.match(/(\d+) skipped/)?.[1] ?? 0);
  if (pytest.code !== 0 && !/\d+ (failed|error)/.test(summary)) totals.failed += 1;
} else if (inCi) {
  console.error(`# FAIL: the model tests need PyTorch and pytest at ${python} (scripts/ci-setup.sh installs them): ${torchCheck.stderr.trim()}`);
  totals.failed += 1;
} else {
  console.log(`# SKIP model tests: PyTorch/pytest not importable by ${python}; run \`bash scripts/ci-setup.sh\` (apt: python3-torch python3-pytest)`);
  totals.skipped += 1;
}

console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
