// npm run shards -- attach [--shards URL,URL,...] [--json]
// npm run shards -- replay [--json]
// npm run shards -- status [--shards URL,URL,...] [--json]
//
// Sharded similar-case search (search/shards.ts) on the PostgreSQL primary of DATABASE_URL. `attach`: creates the
// projection's table and indexes on each shard, the partitioned table over postgres_fdw foreign partitions on the
// primary, turns the outbox on and queues every embedded photograph, then replays until the shards hold them all
// (prints progress); attaching again with the same shards changes nothing. `replay`: replays the outbox once until
// empty (the API does this in the background; for a maintenance window or a test). `status`: outbox depth and its
// oldest row's age, and each shard's rows. The shards are --shards, else SEARCH_SHARD_URLS, in the same order
// every time (the order fixes which hash remainder a shard holds). Each run is written to the audit log as the
// operating-system user (operation maintain-search-shards).
// Exit codes: 0 done, 1 refused or failed, 2 bad usage (nothing changed).
import os from 'node:os';
import { writeAuditEvents } from '../audit/audit.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { attachShards, replayAll, shardStatus } from '../search/shards.js';
import { UsageError, parseArgs } from './args.js';
import { runAudited } from './audited-run.js';

const USAGE = 'usage: npm run shards -- attach [--shards URL,URL,...] [--json] | replay [--json] | status [--shards URL,URL,...] [--json]';

async function main(): Promise<number> {
  let command: string | undefined;
  let json: boolean;
  let shardUrls: string[];
  let config: ReturnType<typeof loadConfig>;
  try {
    const parsed = parseArgs(process.argv.slice(2), { options: ['shards'], flags: ['json'] });
    [command] = parsed.positionals;
    if (!command || !['attach', 'replay', 'status'].includes(command) || parsed.positionals.length > 1) throw new UsageError(`unknown command "${parsed.positionals.join(' ')}"`);
    if (command === 'replay' && parsed.options.has('shards')) throw new UsageError('replay takes no --shards: it writes through the primary\'s foreign partitions');
    json = parsed.flags.has('json');
    config = loadConfig(parsed.options.has('shards') ? { ...process.env, SEARCH_SHARD_URLS: parsed.options.get('shards') } : process.env);
    if (config.database.kind !== 'postgres') throw new UsageError('shards are for PostgreSQL: set DATABASE_URL to the primary');
    shardUrls = config.searchShards.urls;
    if (command !== 'replay' && shardUrls.length === 0) throw new UsageError('name the shards: --shards URL,URL or SEARCH_SHARD_URLS');
  } catch (error) {
    if (error instanceof UsageError || (error instanceof Error && error.message.startsWith('Invalid configuration'))) {
      process.stderr.write(`${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  const db = await openDatabase(config);
  const actor = { requestId: `cli-${process.pid}-${Date.now()}`, subject: `cli:${os.userInfo().username}`, role: 'admin', keyId: null };
  const audit = (outcome: string, details: Record<string, unknown>) => writeAuditEvents(db.sql, actor, [{ operation: 'maintain-search-shards', outcome, details }]);
  const print = (text: string, value: unknown) => process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`);
  return runAudited(db, audit, command, async () => {
    if (command === 'status') {
      const status = await shardStatus(db.sql, shardUrls);
      await audit('OK', { action: 'status' });
      const attached = status.attachment.enabled ? `attached to ${status.attachment.servers.join(', ')}` : 'not attached';
      const oldest = status.oldestQueuedSeconds === null ? '' : `, oldest ${status.oldestQueuedSeconds.toFixed(1)} s`;
      const shards = status.shards.map((shard) => `  ${shard.shard}: ${shard.rows === null ? shard.problem : `${shard.rows} rows`}`).join('\n');
      print(`search projection ${attached}; outbox ${status.queued} queued${oldest}\n${shards}`, status);
      return 0;
    }
    if (command === 'attach') {
      const attached = await attachShards(db, shardUrls);
      if (attached.alreadyAttached) {
        await audit('OK', { action: 'attach', shards: attached.shards, alreadyAttached: true });
        print(`already attached to ${attached.shards.join(', ')}: nothing changed (npm run shards -- status)`, attached);
        return 0;
      }
      if (!json) process.stdout.write(`attached ${attached.shards.join(', ')}; ${attached.queued} photographs queued for the shards, replaying\n`);
      const started = Date.now();
      const replayed = await replayAll(db.sql, (batch) => {
        if (!json && batch.outboxRows > 0) process.stderr.write(`  replayed ${batch.images} photographs (${batch.projected} embeddings)\n`);
      });
      await audit('OK', { action: 'attach', shards: attached.shards, queued: attached.queued, projected: replayed.projected });
      print(`the shards hold ${replayed.projected} embeddings of ${replayed.images} photographs (${((Date.now() - started) / 1000).toFixed(1)} s)${replayed.locked ? '' : '; another process is replaying the rest'}`, { ...attached, replayed });
      return 0;
    }
    const replayed = await replayAll(db.sql);
    await audit('OK', { action: 'replay', projected: replayed.projected });
    print(replayed.locked ? `replayed ${replayed.outboxRows} outbox rows: ${replayed.projected} embeddings of ${replayed.images} photographs` : 'another process is replaying: nothing done here', replayed);
    return 0;
  });
}

process.exitCode = await main();
