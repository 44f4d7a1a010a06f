// Fault: the API killed with SIGKILL on the embedded database (issue 15). An API process on a PGlite directory
// ingests cases (upload + ingestCase) from concurrent clients and is killed mid-load; its lock file stays behind.
// Started again on the same directory with no manual step, it must take the stale lock over, open the database,
// answer /readyz, and hold every case it had acknowledged (counted against the database afterwards).
//
//   npm run build && node bench/faults/api-kill-embedded.mjs [--seconds 6] [--clients 4] [--kills 2]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiProcess } from '../../test/support/processes.mjs';
import { api, option, root } from '../cli.mjs';
import { syntheticJpeg, withComment } from '../photographs.mjs';

const TINY_MODEL = path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const INGEST = 'mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id } } }';

export async function runApiKillEmbeddedFault({ seconds = 6, clients = 4, kills = 2, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const [{ openDatabase }] = await Promise.all([api('db/database.js')]);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-fault-pglite-'));
  const lockFile = `${dataDir}.lock`;
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-fault-keys-'));
  const env = { PGLITE_DATA_DIR: dataDir, MODEL_PATH: TINY_MODEL, AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '10000000' };
  delete process.env.DATABASE_URL;
  const acknowledged = [];
  const rounds = [];
  const base = await syntheticJpeg(5, { width: 512, height: 384 });
  let serial = 0;
  let server = null;
  try {
    for (let round = 0; round <= kills; round += 1) {
      const opened = Date.now();
      server = await startApiProcess({ env, timeoutMs: 180_000 });
      const openMs = Date.now() - opened;
      const authorization = `Bearer ${await server.tokenFor('demo-clinician')}`;
      if (round === kills) {
        rounds.push({ round, openMs, staleLockTakenOver: round > 0 });
        break;
      }
      let stop = false;
      const client = async () => {
        while (!stop) {
          serial += 1;
          const mine = serial;
          try {
            const uploaded = await fetch(`${server.baseUrl}/uploads`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization }, body: withComment(base, `kill ${mine}`) });
            if (uploaded.status !== 201) continue;
            const { uploadToken } = await uploaded.json();
            const response = await fetch(server.url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization },
              body: JSON.stringify({ query: INGEST, variables: { input: { uploadToken, dataset: 'fault', patient: { mrn: `KILL-${mine}`, mrnSystem: 'urn:oid:1.2.3.4.55' }, visitDate: '2024-06-01', eye: 'RIGHT' } } }),
            });
            const body = await response.json();
            if (body.data?.ingestCase?.status === 'ADDED') acknowledged.push(body.data.ingestCase.case.id);
          } catch {
            // the process was killed under this request: not acknowledged
          }
        }
      };
      const workers = Array.from({ length: clients }, client);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      const before = acknowledged.length;
      await server.kill('SIGKILL');
      stop = true;
      await Promise.all(workers);
      rounds.push({ round, openMs, acknowledgedBeforeKill: before, lockLeftBehind: fs.existsSync(lockFile), lockHolder: fs.existsSync(lockFile) ? Number(fs.readFileSync(lockFile, 'utf8')) : null, killedPid: server.pid });
      log(`api-kill-embedded: round ${round}: killed pid ${server.pid} after ${acknowledged.length} acknowledged ingests; lock left behind: ${rounds.at(-1).lockLeftBehind}`);
      server = null;
    }
    const ready = await fetch(`${server.baseUrl}/readyz`).then((response) => response.status);
    await server.stop();
    server = null;
    const db = await openDatabase({ database: { kind: 'pglite', dataDir }, migrationsDir: path.join(root, 'prisma/migrations') });
    const rows = await db.sql.query("SELECT i.id::text AS id FROM fundus_image i JOIN patient p ON p.id = i.patient_id WHERE p.mrn LIKE 'KILL-%'");
    await db.close();
    const stored = new Set(rows.map((row) => row.id));
    const lost = acknowledged.filter((id) => !stored.has(id)).length;
    const report = { kills, rounds, readyAfterLastRestart: ready, ingest: { acknowledged: acknowledged.length, stored: stored.size, lost } };
    report.passed = ready === 200 && lost === 0 && acknowledged.length > 0 && rounds.slice(0, kills).every((entry) => entry.lockLeftBehind);
    return report;
  } finally {
    if (server) await server.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(lockFile, { force: true });
    fs.rmSync(keyDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = await runApiKillEmbeddedFault({ seconds: Number(option('seconds', 6)), clients: Number(option('clients', 4)), kills: Number(option('kills', 2)) });
  console.log(JSON.stringify(report, null, 2));
  if (!report.passed) process.exitCode = 1;
}
