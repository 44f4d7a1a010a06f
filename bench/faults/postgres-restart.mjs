// Fault: PostgreSQL crashes and restarts under load (issue 15). A scratch cluster of its own (scratch-cluster.mjs),
// an API process on it, concurrent clients searching by case and ingesting (upload + ingestCase) while the server
// is stopped with `pg_ctl restart -m immediate` (no checkpoint: a crash, then WAL recovery). Checks:
//   - every failed request got a retryable answer (extensions.retryable: SERVICE_UNAVAILABLE, AUDIT_UNAVAILABLE),
//     never INTERNAL_SERVER_ERROR, a dropped socket or a hang;
//   - the API recovers by itself: requests succeed again after the restart and /readyz answers 200, with the
//     same process;
//   - no acknowledged ingest is lost: every case answered ADDED is in the database afterwards (counted).
//
//   npm run build && node bench/faults/postgres-restart.mjs [--seconds 20] [--restart-at 6] [--clients 8]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiProcess, waitFor } from '../../test/support/processes.mjs';
import { api, option, root } from '../cli.mjs';
import { syntheticJpeg, withComment } from '../photographs.mjs';
import { startScratchCluster } from './scratch-cluster.mjs';

const TINY_MODEL = path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const SEARCH = 'query C($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank case { id referenceGrading { drGrade } } } } }';
const INGEST = 'mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id } } }';
const RETRYABLE = new Set(['SERVICE_UNAVAILABLE', 'AUDIT_UNAVAILABLE']);

/** One request's outcome: ok, or the code and whether the answer said retryable; socket failures as their own kind. */
async function send(url, init) {
  const started = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: judged by the status alone
    }
    const error = body?.errors?.[0];
    if (!error && response.status < 400) return { ok: true, body, at: started, ms: Date.now() - started };
    return { ok: false, code: error?.extensions?.code ?? `HTTP ${response.status}`, retryable: error?.extensions?.retryable === true, status: response.status, at: started, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, code: `socket: ${error.cause?.code ?? error.name}`, retryable: false, at: started, ms: Date.now() - started };
  }
}

