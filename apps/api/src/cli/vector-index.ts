// npm run vector-index -- status
// npm run vector-index -- rebuild [--grade 0-4 | --whole] [--kind ivfflat|hnsw] [--json]
//
// The per-grade partial vector indexes of similar-case search (search/vector-indexes.ts). `status`: per ICDR grade,
// which index it has, its rows now against the rows at its last rebuild, and "rebuild recommended" where a rebuild
// is due. `rebuild`: builds the grade's index (every grade without --grade) as IVFFlat (default) with lists from its
// row count, or as HNSW, CONCURRENTLY on PostgreSQL (searches and ingests go on), then drops its other index.
// Without --grade it also rebuilds the whole-case-base index (IVFFlat over every row, for searches without a grade
// filter; `--kind hnsw` drops it instead, back to the migrations' indexes); `--whole` rebuilds only that one.
// Run it after a bulk import (the ingest CLI prints a hint) and when `status` says so. Uses the database the API is
// configured with (DATABASE_URL, or the embedded PGlite directory, which only one process may open: stop the API
// first). Each run is written to the audit log as the operating-system user (operation maintain-vector-index).
// Exit codes: 0 done, 1 refused or failed, 2 bad usage (nothing changed).
import os from 'node:os';
import { writeAuditEvents } from '../audit/audit.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { AppError } from '../errors.js';
import { VECTOR_INDEX_GRADES, dropWholeIndex, parseGrade, parseKind, rebuildVectorIndex, rebuildWholeIndex, vectorIndexStatus, wholeIndexStatus } from '../search/vector-indexes.js';
import { UsageError, parseArgs } from './args.js';
import { runAudited } from './audited-run.js';

const USAGE = 'usage: npm run vector-index -- status [--json] | rebuild [--grade 0-4 | --whole] [--kind ivfflat|hnsw] [--json]';

async function main(): Promise<number> {
  let command: string | undefined;
  let grades: number[];
  let kind: ReturnType<typeof parseKind>;
  let json: boolean;
  let whole: 'rebuild' | 'drop' | null;
  try {
    const parsed = parseArgs(process.argv.slice(2), { options: ['grade', 'kind'], flags: ['json', 'whole'] });
    [command] = parsed.positionals;
    if (!command || !['status', 'rebuild'].includes(command) || parsed.positionals.length > 1) throw new UsageError(`unknown command "${parsed.positionals.join(' ')}"`);
    if (command === 'status' && (parsed.options.has('grade') || parsed.options.has('kind') || parsed.flags.has('whole'))) throw new UsageError('status takes no --grade, --kind or --whole');
    if (parsed.flags.has('whole') && parsed.options.has('grade')) throw new UsageError('give --grade or --whole, not both');
    kind = parseKind(parsed.options.get('kind') ?? 'ivfflat');
    if (parsed.flags.has('whole') && kind !== 'ivfflat') throw new UsageError('the whole-case-base index is IVFFlat only');
    grades = parsed.flags.has('whole') ? [] : parsed.options.has('grade') ? [parseGrade(parsed.options.get('grade'))] : [...VECTOR_INDEX_GRADES];
    whole = parsed.options.has('grade') ? null : kind === 'ivfflat' ? 'rebuild' : 'drop';
    json = parsed.flags.has('json');
  } catch (error) {
    if (error instanceof UsageError || (error instanceof AppError && error.code === 'BAD_USER_INPUT')) {
      process.stderr.write(`${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  const db = await openDatabase(loadConfig());
  const actor = { requestId: `cli-${process.pid}-${Date.now()}`, subject: `cli:${os.userInfo().username}`, role: 'admin', keyId: null };
  const audit = (outcome: string, details: Record<string, unknown>) => writeAuditEvents(db.sql, actor, [{ operation: 'maintain-vector-index', outcome, details }]);
  return runAudited(db, audit, command, async () => {
    if (command === 'status') {
      const [status, wholeStatus] = await Promise.all([vectorIndexStatus({ db }), wholeIndexStatus({ db })]);
      await audit('OK', { action: 'status' });
      if (json) process.stdout.write(`${JSON.stringify({ grades: status, whole: wholeStatus })}\n`);
      for (const grade of json ? [] : status) {
        const index = grade.indexes.map((one) => `${one.name} (${one.kind}${one.lists === null ? '' : `, lists ${one.lists}`}${one.valid ? '' : ', INVALID'}, ${one.megabytes} MB)`).join(', ') || 'none';
        const built = grade.build ? `rows at build ${grade.build.rowsAtBuild} (${grade.build.builtAt.toISOString()})` : 'never rebuilt (migration 0007)';
        process.stdout.write(`grade ${grade.grade}: ${index}; rows now ${grade.rowsNow}, ${built}${grade.recommendation ? `; ${grade.recommendation}` : ''}\n`);
      }
      if (!json) {
        const index = wholeStatus.index ? `${wholeStatus.index.name} (ivfflat, half precision, lists ${wholeStatus.index.lists}${wholeStatus.index.valid ? '' : ', INVALID'}, ${wholeStatus.index.megabytes} MB)` : 'none (searches without a grade filter merge the grades\' indexes)';
        process.stdout.write(`whole case base: ${index}; rows now ${wholeStatus.rowsNow}${wholeStatus.recommendation ? `; ${wholeStatus.recommendation}` : ''}\n`);
      }
      return 0;
    }
    for (const grade of grades) {
      const result = await rebuildVectorIndex({ db, grade, kind });
      await audit('OK', { action: 'rebuild', grade, kind, lists: result.lists, rows: result.rows, dropped: result.dropped });
      process.stdout.write(json ? `${JSON.stringify(result)}\n` : `grade ${grade}: built ${result.name} (${kind}${result.lists === null ? '' : `, lists ${result.lists}`}) over ${result.rows} rows in ${result.seconds} s, ${result.megabytes} MB; dropped ${result.dropped.join(', ') || 'nothing'}\n`);
    }
    if (whole === 'rebuild') {
      const result = await rebuildWholeIndex({ db });
      await audit('OK', { action: 'rebuild', whole: true, lists: result.lists, rows: result.rows });
      process.stdout.write(json ? `${JSON.stringify({ whole: result })}\n` : `whole case base: built ${result.name} (ivfflat, halfvec(${result.dimensions}), lists ${result.lists}) over ${result.rows} rows in ${result.seconds} s, ${result.megabytes} MB\n`);
    } else if (whole === 'drop') {
      const dropped = await dropWholeIndex({ db });
      await audit('OK', { action: 'drop', whole: true, dropped });
      process.stdout.write(json ? `${JSON.stringify({ whole: { dropped } })}\n` : `whole case base: ${dropped ? 'dropped the whole-case-base index' : 'had no whole-case-base index'}\n`);
    }
    return 0;
  });
}

process.exitCode = await main();
