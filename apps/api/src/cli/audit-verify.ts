// npm run audit:verify
// Checks the audit log's hash chain on the configured database: every row's hash against its content and its
// predecessor's hash, numbering without gaps, and the chain head against the last row. Prints the head hash (keep
// it somewhere else, e.g. in a ticket or the operations log: a later run whose chain no longer passes through it
// shows a rewrite). Exit 0 when the chain holds, 1 with the first broken row named.
import { verifyAuditChain } from '../audit/audit.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';

const db = await openDatabase(loadConfig());
try {
  const result = await verifyAuditChain(db.sql);
  if (result.firstBroken) {
    process.stdout.write(`BROKEN at row ${result.firstBroken.seq}: ${result.firstBroken.reason}\n${result.rows} rows verified before it; head row ${result.headSeq} ${result.headHash}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`audit chain OK: ${result.rows} rows, head ${result.headSeq} ${result.headHash}\n`);
  }
} finally {
  await db.close();
}
