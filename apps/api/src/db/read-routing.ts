// Reads on streaming replicas, writes on the primary. Searches and case reads run on a replica (round robin over
// the healthy ones); a credential that has just written reads its own writes: after each of its mutations the
// primary's WAL position (pg_current_wal_lsn) is remembered for it, and its reads go only to a replica whose
// replay position (pg_last_wal_replay_lsn) has reached that, else to the primary. A replica that lags more than
// maxLagMs, is unreachable, or is not a standby at all is left out until a poll finds it well again, and a read
// that fails on a replica is rerun on the primary, so replica trouble costs latency, never an answer.
//
// The remembered positions live in this process. Behind HAProxy each credential is hashed to one API process
// (scripts/cluster/start.sh), so that suffices while the process lives; if it dies, the credential's next process
// has no position for it and may read from a replica up to maxLagMs behind for the first read (ARCHITECTURE.md).
import pg from 'pg';
import { AppError } from '../errors.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { vectorSessionOptions } from '../search/similar-images.js';
import type { Logger } from '../logger.js';
import { gradeFilteredPoolSize, openGradeFilteredPool, prismaOverPool, type Database } from './database.js';

export type ReadTarget = 'primary' | 'replica';

export type ReadRoutingStats = {
  replicaReads: number;
  primaryReads: number;
  /** Reads that failed on a replica and were rerun on the primary. */
  fallbacks: number;
  replicas: { name: string; healthy: boolean; lagMs: number | null; replayLsn: string | null; problem: string | null }[];
};

export type ReadRouting = {
  /** Runs a read for `subject` where its own writes are visible: a caught-up healthy replica, else the primary. */
  read<T>(subject: string, work: (prisma: PrismaClient, target: ReadTarget) => Promise<T>): Promise<T>;
  /** After a write by `subject`: its reads stay on the primary until a replica has replayed this position. */
  recordWrite(subject: string): Promise<void>;
  /** Polls every replica now (tests; also after a failed replica read). */
  poll(): Promise<void>;
  stats(): ReadRoutingStats;
  close(): Promise<void>;
};

export type ReadRoutingOptions = {
  primary: Database;
  replicaUrls: string[];
  maxLagMs: number;
  pollIntervalMs: number;
  logger: Logger;
  /** Called with each replica's Prisma client once it is made (server.ts registers the sharded search on it). */
  onClient?: (prisma: PrismaClient) => void;
};

/** 'X/Y' (two hex halves of a 64-bit WAL position) to a bigint, comparable. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not a WAL position: ${text}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

type PrimarySample = { at: number; lsn: bigint };

/**
 * How far behind the primary a replica is, in ms, from the primary's recent WAL positions (oldest first): the
 * age of the oldest sample the replica has not replayed (a lower bound, within one poll interval), 0 when it
 * has replayed the newest, Infinity when it has not replayed even the oldest sample kept.
 */
export function replicaLagMs(samples: PrimarySample[], replayLsn: bigint, now: number): number {
  const newest = samples[samples.length - 1];
  if (!newest || replayLsn >= newest.lsn) return 0;
  const oldestUnreplayed = samples.find((sample) => sample.lsn > replayLsn)!;
  if (oldestUnreplayed === samples[0]) return Number.POSITIVE_INFINITY;
  return now - oldestUnreplayed.at;
}

type Replica = {
  name: string;
  pool: pg.Pool;
  prisma: PrismaClient;
  /** The replica's grade-filtered pool (db/database.ts, openGradeFilteredPool). */
  gradeFiltered: { close(): Promise<void> };
  healthy: boolean;
  replayLsn: bigint | null;
  lagMs: number | null;
  problem: string | null;
};

type PendingWrite = { lsn: bigint; at: number };

/** Every read on the primary: the embedded database, or PostgreSQL without replicas. */
function primaryOnly(primary: Database): ReadRouting {
  let primaryReads = 0;
  return {
    read(_subject, work) {
      primaryReads += 1;
      return work(primary.prisma, 'primary');
    },
    async recordWrite() {},
    async poll() {},
    stats: () => ({ replicaReads: 0, primaryReads, fallbacks: 0, replicas: [] }),
    async close() {},
  };
}

/** Connections of each replica's search pool. */
const REPLICA_POOL_SIZE = 10;

