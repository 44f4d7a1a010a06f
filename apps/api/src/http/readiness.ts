// GET /readyz, for a load balancer or an orchestrator: whether this process can serve now (the database answers,
// every migration in this build is applied, the embedding model is loaded). /healthz is liveness only: the
// process runs; a replica that is live but not ready gets no traffic and is not restarted for it.
import type { RequestHandler } from 'express';
import type { Database } from '../db/database.js';
import { readMigrations } from '../db/migrate.js';
import { auditWriterFor } from '../audit/audit.service.js';
import type { Embedder } from '../embedding/embedder.js';
import type { ShardSearch } from '../search/shards.js';
import type { LeasingRateLimiter } from './rate-limit.js';

/** A database that has not answered in this long counts as unreachable (a dead server can hang a connect). */
const DATABASE_CHECK_TIMEOUT_MS = 2000;

type Check = { ok: boolean; detail?: string };

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * This process's counters, for operators and benchmarks (bench/load.mjs reads them): no identifiers, only counts.
 * `rateLimit` is null where the count stays in the process's memory (the embedded database).
 */
export type ReadinessCounters = {
  preparedStatements: { named: number; cap: number; unnamedOverCap: number } | null;
  audit: { inserts: number; requests: number; largestInsert: number };
  rateLimit: { admitted: number; storeCalls: number; leaseSize: number } | null;
  /** The sharded search's counts (search/shards.ts), null without SEARCH_SHARD_URLS. A shard that fails does not
   *  make the process unready: the primary answers, and `primaryFallbacks` counts it. */
  searchShards: { shards: number; shardSearches: number; withQueued: number; primaryFallbacks: number; resharded: number } | null;
};

export function createReadinessRoute({ db, embedder, migrationsDir, rateLimiter = null, shardSearch = null }: {
  db: Database;
  embedder: Embedder | null;
  migrationsDir: string;
  /** The PostgreSQL rate limit's leases (http/rate-limit.ts), when there are any. */
  rateLimiter?: Pick<LeasingRateLimiter, 'stats'> | null;
  shardSearch?: Pick<ShardSearch, 'stats' | 'shards'> | null;
}): RequestHandler {
  const expected = readMigrations(migrationsDir).then((migrations) => migrations.map((migration) => migration.name));
  expected.catch(() => {});
  return async (_request, response) => {
    const checks: { database: Check; migrations: Check; model: Check } = {
      database: { ok: false },
      migrations: { ok: false },
      model: embedder ? { ok: true, detail: embedder.metadata.modelVersion } : { ok: false, detail: 'no embedding model loaded' },
    };
    // How the prepared-statement names (db/statement-names.ts), the audit log's group commit (AuditWriter) and the
    // rate limit's leases are going in this process.
    const { inserts, requests, largestInsert } = auditWriterFor(db.sql).stats();
    const counters: ReadinessCounters = {
      preparedStatements: db.namedStatements?.stats() ?? null,
      audit: { inserts, requests, largestInsert },
      rateLimit: rateLimiter?.stats() ?? null,
      searchShards: shardSearch ? { shards: shardSearch.shards.length, ...shardSearch.stats() } : null,
    };
    try {
      const rows = await withTimeout(db.sql.query<{ name: string }>('SELECT name FROM fundus_migrations'), DATABASE_CHECK_TIMEOUT_MS);
      const names = counters.preparedStatements;
      const limit = counters.rateLimit;
      checks.database = {
        ok: true,
        detail: [
          ...(names ? [`prepared statements: ${names.named} of ${names.cap} texts named, ${names.unnamedOverCap} executions unnamed past the cap`] : []),
          `audit log: ${inserts} INSERTs carried ${requests} requests, at most ${largestInsert} in one`,
          ...(limit ? [`rate limit: ${limit.storeCalls} leases of up to ${limit.leaseSize} admitted ${limit.admitted} requests`] : []),
        ].join('; '),
      };
      const applied = new Set(rows.map((row) => row.name));
      const pending = (await expected).filter((name) => !applied.has(name));
      checks.migrations = pending.length === 0 ? { ok: true } : { ok: false, detail: `not applied: ${pending.join(', ')}` };
    } catch (error) {
      // The driver's code only (ECONNREFUSED, 57P03 starting up, ...): this route is unauthenticated.
      const code = (error as { code?: unknown }).code;
      checks.database = { ok: false, detail: typeof code === 'string' ? `unreachable (${code})` : 'unreachable' };
      checks.migrations = { ok: false, detail: 'unknown while the database is unreachable' };
    }
    const ready = checks.database.ok && checks.migrations.ok && checks.model.ok;
    response.setHeader('Cache-Control', 'no-store');
    response.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', database: db.kind, checks, counters });
  };
}
