// A PostgreSQL cluster of the fault scripts' own (initdb in a temporary directory, its own port, fsync on), so
// restarting or crashing it never touches the server other work uses. Needs PostgreSQL 15's binaries with pgvector
// installed (scripts/ci-setup.sh); run as root, the server runs as the postgres user (initdb refuses root).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../test/support/processes.mjs';

const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why a scratch cluster cannot be made here, or null when it can. */
export function scratchClusterUnavailable() {
  if (!fs.existsSync(path.join(BIN, 'initdb'))) return `no PostgreSQL binaries in ${BIN} (set PG_BIN)`;
  if (process.getuid?.() === 0 && spawnSync('id', ['postgres']).status !== 0) return 'running as root but there is no postgres user to run the server';
  return null;
}

const commandLine = (command, args) => (process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', path.join(BIN, command), ...args]] : [path.join(BIN, command), args]);

/** Asynchronous: the event loop (a script's load clients) keeps running while the server stops and starts. */
async function asServerUser(command, args) {
  const [file, argv] = commandLine(command, args);
  return (await promisify(execFile)(file, argv, { encoding: 'utf8' })).stdout;
}

export async function startScratchCluster({ database = 'fundus' } = {}) {
  const problem = scratchClusterUnavailable();
  if (problem) throw new Error(problem);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-fault-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres', root]);
  const port = await freePort();
  await asServerUser('initdb', ['-D', dataDir, '--auth=trust', '-U', 'postgres', '-E', 'UTF8']);
  const serverOptions = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c max_connections=100`;
  const ctl = (...args) => asServerUser('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '120', ...args]);
  await ctl('start');
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = `postgresql://postgres@127.0.0.1:${port}/${database}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS vector');
  await client.end();
  return {
    url,
    port,
    logFile,
    /** mode 'immediate' is a crash (no checkpoint; recovery replays the WAL at start), 'fast' a clean restart. */
    restart: (mode = 'immediate') => ctl('restart', '-m', mode),
    stop: (mode = 'fast') => ctl('stop', '-m', mode),
    start: () => ctl('start'),
    destroy() {
      const [file, argv] = commandLine('pg_ctl', ['-D', dataDir, 'stop', '-m', 'immediate']);
      spawnSync(file, argv, { stdio: 'ignore' });
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
