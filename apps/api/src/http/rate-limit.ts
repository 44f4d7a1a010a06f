// The per-credential rate limit (rate-limiter-flexible). On PostgreSQL the counters live in the database (table
// rate_limit, migration 0008), so every API process on it counts against one limit; on the embedded database one
// process owns the data directory (the lock file in db/database.ts), so its memory is the whole count and a
// counter write in WASM per request would be pure cost.
import pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Database } from '../db/database.js';

export type RateLimiter = { limiter: RateLimiterAbstract; close(): Promise<void> };

export function createRateLimiter({ db, requestsPerMinute }: { db: Database; requestsPerMinute: number }): RateLimiter {
  if (db.kind === 'pglite' || !db.connectionUrl) {
    return { limiter: new RateLimiterMemory({ points: requestsPerMinute, duration: 60 }), close: async () => {} };
  }
  // A pool of its own with synchronous_commit off: every request of one credential updates the same counter row,
  // and with the server's default each update would hold that row's lock until its WAL record reached disk,
  // serialising the credential's requests on fsync. A crash may forget the last few counts, which a rate limit
  // can afford; the application's own writes keep synchronous commits on the main pool.
  const pool = new pg.Pool({ connectionString: db.connectionUrl, max: 4, options: '-c synchronous_commit=off' });
  pool.on('error', () => {});
  const limiter = new RateLimiterPostgres({
    storeClient: pool,
    storeType: 'pool',
    tableName: 'rate_limit',
    tableCreated: true,
    points: requestsPerMinute,
    duration: 60,
  });
  return { limiter, close: () => pool.end() };
}
