// npm run shards -- attach [--shards URL,URL,...] [--json]
// npm run shards -- replay [--json]
// npm run shards -- status [--shards URL,URL,...] [--json]
// npm run shards -- reshard [--shards URL,URL,...] [--grace-seconds S] [--json] | reshard --abort [--json]
// npm run shards -- retire [--json]
//
// Sharded similar-case search (search/shards.ts) on the PostgreSQL primary of DATABASE_URL. `attach`: creates the
// projection's table and indexes on each shard, the partitioned table over postgres_fdw foreign partitions on the
// primary, turns the outbox on and queues every embedded photograph, then replays until the shards hold them all
// (prints progress), then builds the shards' HNSW graphs over what they hold; attaching again with the same shards
// changes nothing (it builds graphs an earlier attach did not finish). `replay`: replays the outbox once until
// empty (the API does this in the background; for a maintenance window or a test). `status`: outbox depth and its
// oldest row's age, and each shard's rows. The shards are --shards, else SEARCH_SHARD_URLS, in the same order
// every time (the order fixes which hash remainder a shard holds). `reshard`: moves the projection to the shards
// given (another number of them, one replaced), with searches and writes going on: prepares the next generation
// on them, carries over within each shard of both generations the rows whose patients stay on it, copies every
// other embedded photograph there from the primary (prints progress) and then builds the new
// shards' HNSW graphs over what they hold (one build a graph, faster than inserting row by row), swaps the generations on the
// primary, waits --grace-seconds (30 unless set: searches that read the old generation, on a lagging replica too,
// finish; search/shards.ts RETIRE_GRACE_MS) and retires the old
// one (empties its tables on its shards). Run again with the same shards after a failure, it starts the copy over;
// `reshard --abort` gives up a reshard under way. `retire`: empties a retired generation's shards once they answer
// again (reshard reports the ones it could not). API processes search on the primary after a reshard until
// restarted with the new SEARCH_SHARD_URLS. Each run is written to the audit log as the operating-system user
// (operation maintain-search-shards).
// Exit codes: 0 done, 1 refused or failed, 2 bad usage (nothing changed).
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeAuditEvents } from '../audit/audit.service.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { AppError } from '../errors.js';
import { RETIRE_GRACE_MS, abortReshard, attachShards, buildAttachedGraphs, copyIntoNext, finishReshard, prepareReshard, readShardAttachment, replayAll, retireShards, shardName, shardStatus, shardTableName, type RetireResult } from '../search/shards.js';
import { UsageError, parseArgs } from './args.js';
import { runAudited } from './audited-run.js';

const USAGE = 'usage: npm run shards -- attach [--shards URL,URL,...] [--json] | replay [--json] | status [--shards URL,URL,...] [--json]\n'
  + '       | reshard [--shards URL,URL,...] [--grace-seconds S] [--json] | reshard --abort [--json] | retire [--json]';

const COMMANDS = ['attach', 'replay', 'status', 'reshard', 'retire'];

/** A step's failure that is not a refusal (a shard that stopped answering mid-copy) as SERVICE_UNAVAILABLE, audited
 *  and printed without a stack. */
async function step<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new AppError('SERVICE_UNAVAILABLE', `${what} failed: ${error instanceof Error ? error.message : String(error)}; run the same command again once the shards answer (or reshard --abort)`);
  }
}

/** What a retire left undone, as a line for the operator. */
function retireProblems(retired: RetireResult): string {
  return retired.failed.map((failed) => `  ${failed.shard} not emptied (${failed.problem}): it still holds the old projection; run \`npm run shards -- retire\` once it answers`).join('\n');
}

