// Named prepared statements for the PostgreSQL pools. Without a name, node-postgres sends every parameterised
// statement as PostgreSQL's unnamed statement, which the server parses and plans again on each execution: under
// load that planning was a fifth of the database's time per search by case (bench/README.md, "Prepared
// statements"). With a name, each pooled connection parses a statement once and PostgreSQL keeps its plan
// (custom plans for the first executions, then a generic one when that costs no more: plan_cache_mode auto).
//
// The name is a digest of the SQL text, so one text has one name on every connection and two texts never share
// one (node-postgres refuses a name reused for another text). A connection keeps its prepared statements until it
// closes and node-postgres never deallocates them, so the distinct texts that get a name are capped per process:
// statements whose text varies (an ingest's insert shaped by its diagnoses and treatments, a filter combination)
// would otherwise grow every backend's memory without bound. So that such one-off texts do not use up the cap
// before the hot ones arrive, a text is named from its second execution on (its first runs unnamed), and the hot
// paths keep their texts constant (id lists as one array parameter). Past the cap a new text runs unnamed, as
// before, and stats() says how often. Statements without parameters (BEGIN, COMMIT, SAVEPOINT) stay on the simple
// protocol, unnamed.
import { createHash } from 'node:crypto';

/** Distinct statement texts one process names; the hot paths use a few dozen. */
export const MAX_NAMED_STATEMENTS = 300;

/** Texts seen once that are remembered, waiting for a second execution; past this, new texts are not counted. */
const MAX_TEXTS_SEEN_ONCE = 5_000;

/** node-postgres's unnamed statement: an empty name. */
const UNNAMED = '';

export type NamedStatements = {
  /** The name for this statement (the adapter's statementNameGenerator), '' for the unnamed statement (a text's
   *  first execution, one without parameters, or a new text past the cap). */
  nameFor(query: { sql: string; args: readonly unknown[] }): string;
  /** How many distinct texts have a name (of at most `cap`), and how many executions ran unnamed because the cap
   *  was reached. */
  stats(): { named: number; cap: number; unnamedOverCap: number };
};

export function createNamedStatements(maxNamed: number = MAX_NAMED_STATEMENTS): NamedStatements {
  const names = new Map<string, string>();
  const seenOnce = new Set<string>();
  let unnamedOverCap = 0;
  return {
    nameFor({ sql, args }) {
      if (args.length === 0) return UNNAMED;
      const known = names.get(sql);
      if (known) return known;
      if (!seenOnce.has(sql)) {
        if (seenOnce.size < MAX_TEXTS_SEEN_ONCE) seenOnce.add(sql);
        return UNNAMED;
      }
      if (names.size >= maxNamed) {
        unnamedOverCap += 1;
        return UNNAMED;
      }
      seenOnce.delete(sql);
      const name = `fcbr_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
      names.set(sql, name);
      return name;
    },
    stats: () => ({ named: names.size, cap: maxNamed, unnamedOverCap }),
  };
}