export async function openReadRouting(options: ReadRoutingOptions): Promise<ReadRouting> {
  const { primary, logger } = options;
  if (primary.kind !== 'postgres' || options.replicaUrls.length === 0) return primaryOnly(primary);

  const replicas: Replica[] = options.replicaUrls.map((url) => {
    const parsed = new URL(url);
    // A dead replica must fail fast (then the read is rerun on the primary), not hang the request.
    // The same pgvector session settings as the primary's pool (db/database.ts): searches run here.
    const pool = new pg.Pool({ connectionString: url, max: REPLICA_POOL_SIZE, connectionTimeoutMillis: 2000, options: vectorSessionOptions() });
    pool.on('error', () => {});
    const prisma = prismaOverPool(pool, primary.namedStatements);
    const gradeFiltered = openGradeFilteredPool({ connectionString: url, max: gradeFilteredPoolSize(REPLICA_POOL_SIZE), connectionTimeoutMillis: 2000 }, prisma, primary.namedStatements);
    options.onClient?.(prisma);
    return { name: `${parsed.hostname}:${parsed.port || '5432'}`, pool, prisma, gradeFiltered, healthy: false, replayLsn: null, lagMs: null, problem: 'not polled yet' };
  });
  const samples: PrimarySample[] = [];
  // Samples kept long enough to tell any lag up to maxLagMs apart from "more than that".
  const keepSamplesMs = options.maxLagMs * 2 + options.pollIntervalMs * 4;
  const pending = new Map<string, PendingWrite>();
  let replicaReads = 0;
  let primaryReads = 0;
  let fallbacks = 0;
  let next = 0;
  let polling: Promise<void> | null = null;

  const setHealth = (replica: Replica, healthy: boolean, problem: string | null) => {
    if (replica.healthy !== healthy) {
      if (healthy) logger.info('read replica in service', { replica: replica.name });
      else logger.warn('read replica left out of reads; reads go to the primary or the other replicas', { replica: replica.name, problem });
    }
    replica.healthy = healthy;
    replica.problem = problem;
  };

  async function pollOnce(): Promise<void> {
    const now = Date.now();
    try {
      const [row] = await primary.sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      if (row) samples.push({ at: now, lsn: parseLsn(row.lsn) });
    } catch (error) {
      logger.warn('could not read the primary WAL position', { error: String(error) });
    }
    while (samples.length > 1 && samples[0]!.at < now - keepSamplesMs) samples.shift();
    await Promise.all(
      replicas.map(async (replica) => {
        try {
          const { rows } = await replica.pool.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
          // NULL: the server is not in recovery, so it is no replica of anything (a promoted one, or misconfigured).
          if (!rows[0]?.lsn) return setHealth(replica, false, 'not a streaming replica (pg_last_wal_replay_lsn() is NULL)');
          replica.replayLsn = parseLsn(rows[0].lsn);
          replica.lagMs = replicaLagMs(samples, replica.replayLsn, Date.now());
          if (replica.lagMs > options.maxLagMs) return setHealth(replica, false, `more than ${options.maxLagMs} ms behind the primary`);
          setHealth(replica, true, null);
        } catch (error) {
          setHealth(replica, false, `unreachable: ${(error as Error).message}`);
        }
      }),
    );
    for (const [subject, write] of pending) {
      if (write.at < now - keepSamplesMs || replicas.every((replica) => replica.replayLsn !== null && replica.replayLsn >= write.lsn)) pending.delete(subject);
    }
  }

  const poll = () => (polling ??= pollOnce().finally(() => (polling = null)));
  await poll();
  const timer = setInterval(() => void poll(), options.pollIntervalMs);
  timer.unref();
  for (const replica of replicas) {
    if (!replica.healthy) logger.warn('read replica not usable at start', { replica: replica.name, problem: replica.problem });
  }

  /** A healthy replica that has replayed `lsn` (asking the next one live when its polled position is older). */
  async function chooseReplica(write: PendingWrite | undefined): Promise<Replica | null> {
    const healthy = replicas.filter((replica) => replica.healthy);
    if (healthy.length === 0) return null;
    for (let offset = 0; offset < healthy.length; offset += 1) {
      const replica = healthy[(next + offset) % healthy.length]!;
      if (!write || (replica.replayLsn !== null && replica.replayLsn >= write.lsn)) {
        next = (next + offset + 1) % healthy.length;
        return replica;
      }
    }
    const replica = healthy[next % healthy.length]!;
    next = (next + 1) % healthy.length;
    try {
      const { rows } = await replica.pool.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
      if (rows[0]?.lsn) {
        replica.replayLsn = parseLsn(rows[0].lsn);
        if (replica.replayLsn >= write!.lsn) return replica;
      }
    } catch {
      void poll();
    }
    return null;
  }

  return {
    async read(subject, work) {
      const write = pending.get(subject);
      const replica = await chooseReplica(write);
      if (!replica) {
        primaryReads += 1;
        return work(primary.prisma, 'primary');
      }
      try {
        const result = await work(replica.prisma, 'replica');
        replicaReads += 1;
        return result;
      } catch (error) {
        // An application error (not found, bad input) is the answer, not a replica fault.
        if (error instanceof AppError) throw error;
        fallbacks += 1;
        logger.warn('a read failed on a replica; rerunning it on the primary', { replica: replica.name, error: String((error as Error)?.message ?? error) });
        void poll();
        primaryReads += 1;
        return work(primary.prisma, 'primary');
      }
    },
    async recordWrite(subject) {
      const [row] = await primary.sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      if (row) pending.set(subject, { lsn: parseLsn(row.lsn), at: Date.now() });
    },
    poll,
    stats: () => ({
      replicaReads,
      primaryReads,
      fallbacks,
      replicas: replicas.map((replica) => ({
        name: replica.name,
        healthy: replica.healthy,
        lagMs: replica.lagMs === null || Number.isFinite(replica.lagMs) ? replica.lagMs : null,
        replayLsn: replica.replayLsn === null ? null : formatLsn(replica.replayLsn),
        problem: replica.problem,
      })),
    }),
    async close() {
      clearInterval(timer);
      await polling?.catch(() => {});
      await Promise.all(replicas.map(async (replica) => {
        await replica.prisma.$disconnect().catch(() => {});
        await replica.gradeFiltered.close().catch(() => {});
        await replica.pool.end().catch(() => {});
      }));
    },
  };
}
