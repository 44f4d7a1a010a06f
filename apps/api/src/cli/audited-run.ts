// How a maintenance CLI (keys, vector-index, shards) ends a run on the database it opened: a refusal (AppError) is
// written to the audit log with its code, printed as "CODE: message" and exits 1; any other failure is audited as
// INTERNAL_SERVER_ERROR (unless `auditFailures` is false) and thrown, so its stack reaches the operator; the
// database is closed either way.
import { AppError } from '../errors.js';

export type CliAudit = (outcome: string, details: Record<string, unknown>) => Promise<unknown>;

export async function runAudited(
  db: { close(): Promise<void> },
  audit: CliAudit,
  action: string | undefined,
  work: () => Promise<number>,
  { auditFailures = true }: { auditFailures?: boolean } = {},
): Promise<number> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) {
      await audit(error.code, { action, refused: error.message }).catch(() => {});
      process.stderr.write(`${error.code}: ${error.message}\n`);
      return 1;
    }
    if (auditFailures) await audit('INTERNAL_SERVER_ERROR', { action, failed: error instanceof Error ? error.message : String(error) }).catch(() => {});
    throw error;
  } finally {
    await db.close();
  }
}
