// Faults (issue 15), the scripts in bench/faults run small: PostgreSQL crashed and restarted under load (a scratch
// cluster of its own, never the shared server): only retryable answers, the same API process recovers, no
// acknowledged ingest lost; the ingest CLI killed with SIGKILL mid-run: a rerun completes with every photograph
// stored once; the API killed with SIGKILL on the embedded database: it reopens by itself with every acknowledged
// case. Each report is printed on failure.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { POSTGRES_SKIP_REASON, repositoryRoot } from '../support/backends.mjs';

const faults = (file) => import(path.join(repositoryRoot, 'bench', 'faults', file));
const { runPostgresRestartFault } = await faults('postgres-restart.mjs');
const { runIngestKillFault } = await faults('ingest-kill.mjs');
const { runApiKillEmbeddedFault } = await faults('api-kill-embedded.mjs');
const { scratchClusterUnavailable } = await faults('scratch-cluster.mjs');
const quiet = () => {};

describe('faults', () => {
  test('PostgreSQL crashed and restarted under load: retryable answers only, recovery without a restart, no acknowledged ingest lost', { skip: scratchClusterUnavailable() ?? false, timeout: 600_000 }, async () => {
    const report = await runPostgresRestartFault({ seconds: 14, restartAt: 4, clients: 6, log: quiet });
    const shown = JSON.stringify(report, null, 2);
    assert.ok(report.requests - report.ok > 0, `some requests must have met the outage\n${shown}`);
    assert.equal(report.notRetryable, 0, `every failure retryable\n${shown}`);
    assert.equal(report.recovered, true, shown);
    assert.ok(report.ingest.acknowledged > 0, shown);
    assert.equal(report.ingest.lost, 0, shown);
  });

  const IMAGES = 400;
  for (const kind of ['pglite', 'postgres']) {
    test(`the ingest CLI killed with SIGKILL mid-run on ${kind}: a rerun completes, every photograph stored once`, { skip: kind === 'postgres' && POSTGRES_SKIP_REASON, timeout: 600_000 }, async () => {
      // Enough photographs that the kill lands mid-run on a quiet machine too (80 were all stored within 2 s once,
      // and the test failed for want of a kill); on a loaded one the kill may come before the first is stored,
      // which the assertions below also accept (the rerun then has no duplicates to skip).
      const report = await runIngestKillFault({ kind, images: IMAGES, killAfterMs: 1500, log: quiet });
      const shown = JSON.stringify(report, null, 2);
      assert.equal(report.firstRun.signal, 'SIGKILL', `the first run was killed before it finished\n${shown}`);
      assert.ok(report.firstRun.stored < IMAGES, `killed mid-run\n${shown}`);
      assert.equal(report.rerun.exit, 0, shown);
      assert.deepEqual([report.final.images, report.final.distinct_images, report.final.embeddings], [IMAGES, IMAGES, IMAGES], shown);
      assert.equal(report.final.patients, report.final.distinct_patients, shown);
      assert.equal(report.rerun.duplicates, report.firstRun.stored, `the rerun skips exactly what the killed run wrote\n${shown}`);
      assert.equal(report.passed, true, shown);
    });
  }

  test('the API killed with SIGKILL on the embedded database reopens with no manual step and keeps every acknowledged case', { timeout: 600_000 }, async () => {
    const report = await runApiKillEmbeddedFault({ seconds: 3, clients: 3, kills: 1, log: quiet });
    const shown = JSON.stringify(report, null, 2);
    assert.equal(report.rounds[0].lockLeftBehind, true, `the kill leaves the lock file\n${shown}`);
    assert.equal(report.readyAfterLastRestart, 200, shown);
    assert.ok(report.ingest.acknowledged > 0, shown);
    assert.equal(report.ingest.lost, 0, shown);
  });
});
