// Opens the one database of a server: embedded PGlite (with pgvector) by default, PostgreSQL + pgvector when
// DATABASE_URL is set. Both get the same migrations and the same Prisma client; callers never branch on the kind.
import fs from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { AppConfig } from '../config.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { APPROXIMATE_SEARCH_TUNING, registerGradeFilteredClient, vectorSessionOptions, vectorSessionSettings } from '../search/similar-images.js';
import { registerDriverRunner } from './driver-rows.js';
import { acquireLockFile } from './lock-file.js';
import { applyMigrations } from './migrate.js';
import { createNamedStatements, type NamedStatements } from './statement-names.js';
import type { SqlRunner } from './sql-runner.js';

export type Database = {
  kind: 'pglite' | 'postgres';
  /** PostgreSQL's connection string (for a pool of another purpose, such as the rate limit's); null on PGlite. */
  connectionUrl: string | null;
  prisma: PrismaClient;
  sql: SqlRunner;
  /** The prepared-statement names of PostgreSQL's pools (db/statement-names.ts); null on PGlite or when turned off. */
  namedStatements: NamedStatements | null;
  /** Statements sent to the database since open; lets tests prove a request costs O(1) queries. */
  statementCount(): number;
  close(): Promise<void>;
};

/**
 * The tables a search plans over. After a bulk write (the demo cohort, an ingest or re-embedding run) their
 * statistics are stale until autovacuum's next pass (a minute or more; never, on PGlite): a table the planner
 * believes empty gets a per-grade btree scan and sort instead of the HNSW walk, 3-5x the time at 10k cases
 * (bench/README.md, "The CBR reuse step").
 */
const SEARCHED_TABLES = ['image_embedding', 'fundus_image', 'patient', 'visit', 'grading', 'treatment'];

/** ANALYZE of the searched tables: call after writing many rows at once. */
export async function refreshPlannerStatistics(db: Pick<Database, 'sql'>): Promise<void> {
  await db.sql.exec(`ANALYZE ${SEARCHED_TABLES.join(', ')}`);
}

type PGliteLike = PGlite | Transaction;

function pgliteRunner(db: PGliteLike, count: () => void): SqlRunner {
  return {
    async exec(sql) {
      count();
      await db.exec(sql);
    },
    async query(sql, params = []) {
      count();
      const result = await db.query(sql, params);
      return result.rows as never[];
    },
    async transaction(work) {
      if (!(db instanceof PGlite)) return work(this);
      return db.transaction((tx) => work(pgliteRunner(tx, count)));
    },
  };
}

function postgresRunner(client: pg.Pool | pg.PoolClient, countStatement: () => void, names: NamedStatements | null): SqlRunner {
  // A pool's own `query` is counted where it is wrapped (countCalls); a transaction's connection is not wrapped.
  const count = client instanceof pg.Pool ? () => {} : countStatement;
  return {
    async exec(sql) {
      count();
      await client.query(sql);
    },
    async query(sql, params = []) {
      count();
      const result = await client.query({ name: names?.nameFor({ sql, args: params }) ?? '', text: sql, values: params });
      return result.rows;
    },
    async transaction(work) {
      if (!(client instanceof pg.Pool)) return work(this);
      const connection = await client.connect();
      try {
        await connection.query('BEGIN');
        const result = await work(postgresRunner(connection, countStatement, names));
        await connection.query('COMMIT');
        return result;
      } catch (error) {
        await connection.query('ROLLBACK');
        throw error;
      } finally {
        connection.release();
      }
    },
  };
}

/** Counts statements by wrapping the driver object Prisma's adapter calls. */
function countCalls<T extends object>(target: T, methods: string[], count: () => void): T {
  for (const method of methods) {
    const original = (target as Record<string, unknown>)[method];
    if (typeof original !== 'function') continue;
    (target as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
      count();
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return target;
}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt it. A lock file
 * beside the directory holds the owner's pid and process identity; a lock whose process is gone, or whose pid now
 * names another process, is taken over (db/lock-file.ts), so a killed API reopens with no manual step.
 */
function lockDataDirectory(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = `${dataDir.replace(/[\\/]+$/, '')}.lock`;
  return acquireLockFile(lockPath, (owner) => new Error(`The embedded database ${dataDir} is in use by process ${owner} (lock ${lockPath}); stop it first, or set DATABASE_URL`));
}

/** Closing twice (server shutdown, then a test's cleanup) must not fail. */
function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= close());
}

