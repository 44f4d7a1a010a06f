// The smallest SQL surface the migration runner and the fixture loader need, over either driver. Prisma is the
// application's data access; this exists because migrations must run before Prisma's client is created and
// must run identically on PGlite and PostgreSQL.
export interface SqlRunner {
  /** Runs a script of several statements (no parameters). */
  exec(sql: string): Promise<void>;
  query<Row extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Runs `work` inside one transaction on one connection; rolls back when it throws. */
  transaction<T>(work: (runner: SqlRunner) => Promise<T>): Promise<T>;
}
