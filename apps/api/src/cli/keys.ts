// npm run keys -- create --name NAME --role ROLE [--system URI] [--expires 2027-06-30T00:00:00Z]
// npm run keys -- list
// npm run keys -- revoke <key id>
// API keys for services (an EHR integration, scripts), on the database the API is configured with. The secret is
// printed once, at creation; only its SHA-256 is stored. Each change is written to the audit log as the
// operating-system user who ran it (the operator). The embedded database belongs to one process: stop the API
// first, or manage keys through GraphQL as an admin (createApiKey, apiKeys, revokeApiKey).
import os from 'node:os';
import { writeAuditEvents } from '../audit/audit.service.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../auth/api-keys.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { AppError } from '../errors.js';
import { parseArgs, UsageError } from './args.js';
import { runAudited } from './audited-run.js';

const USAGE = 'usage: npm run keys -- create --name NAME --role clinician|researcher|ehr-service|admin [--system URI] [--expires ISO-TIME]\n       npm run keys -- list\n       npm run keys -- revoke KEY_ID';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2), { options: ['name', 'role', 'system', 'expires'], flags: [] });
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  const [command, ...rest] = parsed.positionals;
  if (!command || !['create', 'list', 'revoke'].includes(command) || (command === 'revoke' && rest.length !== 1) || (command !== 'revoke' && rest.length > 0)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const operator = `cli:${os.userInfo().username}`;
  const db = await openDatabase(loadConfig());
  const audit = (outcome: string, details: Record<string, unknown>) =>
    writeAuditEvents(db.sql, { requestId: `cli-${process.pid}-${Date.now()}`, subject: operator, role: 'admin', keyId: null }, [{ operation: 'manage-keys', outcome, details }]);
  return runAudited(db, audit, command, async () => {
    if (command === 'list') {
      const keys = await listApiKeys({ prisma: db.prisma });
      await audit('OK', { action: 'list', returned: keys.length });
      for (const key of keys) {
        const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : key.expiresAt && key.expiresAt <= new Date() ? `expired ${key.expiresAt.toISOString()}` : 'active';
        process.stdout.write(`${key.id}  ${key.role.padEnd(11)}  ${state.padEnd(32)}  ${key.name}${key.identifierSystem ? `  (${key.identifierSystem})` : ''}\n`);
      }
      if (keys.length === 0) process.stdout.write('no API keys\n');
      return 0;
    }
    if (command === 'revoke') {
      const key = await revokeApiKey({ prisma: db.prisma, id: rest[0]! });
      await audit('OK', { action: 'revoke', keyId: key.id });
      process.stdout.write(`revoked ${key.id} (${key.name}) at ${key.revokedAt!.toISOString()}\n`);
      return 0;
    }
    const expires = parsed.options.get('expires');
    const expiresAt = expires ? new Date(expires) : null;
    if (expiresAt && Number.isNaN(expiresAt.getTime())) throw new AppError('BAD_USER_INPUT', `--expires must be an ISO 8601 time, got "${expires}"`);
    const { key, secret } = await createApiKey({ prisma: db.prisma, name: parsed.options.get('name') ?? '', role: parsed.options.get('role') ?? '', identifierSystem: parsed.options.get('system') ?? null, expiresAt, createdBy: operator });
    await audit('OK', { action: 'create', keyId: key.id, role: key.role, identifierSystem: key.identifierSystem });
    process.stdout.write(`created ${key.role} key ${key.id} (${key.name})${key.identifierSystem ? ` bound to ${key.identifierSystem}` : ''}${key.expiresAt ? `, expires ${key.expiresAt.toISOString()}` : ''}\n`);
    process.stdout.write(`secret (shown once, store it now; send as "Authorization: Bearer <secret>" or "X-API-Key: <secret>"):\n${secret}\n`);
    return 0;
  }, { auditFailures: false });
}

process.exitCode = await main();
