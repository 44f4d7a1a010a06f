// The search path's hand-written statements through node-postgres directly, not Prisma's raw-query layer.
//
// Prisma 7's `$queryRaw` over its pg adapter costs 2-3x the API's CPU of the same statement sent through the pool
// (146-335 against 57-93 us a statement, one client, the same named prepared statement; bench/README.md, "The
// search path through the driver"), and a search by case sent five such statements. So each Prisma client over
// a PostgreSQL pool (database.ts, prismaOverPool) registers a runner over that pool here, and the hot statements
// go through `queryRows`. Anything else keeps Prisma: PGlite's client (one session, whose transactions Prisma's
// adapter serialises), an interactive transaction's client, and a client nobody registered (a benchmark's own).
//
// Only statements whose columns read the same through both drivers may use it: text, int4, float8, boolean and
// bytea (both give a Uint8Array; pg a Buffer). Not int8, numeric, dates or json, which Prisma converts (BigInt,
// Decimal, Date) and pg does not.
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import type { SqlRunner } from './sql-runner.js';

const runners = new WeakMap<object, SqlRunner>();

/** Sends `prisma`'s hand-written hot statements through `runner` (over the same pool) from now on. */
export function registerDriverRunner(prisma: PrismaClient, runner: SqlRunner): void {
  runners.set(prisma, runner);
}

/** The runner registered for `prisma`, if any (tests watch which pool a statement went to). */
export function driverRunnerFor(prisma: PrismaClient): SqlRunner | undefined {
  return runners.get(prisma);
}

/** The rows of a hand-written statement: through the driver where `prisma` has a runner, else through Prisma. */
export function queryRows<Row>(prisma: Pick<PrismaClient, '$queryRaw'>, statement: Prisma.Sql): Promise<Row[]> {
  const runner = runners.get(prisma);
  return runner ? (runner.query(statement.text, statement.values) as Promise<Row[]>) : prisma.$queryRaw<Row[]>(statement);
}