export async function openDatabase(config: Pick<AppConfig, 'database' | 'migrationsDir'> & { databasePoolSize?: number; databaseNamedStatements?: boolean }): Promise<Database> {
  let statements = 0;
  const count = () => {
    statements += 1;
  };

  if (config.database.kind === 'pglite') {
    await fs.mkdir(config.database.dataDir, { recursive: true });
    const unlock = await lockDataDirectory(config.database.dataDir);
    let pglite: PGlite;
    try {
      pglite = await PGlite.create(config.database.dataDir, { extensions: { vector } });
    } catch (error) {
      await unlock();
      throw error;
    }
    const sql = pgliteRunner(pglite, count);
    await applyMigrations(sql, config.migrationsDir);
    // One connection, one session: the approximate search's pgvector settings hold for every later query.
    await pglite.exec(Object.entries(vectorSessionSettings()).map(([name, value]) => `SET ${name} = '${value}';`).join('\n'));
    countCalls(pglite, ['query', 'exec'], count);
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
    return {
      kind: 'pglite',
      connectionUrl: null,
      prisma,
      namedStatements: null,
      sql,
      statementCount: () => statements,
      close: once(async () => {
        await prisma.$disconnect();
        await pglite.close();
        await unlock();
      }),
    };
  }

  // Every connection starts with the approximate search's pgvector settings (startup options, no extra round trip).
  const poolSize = config.databasePoolSize ?? 10;
  const pool = new pg.Pool({ connectionString: config.database.url, max: poolSize, options: vectorSessionOptions() });
  // An idle connection ended by the server (a restart, an administrator) emits 'error' on the pool; unhandled, it
  // would crash the process. The pool drops that client and the next query opens a new one.
  pool.on('error', () => {});
  const namedStatements = config.databaseNamedStatements === false ? null : createNamedStatements();
  const sql = postgresRunner(pool, count, namedStatements);
  await applyMigrations(sql, config.migrationsDir);
  countCalls(pool, ['query'], count);
  const prisma = prismaOverPool(pool, namedStatements);
  const gradeFiltered = openGradeFilteredPool({ connectionString: config.database.url, max: gradeFilteredPoolSize(poolSize) }, prisma, namedStatements);
  countCalls(gradeFiltered.pool, ['query'], count);
  return {
    kind: 'postgres',
    connectionUrl: config.database.url,
    prisma,
    namedStatements,
    sql,
    statementCount: () => statements,
    close: once(async () => {
      // Every pool is ended even when a disconnect fails.
      await Promise.allSettled([prisma.$disconnect(), gradeFiltered.close()]);
      await pool.end();
    }),
  };
}

/** A Prisma client over a PostgreSQL pool, naming its prepared statements when `namedStatements` is given. */
export function prismaOverPool(pool: pg.Pool, namedStatements: NamedStatements | null): PrismaClient {
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, namedStatements ? { statementNameGenerator: namedStatements.nameFor } : {}) });
  // The search path's hand-written statements skip Prisma's raw-query layer on this pool (db/driver-rows.ts). The
  // pool's `query` is what countCalls wraps, so they are counted as Prisma's are.
  registerDriverRunner(prisma, postgresRunner(pool, () => {}, namedStatements));
  return prisma;
}

/** Connections of the grade-filtered pool beside a pool of `poolSize`: a third of it, at least two. */
export const gradeFilteredPoolSize = (poolSize: number) => Math.max(2, Math.ceil(poolSize / 3));

/**
 * The small pool beside a PostgreSQL pool that runs searches, whose sessions start with the grade-filtered
 * ef_search, registered for `prisma`'s searches (search/similar-images.ts, registerGradeFilteredClient). Its
 * connections open when a grade-filtered search first needs one.
 */
export function openGradeFilteredPool(poolConfig: pg.PoolConfig, prisma: PrismaClient, namedStatements: NamedStatements | null): { pool: pg.Pool; close(): Promise<void> } {
  const pool = new pg.Pool({ ...poolConfig, options: vectorSessionOptions(APPROXIMATE_SEARCH_TUNING.efSearchGradeFiltered) });
  pool.on('error', () => {});
  const client = prismaOverPool(pool, namedStatements);
  registerGradeFilteredClient(prisma, client);
  return {
    pool,
    close: async () => {
      await client.$disconnect().catch(() => {});
      await pool.end();
    },
  };
}