async function main(): Promise<number> {
  let command: string | undefined;
  let json: boolean;
  let abort: boolean;
  let graceMs = RETIRE_GRACE_MS;
  let shardUrls: string[];
  let config: ReturnType<typeof loadConfig>;
  try {
    const parsed = parseArgs(process.argv.slice(2), { options: ['shards', 'grace-seconds'], flags: ['json', 'abort'] });
    [command] = parsed.positionals;
    if (!command || !COMMANDS.includes(command) || parsed.positionals.length > 1) throw new UsageError(`unknown command "${parsed.positionals.join(' ')}"`);
    abort = parsed.flags.has('abort');
    if (abort && command !== 'reshard') throw new UsageError('--abort is for reshard');
    if ((command === 'replay' || command === 'retire' || abort) && parsed.options.has('shards')) throw new UsageError(`${abort ? 'reshard --abort' : command} takes no --shards: it writes through the primary's foreign partitions`);
    if (parsed.options.has('grace-seconds')) {
      if (command !== 'reshard' || abort) throw new UsageError('--grace-seconds is for reshard');
      const seconds = Number(parsed.options.get('grace-seconds'));
      if (!Number.isFinite(seconds) || seconds < 0 || seconds > 3600) throw new UsageError('--grace-seconds: a number of seconds from 0 to 3600');
      graceMs = seconds * 1000;
    }
    json = parsed.flags.has('json');
    config = loadConfig(parsed.options.has('shards') ? { ...process.env, SEARCH_SHARD_URLS: parsed.options.get('shards') } : process.env);
    if (config.database.kind !== 'postgres') throw new UsageError('shards are for PostgreSQL: set DATABASE_URL to the primary');
    shardUrls = config.searchShards.urls;
    if ((command === 'attach' || command === 'status' || (command === 'reshard' && !abort)) && shardUrls.length === 0) throw new UsageError('name the shards: --shards URL,URL or SEARCH_SHARD_URLS');
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
      const { attachment } = status;
      const next = attachment.next ? `; a reshard to ${attachment.next.servers.join(', ')} (generation ${attachment.next.generation}) is under way, its copy ${attachment.next.copied ? 'finished' : 'not finished'}` : '';
      const retired = attachment.retired.length > 0 ? `; retired shards not emptied yet: ${attachment.retired.join(', ')} (npm run shards -- retire)` : '';
      const attached = attachment.enabled ? `attached to ${attachment.servers.join(', ')} (generation ${attachment.generation})${next}${retired}` : 'not attached';
      const oldest = status.oldestQueuedSeconds === null ? '' : `, oldest ${status.oldestQueuedSeconds.toFixed(1)} s`;
      const shards = status.shards.map((shard) => `  ${shard.shard}: ${shard.rows === null ? shard.problem : `${shard.rows} rows`}`).join('\n');
      print(`search projection ${attached}; outbox ${status.queued} queued${oldest}\n${shards}`, status);
      return 0;
    }
    if (command === 'attach') {
      // The backfill writes tables without graphs, which are built over them once it is done: faster than
      // inserting each photograph into them (bench/README.md).
      const attached = await attachShards(db, shardUrls, { graphs: false });
      if (attached.alreadyAttached) {
        // What an attach that stopped before its graphs left undone (nothing, when they are there).
        const graphSeconds = await step('building the search graphs', () => buildAttachedGraphs(db.sql, shardUrls));
        await audit('OK', { action: 'attach', shards: attached.shards, alreadyAttached: true });
        print(`already attached to ${attached.shards.join(', ')}: nothing changed (npm run shards -- status); search graphs checked (${graphSeconds.toFixed(1)} s)`, { ...attached, graphSeconds });
        return 0;
      }
      if (!json) process.stdout.write(`attached ${attached.shards.join(', ')}; ${attached.queued} photographs queued for the shards, replaying\n`);
      const started = Date.now();
      const replayed = await replayAll(db.sql, (batch) => {
        if (!json && batch.outboxRows > 0) process.stderr.write(`  replayed ${batch.images} photographs (${batch.projected} embeddings)\n`);
      });
      if (!json) process.stderr.write(`  building the search graphs on ${attached.shards.join(', ')}\n`);
      const graphSeconds = await step('building the search graphs', () => buildAttachedGraphs(db.sql, shardUrls));
      await audit('OK', { action: 'attach', shards: attached.shards, queued: attached.queued, projected: replayed.projected });
      print(`the shards hold ${replayed.projected} embeddings of ${replayed.images} photographs (${((Date.now() - started) / 1000).toFixed(1)} s, of which ${graphSeconds.toFixed(1)} s building their search graphs)${replayed.locked ? '' : '; another process is replaying the rest'}`, { ...attached, replayed, graphSeconds });
      return 0;
    }
    if (command === 'retire') {
      const retired = await retireShards(db.sql);
      await audit(retired.failed.length > 0 ? 'SERVICE_UNAVAILABLE' : 'OK', { action: 'retire', emptied: retired.emptied, failed: retired.failed.map((failed) => failed.shard) });
      const text = retired.emptied.length + retired.failed.length === 0 ? 'no retired shards: nothing to do' : `emptied ${retired.emptied.join(', ') || 'none'}${retired.dropped ? '; the retired generation is dropped from the primary' : ''}`;
      print(retired.failed.length > 0 ? `${text}\n${retireProblems(retired)}` : text, retired);
      return retired.failed.length > 0 ? 1 : 0;
    }
    if (command === 'reshard' && abort) {
      const before = await readShardAttachment(db.sql);
      const aborted = await abortReshard(db.sql);
      await audit(aborted.failed.length > 0 ? 'SERVICE_UNAVAILABLE' : 'OK', { action: 'reshard-abort', aborted: aborted.aborted, notEmptied: aborted.failed.map((failed) => failed.shard) });
      // The abort goes through without them (a dead next shard must not stall the replay), but their copy stays.
      const table = before.next ? shardTableName(before.next.generation) : '';
      const problems = aborted.failed.map((failed) => `  ${failed.shard} not emptied (${failed.problem}): it still holds a copy of the projection; once it answers, TRUNCATE ${table} there`).join('\n');
      print(aborted.aborted ? `reshard aborted: the live shards are unchanged${problems ? `\n${problems}` : ''}` : 'no reshard was under way: nothing changed', aborted);
      return aborted.failed.length > 0 ? 1 : 0;
    }
    if (command === 'reshard') {
      // What an earlier reshard could not empty goes first (a prepare refuses while it is there), after the grace:
      // that reshard may have stopped during its own.
      const current = await readShardAttachment(db.sql);
      if (current.retired.length > 0) await sleep(graceMs);
      const leftover = await retireShards(db.sql);
      if (leftover.failed.length > 0) {
        await audit('SERVICE_UNAVAILABLE', { action: 'reshard', reason: 'retired shards not emptied', failed: leftover.failed.map((failed) => failed.shard) });
        process.stderr.write(`the generation before is not retired:\n${retireProblems(leftover)}\n`);
        return 1;
      }
      // A copy that finished before the last run stopped is not made again.
      const resumable = current.next?.copied === true && current.next.servers.join(',') === shardUrls.map(shardName).join(',');
      const plan = resumable ? { from: current.servers, to: current.next!.servers, generation: current.next!.generation, unchanged: false } : await step('prepare', () => prepareReshard(db, shardUrls));
      if (plan.unchanged) {
        await audit('OK', { action: 'reshard', shards: plan.to, unchanged: true });
        print(`the search projection is already over ${plan.to.join(', ')}: nothing changed`, plan);
        return 0;
      }
      if (!json) process.stdout.write(`resharding from ${plan.from.join(', ')} to ${plan.to.join(', ')} (generation ${plan.generation}); copying\n`);
      const started = Date.now();
      const copied = resumable ? { images: 0, projected: 0, carried: 0, carriedRows: 0, carriedOn: [], carrySeconds: 0, graphSeconds: 0 } : await step('the copy', () => copyIntoNext(db.sql, {
        shardUrls,
        onBatch: (done) => {
          if (!json) process.stderr.write(`  carried over within their shards ${done.carried} photographs (${done.carriedRows} embeddings); copied through the primary ${done.images} photographs (${done.projected} embeddings)\n`);
        },
        onGraphs: () => {
          if (!json) process.stderr.write(`  building the search graphs on ${plan.to.join(', ')}\n`);
        },
      }));
      const copySeconds = (Date.now() - started) / 1000;
      const finished = await step('the swap', () => finishReshard(db.sql));
      await sleep(graceMs);
      const retired = await retireShards(db.sql);
      const outcome = retired.failed.length > 0 ? 'SERVICE_UNAVAILABLE' : 'OK';
      await audit(outcome, { action: 'reshard', from: plan.from, shards: finished.shards, generation: finished.generation, projected: copied.projected, carried: copied.carriedRows, notEmptied: retired.failed.map((failed) => failed.shard) });
      const text = [
        `the search projection is over ${finished.shards.join(', ')} (generation ${finished.generation}): ${resumable ? 'copied by an earlier run' : `${copied.carriedRows} embeddings of ${copied.carried} photographs carried over within ${copied.carriedOn.length === 0 ? 'no shard' : copied.carriedOn.join(', ')} and ${copied.projected} embeddings of ${copied.images} photographs copied through the primary in ${copySeconds.toFixed(1)} s (of which ${copied.graphSeconds.toFixed(1)} s building the shards' search graphs)`}`,
        `retired ${finished.retired.join(', ')}${retired.failed.length > 0 ? '' : ' (emptied)'}`,
        ...(retired.failed.length > 0 ? [retireProblems(retired)] : []),
        `restart the API processes with SEARCH_SHARD_URLS naming these shards in this order: until then they search on the primary`,
      ].join('\n');
      print(text, { ...plan, copied, finished, retired });
      return retired.failed.length > 0 ? 1 : 0;
    }
    const replayed = await replayAll(db.sql);
    await audit('OK', { action: 'replay', projected: replayed.projected });
    print(replayed.locked ? `replayed ${replayed.outboxRows} outbox rows: ${replayed.projected} embeddings of ${replayed.images} photographs` : 'another process is replaying: nothing done here', replayed);
    return 0;
  });
}

process.exitCode = await main();
