// API processes of their own (node apps/api/dist/index.js), for the suites and scripts that need more than one
// API on a database, or an API to kill: replicas, load, faults. Each listens on a free loopback port.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { repositoryRoot } from './backends.mjs';

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `url` until it answers `status` (default 200) or `timeoutMs` passes. */
export async function waitFor(url, { status = 200, timeoutMs = 60_000, isAlive = () => true } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`the process serving ${url} exited before answering (${last})`);
    try {
      const response = await fetch(url);
      if (response.status === status) return response;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = String(error.cause?.code ?? error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer ${status} in ${timeoutMs} ms (last: ${last})`);
}

/**
 * Starts an API process with `env` over the defaults below (add DATABASE_URL or PGLITE_DATA_DIR, a shared
 * AUTH_LOCAL_KEY_DIR so every process accepts the same demo tokens) and waits until it is `waitUntil`
 * (readyz: ready to serve; healthz: live). Its stderr/stdout lines go to `output`; `nodeArgs` go to node (--cpu-prof).
 */
export async function startApiProcess({ env = {}, waitUntil = 'readyz', timeoutMs = 120_000, output = [], nodeArgs = [] } = {}) {
  const port = env.PORT ?? String(await freePort());
  const child = spawn(process.execPath, [...nodeArgs, path.join(repositoryRoot, 'apps', 'api', 'dist', 'index.js')], {
    cwd: repositoryRoot,
    env: { ...process.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', AUTH_LOCAL_ISSUER: 'true', EMBEDDING_DEVICE: 'cpu', ...env, HOST: '127.0.0.1', PORT: port },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => output.push(...chunk.split('\n').filter(Boolean)));
  }
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let alive = true;
  exited.then(() => {
    alive = false;
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${baseUrl}/${waitUntil}`, { timeoutMs, isAlive: () => alive });
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${error.message}\n${output.slice(-20).join('\n')}`);
  }
  return {
    baseUrl,
    url: `${baseUrl}/graphql`,
    pid: child.pid,
    output,
    exited,
    isAlive: () => alive,
    /** A demo user's bearer token from this process's local issuer. */
    async tokenFor(subject) {
      const response = await fetch(`${baseUrl}/auth/local/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ subject }) });
      if (response.status !== 201) throw new Error(`sign-in as ${subject} answered ${response.status}`);
      return (await response.json()).token;
    },
    kill(signal = 'SIGKILL') {
      if (alive) child.kill(signal);
      return exited;
    },
    /** SIGTERM (a clean shutdown), SIGKILL after `graceMs`. */
    async stop(graceMs = 10_000) {
      if (!alive) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}
