// Fault: the ingest CLI killed with SIGKILL mid-run (issue 15). A synthetic labelled set (sharp-drawn discs, never
// real data) is ingested with the tiny test model; the first run is killed --kill-after-ms after it starts
// writing; a rerun must complete with every photograph stored exactly once (no duplicate image, patient or visit
// rows) and report the first run's photographs as duplicates. On the embedded database (the killed run leaves its
// lock files behind: the rerun takes them over) and on PostgreSQL (a scratch database) when DATABASE_URL or
// TEST_DATABASE_URL is set.
//
//   npm run build && node bench/faults/ingest-kill.mjs [--images 60] [--kill-after-ms 8000] [--backends pglite,postgres]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, option, root } from '../cli.mjs';
import { createScratchEnvironment } from '../scratch-database.mjs';

const TINY_MODEL = path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const CLI = path.join(root, 'apps/api/dist/cli/ingest.js');

/** With killAfterMs: SIGKILL that long after the CLI says it is writing. */
function runCli(folder, env, { killAfterMs = null } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, folder, '--model', TINY_MODEL, '--device', 'cpu'], {
      cwd: root,
      // PORT 1: nothing answers there, so the CLI's "is the API running on this embedded database" probe says no.
      env: { ...process.env, LOG_LEVEL: 'warn', PORT: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killedAt = null;
    let timer = null;
    const kill = () => {
      if (killedAt !== null || child.exitCode !== null) return;
      killedAt = [...stderr.matchAll(/added (\d+)/g)].map((match) => Number(match[1])).pop() ?? 0;
      child.kill('SIGKILL');
    };
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (killAfterMs === null) return;
      if (!timer && /ingest: into/.test(stderr)) timer = setTimeout(kill, killAfterMs);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, killedAt, stdout, stderr });
    });
  });
}

async function countAll(env) {
  const [{ loadConfig }, { openDatabase }] = await Promise.all([api('config.js'), api('db/database.js')]);
  const db = await openDatabase(loadConfig({ ...process.env, ...env, LOG_LEVEL: 'warn' }));
  try {
    const [row] = await db.sql.query(`SELECT
      (SELECT count(*)::int FROM fundus_image) AS images,
      (SELECT count(DISTINCT content_hash)::int FROM fundus_image) AS distinct_images,
      (SELECT count(*)::int FROM patient) AS patients,
      (SELECT count(*)::int FROM (SELECT DISTINCT mrn_system, mrn FROM patient) p) AS distinct_patients,
      (SELECT count(*)::int FROM visit) AS visits,
      (SELECT count(*)::int FROM (SELECT DISTINCT patient_id, visit_date FROM visit) v) AS distinct_visits,
      (SELECT count(*)::int FROM image_embedding) AS embeddings,
      (SELECT count(*)::int FROM grading) AS gradings`);
    return row;
  } finally {
    await db.close();
  }
}

export async function runIngestKillFault({ kind, images = 60, killAfterMs = 8000, log = (line) => process.stderr.write(`${line}\n`) }) {
  const { writeSyntheticSet } = await api('embedding/testing/fixtures.js');
  if (kind === 'postgres') {
    const url = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
    if (!url) return { database: kind, skipped: 'set DATABASE_URL (or TEST_DATABASE_URL)' };
    process.env.DATABASE_URL = url;
  } else {
    delete process.env.DATABASE_URL;
  }
  const scratch = await createScratchEnvironment();
  const env = Object.fromEntries(Object.entries(scratch.env).filter(([, value]) => value !== undefined));
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-fault-set-'));
  try {
    // Patients with several photographs each, both eyes: a killed run can leave a patient half-ingested.
    const entries = Array.from({ length: images }, (_, index) => ({ name: `p${Math.floor(index / 4)}_${index}.png`, patientId: `fault-${Math.floor(index / 4)}`, eye: index % 2 ? 'L' : 'R', grade: index % 5, kind: 'fundus' }));
    await writeSyntheticSet(folder, entries);
    const first = await runCli(folder, env, { killAfterMs });
    log(`ingest-kill ${kind}: first run ${first.signal ?? `exit ${first.code}`} after ${first.killedAt ?? '?'} added`);
    const afterKill = await countAll(env).catch((error) => ({ error: String(error.message) }));
    const rerun = await runCli(folder, env);
    const summary = JSON.parse(rerun.stdout.trim().split('\n').pop() || '{}');
    const counts = await countAll(env);
    const report = {
      database: kind,
      images,
      firstRun: { signal: first.signal, progressShowedAdded: first.killedAt, stored: afterKill.images ?? afterKill },
      rerun: { exit: rerun.code, added: summary.added, duplicates: summary.duplicates, rejected: summary.rejected, stderrTail: rerun.code === 0 ? undefined : rerun.stderr.slice(-600) },
      final: counts,
    };
    report.passed = first.signal === 'SIGKILL' && rerun.code === 0 && counts.images === images && counts.distinct_images === images && counts.embeddings === images && counts.gradings === images
      && counts.patients === counts.distinct_patients && counts.visits === counts.distinct_visits && summary.added + summary.duplicates === images && summary.duplicates === afterKill.images;
    return report;
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
    await scratch.drop();
    if (env.PGLITE_DATA_DIR) {
      for (const suffix of ['.lock', '.ingest-lock']) fs.rmSync(`${env.PGLITE_DATA_DIR.replace(/\/+$/, '')}${suffix}`, { force: true });
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reports = [];
  for (const kind of String(option('backends', 'pglite,postgres')).split(',')) reports.push(await runIngestKillFault({ kind, images: Number(option('images', 60)), killAfterMs: Number(option('kill-after-ms', 8000)) }));
  console.log(JSON.stringify(reports, null, 2));
  if (reports.some((report) => report.passed === false)) process.exitCode = 1;
}
