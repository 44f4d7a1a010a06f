// The per-credential rate limit (rate-limiter-flexible). On PostgreSQL the counters live in the database (table
// rate_limit, migration 0008), so every API process on it counts against one limit; on the embedded database one
// process owns the data directory (the lock file in db/database.ts), so its memory is the whole count and a
// counter write in WASM per request would be pure cost.
//
// On PostgreSQL a process takes a credential's points from the shared counter in leases of several at once
// (LeasingRateLimiter): one counter update admits up to `leaseSize` requests of this process. Every request of one
// credential updates the same row, so one update a request queued the credential's requests on that row's lock:
// at 32 clients searching by case it was the largest cost of a search (bench/README.md, "Leasing the rate limit").
// The counter counts what was leased, so the credential is never admitted past its limit across the processes; the
// price is that points another process holds unspent can refuse it earlier, by at most (leaseSize - 1) requests
// for each other process in a window.
import pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Database } from '../db/database.js';

/** What the auth middleware needs of a limiter: consume one point of `key`; a refusal rejects with RateLimiterRes. */
export type PointLimiter = { consume(key: string): Promise<unknown> };

export type RateLimiter = {
  limiter: PointLimiter;
  /** The same limiter as leases from the shared counter (PostgreSQL), for /readyz's counts; null on PGlite. */
  leases: LeasingRateLimiter | null;
  close(): Promise<void>;
};

/** The most points one lease takes: a request in `MAX_LEASE` reaches the database at a high rate. */
export const MAX_LEASE = 32;

/**
 * Points a lease takes at a limit of `points` a window: one in a hundred, between 1 and MAX_LEASE. Small limits
 * (tests use 3 and 40) lease one point at a time, i.e. count every request in the database, exactly as without leases.
 */
export function leaseSizeFor(points: number): number {
  return Math.max(1, Math.min(MAX_LEASE, Math.floor(points / 100)));
}

/** One credential's lease in this process. */
type Lease = {
  /** Leased points not yet spent, valid until `expiresAt` (the end of the store's window they were counted in). */
  remaining: number;
  expiresAt: number;
  /** The store's points left in that window after the last lease, to take no more than are left. */
  storeRemaining: number;
  /** Refused by the store until then (the window is spent): answered here without asking it again. */
  refusedUntil: number;
  refusal: RateLimiterRes | null;
  /** The lease being taken, which every request arriving meanwhile waits for. */
  pending: Promise<void> | null;
};

/**
 * A limiter in front of a shared store (RateLimiterPostgres) that takes points from it in leases. The store counts
 * the leased points, so admitted requests never exceed the limit in any window, however many processes lease.
 * Requests arriving while a lease is being taken wait for it and share it; a lease that gets fewer points than
 * asked (the window is nearly spent) admits that many, and the rest are refused with the store's RateLimiterRes.
 */
export class LeasingRateLimiter implements PointLimiter {
  private readonly leases = new Map<string, Lease>();
  private readonly leaseSize: number;
  private readonly now: () => number;
  private storeCalls = 0;
  private admitted = 0;

  constructor(private readonly store: Pick<RateLimiterAbstract, 'consume' | 'points'>, options: { leaseSize?: number; now?: () => number } = {}) {
    this.leaseSize = options.leaseSize ?? leaseSizeFor(store.points);
    if (!Number.isInteger(this.leaseSize) || this.leaseSize < 1) throw new Error(`lease size ${this.leaseSize} is not a positive integer`);
    this.now = options.now ?? Date.now;
  }

  async consume(key: string): Promise<void> {
    for (;;) {
      const now = this.now();
      let lease = this.leases.get(key);
      if (!lease || (lease.expiresAt <= now && lease.refusedUntil <= now && lease.pending === null)) {
        if (this.leases.size >= 10_000) this.forgetExpired(now);
        lease = { remaining: 0, expiresAt: 0, storeRemaining: this.store.points, refusedUntil: 0, refusal: null, pending: null };
        this.leases.set(key, lease);
      }
      if (lease.remaining > 0 && now < lease.expiresAt) {
        lease.remaining -= 1;
        this.admitted += 1;
        return;
      }
      if (now < lease.refusedUntil && lease.refusal) throw this.refusalAt(lease.refusal, lease.refusedUntil, now);
      if (lease.pending === null) {
        const taking = this.take(key, lease);
        lease.pending = taking;
        taking.then(() => (lease.pending = null), () => (lease.pending = null));
      }
      // A refusal or a store error reaches every request that waited for this lease.
      await lease.pending;
    }
  }

  /** How many requests the leases admitted, and how many times the store was asked (for benchmarks and tests). */
  stats(): { admitted: number; storeCalls: number; leaseSize: number } {
    return { admitted: this.admitted, storeCalls: this.storeCalls, leaseSize: this.leaseSize };
  }

  private async take(key: string, lease: Lease): Promise<void> {
    // No more than the store said were left in the window (a fresh window has all of them).
    const asked = lease.expiresAt > this.now() ? Math.max(1, Math.min(this.leaseSize, lease.storeRemaining)) : this.leaseSize;
    this.storeCalls += 1;
    let answer: RateLimiterRes;
    let granted: number;
    try {
      answer = await this.store.consume(key, asked);
      granted = asked;
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      answer = rejection;
      // The store added all `asked` points; those past the limit were refused, those within it are ours.
      granted = Math.max(0, Math.min(asked, asked - (answer.consumedPoints - this.store.points)));
    }
    // A lease is taken only once the last one is spent or expired, and no request spends while it is taken.
    const expiresAt = this.now() + answer.msBeforeNext;
    lease.remaining = granted;
    lease.expiresAt = expiresAt;
    lease.storeRemaining = answer.remainingPoints;
    if (granted < asked) {
      lease.refusedUntil = expiresAt;
      lease.refusal = answer;
      if (granted === 0) throw answer;
    }
  }

  /** The store's refusal with the time left until `until`, as of `now`. */
  private refusalAt(refusal: RateLimiterRes, until: number, now: number): RateLimiterRes {
    return new RateLimiterRes(refusal.remainingPoints, Math.max(0, until - now), refusal.consumedPoints, false);
  }

  private forgetExpired(now: number): void {
    for (const [key, lease] of this.leases) {
      if (lease.expiresAt <= now && lease.refusedUntil <= now && lease.pending === null) this.leases.delete(key);
    }
  }
}

export function createRateLimiter({ db, requestsPerMinute }: { db: Database; requestsPerMinute: number }): RateLimiter {
  if (db.kind === 'pglite' || !db.connectionUrl) {
    return { limiter: new RateLimiterMemory({ points: requestsPerMinute, duration: 60 }), leases: null, close: async () => {} };
  }
  // A pool of its own with synchronous_commit off: every lease of one credential updates the same counter row,
  // and with the server's default each update would hold that row's lock until its WAL record reached disk,
  // serialising the credential's leases on fsync. A crash may forget the last few counts, which a rate limit
  // can afford; the application's own writes keep synchronous commits on the main pool.
  const pool = new pg.Pool({ connectionString: db.connectionUrl, max: 4, options: '-c synchronous_commit=off' });
  pool.on('error', () => {});
  const store = new RateLimiterPostgres({
    storeClient: pool,
    storeType: 'pool',
    tableName: 'rate_limit',
    tableCreated: true,
    points: requestsPerMinute,
    duration: 60,
  });
  const leases = new LeasingRateLimiter(store);
  return { limiter: leases, leases, close: () => pool.end() };
}
