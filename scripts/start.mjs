// `npm start`: the API (GraphQL on API_PORT, default 4000) and the web app (WEB_PORT, default 3000), after
// `turbo run build`. The embedded PGlite database is created in .data/ on first start and seeded with the
// synthetic demo cohort; both listen on 127.0.0.1 only (the local demo issuer lets anyone on the machine sign in as a demo user); set DATABASE_URL for PostgreSQL + pgvector instead. Ctrl-C stops both.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const apiPort = process.env.API_PORT ?? '4000';
const webPort = process.env.WEB_PORT ?? '3000';
const children = [];

function start(name, command, args, env) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    console.error(`[start] ${name} exited (${signal ?? code}); stopping everything`);
    for (const other of children) if (other !== child && other.exitCode === null) other.kill('SIGTERM');
    process.exitCode = code ?? 1;
  });
  children.push(child);
}

// NODE_ENV=production unless set: graphql-js otherwise checks every failed instanceof for a second copy of itself,
// which took the API 1.3-1.8x the CPU per search (bench/README.md, "Load").
start('api', process.execPath, [path.join(root, 'apps/api/dist/index.js')], { PORT: apiPort, NODE_ENV: process.env.NODE_ENV ?? 'production' });
start('web', process.execPath, [path.join(root, 'node_modules/next/dist/bin/next'), 'start', path.join(root, 'apps/web'), '-p', webPort, '-H', process.env.WEB_HOST ?? '127.0.0.1'], {
  API_URL: process.env.API_URL ?? `http://127.0.0.1:${apiPort}/graphql`,
  NEXT_TELEMETRY_DISABLED: '1',
});
console.error(`[start] API  http://127.0.0.1:${apiPort}/graphql\n[start] web  http://127.0.0.1:${webPort}/`);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => children.forEach((child) => child.kill(signal)));