export async function runPostgresRestartFault({ seconds = 20, restartAt = 6, clients = 8, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const [{ openDatabase }, { buildCohort }, { loadCohort, renderSyntheticPhotograph }, { Embedder }] = await Promise.all([
    api('db/database.js'), api('fixtures/cohort.js'), api('fixtures/seed.js'), api('embedding/embedder.js'),
  ]);
  const cluster = await startScratchCluster();
  let server;
  try {
    log(`postgres-restart: scratch cluster on port ${cluster.port}; seeding test-clinic`);
    const db = await openDatabase({ database: { kind: 'postgres', url: cluster.url }, migrationsDir: path.join(root, 'prisma/migrations') });
    const embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
    await loadCohort(db, buildCohort('test-clinic'), { renderImage: renderSyntheticPhotograph, embedder });
    await embedder.release();
    const caseIds = (await db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id')).map((row) => row.id);
    await db.close();

    server = await startApiProcess({ env: { DATABASE_URL: cluster.url, MODEL_PATH: TINY_MODEL, RATE_LIMIT_PER_MINUTE: '10000000', AUTH_LOCAL_KEY_DIR: path.join(path.dirname(cluster.logFile), 'keys') } });
    const token = await server.tokenFor('demo-clinician');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const base = await syntheticJpeg(3, { width: 512, height: 384 });
    const outcomes = [];
    const acknowledged = [];
    let serial = 0;
    const deadline = Date.now() + seconds * 1000;

    const searcher = async () => {
      while (Date.now() < deadline) {
        const imageId = caseIds[Math.floor(Math.random() * caseIds.length)];
        outcomes.push({ op: 'search', ...(await send(server.url, { method: 'POST', headers, body: JSON.stringify({ query: SEARCH, variables: { input: { imageId, k: 10, filters: { drGrades: [Math.floor(Math.random() * 5)] } } } }) })) });
      }
    };
    const ingester = async () => {
      while (Date.now() < deadline) {
        serial += 1;
        const mine = serial;
        const uploaded = await send(`${server.baseUrl}/uploads`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: headers.authorization }, body: withComment(base, `fault ${mine}`) });
        outcomes.push({ op: 'upload', ...uploaded });
        if (!uploaded.ok) continue;
        const input = { uploadToken: uploaded.body.uploadToken, dataset: 'fault', patient: { mrn: `FAULT-${mine}`, mrnSystem: 'urn:oid:1.2.3.4.66' }, visitDate: '2024-06-01', eye: 'LEFT', grading: { drGrade: mine % 5 } };
        const ingested = await send(server.url, { method: 'POST', headers, body: JSON.stringify({ query: INGEST, variables: { input } }) });
        outcomes.push({ op: 'ingest', ...ingested });
        if (ingested.ok && ingested.body.data.ingestCase.status === 'ADDED') acknowledged.push({ id: ingested.body.data.ingestCase.case.id, mrn: input.patient.mrn });
      }
    };
    const started = Date.now();
    const restart = (async () => {
      await new Promise((resolve) => setTimeout(resolve, restartAt * 1000));
      const down = Date.now();
      log(`postgres-restart: pg_ctl restart -m immediate at ${((down - started) / 1000).toFixed(1)} s`);
      await cluster.restart('immediate');
      return { at: down - started, upAgainAfterMs: Date.now() - down };
    })();
    const workers = Array.from({ length: clients }, (_, index) => (index % 2 === 0 ? searcher() : ingester()));
    const [restarted] = await Promise.all([restart, ...workers]);

    // Recovered by itself: the same process answers ready and serves again, without a restart of the API.
    const ready = await waitFor(`${server.baseUrl}/readyz`, { timeoutMs: 30_000 }).then(() => true, () => false);
    const after = await send(server.url, { method: 'POST', headers, body: JSON.stringify({ query: SEARCH, variables: { input: { imageId: caseIds[0], k: 10 } } }) });
    const sameProcess = server.isAlive();

    const check = await openDatabase({ database: { kind: 'postgres', url: cluster.url }, migrationsDir: path.join(root, 'prisma/migrations') });
    const storedRows = await check.sql.query("SELECT i.id::text AS id, p.mrn FROM fundus_image i JOIN patient p ON p.id = i.patient_id WHERE p.mrn LIKE 'FAULT-%'");
    await check.close();
    const stored = new Set(storedRows.map((row) => row.id));
    const lost = acknowledged.filter((entry) => !stored.has(entry.id));

    const failures = outcomes.filter((outcome) => !outcome.ok);
    const byCode = {};
    for (const failure of failures) byCode[`${failure.op} ${failure.code}${failure.retryable ? ' (retryable)' : ''}`] = (byCode[`${failure.op} ${failure.code}${failure.retryable ? ' (retryable)' : ''}`] ?? 0) + 1;
    const notRetryable = failures.filter((failure) => !failure.retryable || !RETRYABLE.has(failure.code));
    const restartEnd = restarted.at + restarted.upAgainAfterMs;
    const firstOkAfter = outcomes.filter((outcome) => outcome.ok && outcome.at - started >= restartEnd).sort((a, b) => a.at - b.at)[0];
    const report = {
      seconds,
      clients,
      requests: outcomes.length,
      ok: outcomes.length - failures.length,
      failedByCode: byCode,
      notRetryable: notRetryable.length,
      restart: { atMs: restarted.at, serverBackAfterMs: restarted.upAgainAfterMs, firstSuccessAfterServerBackMs: firstOkAfter ? firstOkAfter.at - started - restartEnd : null },
      recovered: ready && after.ok && sameProcess,
      ingest: { acknowledged: acknowledged.length, stored: stored.size, lost: lost.length, storedButNotAcknowledged: stored.size - (acknowledged.length - lost.length) },
    };
    report.passed = report.notRetryable === 0 && report.recovered && report.ingest.lost === 0 && failures.length > 0;
    if (failures.length === 0) report.note = 'no request overlapped the outage: lengthen --seconds or add --clients';
    return report;
  } finally {
    if (server) await server.stop();
    cluster.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = await runPostgresRestartFault({ seconds: Number(option('seconds', 20)), restartAt: Number(option('restart-at', 6)), clients: Number(option('clients', 8)) });
  console.log(JSON.stringify(report, null, 2));
  if (!report.passed) process.exitCode = 1;
}
