// npm run feedback:export -- [--format csv|json] [--from ISO-TIME] [--to ISO-TIME] [--out FILE]
// Relevance marks as training pairs for the next model (the admins' relevanceFeedbackExport query, for a script or
// a training job on the database host). Writes to FILE or stdout; the export is written to the audit log as the
// operator (cli:<user>, role admin), as the key CLI does.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { writeAuditEvents } from '../audit/audit.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { AppError } from '../errors.js';
import { exportRelevanceFeedback } from '../modules/similar-case/feedback.service.js';
import { parseArgs, UsageError } from './args.js';

const USAGE = 'usage: npm run feedback:export -- [--format csv|json] [--from ISO-TIME] [--to ISO-TIME] [--out FILE]';

function parseTime(value: string | undefined, name: string): Date | null {
  if (value === undefined) return null;
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--${name} must be an ISO 8601 time, got "${value}"`);
  return time;
}

async function main(): Promise<number> {
  let format: 'CSV' | 'JSON';
  let from: Date | null;
  let to: Date | null;
  let out: string | undefined;
  try {
    const parsed = parseArgs(process.argv.slice(2), { options: ['format', 'from', 'to', 'out'], flags: [] });
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${parsed.positionals[0]}`);
    const requested = (parsed.options.get('format') ?? 'csv').toUpperCase();
    if (requested !== 'CSV' && requested !== 'JSON') throw new UsageError(`--format must be csv or json, got "${parsed.options.get('format')}"`);
    format = requested;
    from = parseTime(parsed.options.get('from'), 'from');
    to = parseTime(parsed.options.get('to'), 'to');
    out = parsed.options.get('out');
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  const db = await openDatabase(loadConfig());
  const audit = (outcome: string, details: Record<string, unknown>) =>
    writeAuditEvents(db.sql, { requestId: `cli-${process.pid}-${Date.now()}`, subject: `cli:${os.userInfo().username}`, role: 'admin', keyId: null }, [{ operation: 'export-feedback', outcome, details }]);
  const details = { format, from: from?.toISOString() ?? null, to: to?.toISOString() ?? null, via: 'cli' };
  try {
    const exported = await exportRelevanceFeedback({ prisma: db.prisma, format, from, to });
    await audit('OK', { ...details, rows: exported.rows });
    if (out) {
      await writeFile(out, exported.content);
      process.stderr.write(`${exported.rows} marks written to ${out}\n`);
    } else {
      process.stdout.write(exported.content);
    }
    return 0;
  } catch (error) {
    if (error instanceof AppError) {
      await audit(error.code, { ...details, refused: error.message }).catch(() => {});
      process.stderr.write(`${error.code}: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await db.close();
  }
}

process.exitCode = await main();
