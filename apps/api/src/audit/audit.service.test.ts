import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SqlRunner } from '../db/sql-runner.js';
import { AuditWriter, type AuditActor, type AuditEntry } from './audit.service.js';

/** A runner whose INSERTs answer only when the test says so; it records each statement's rows' request ids. */
function heldRunner() {
  const calls: { requestIds: string[]; operations: string[]; settle: (error?: unknown) => void }[] = [];
  const sql: SqlRunner = {
    exec: async () => {},
    transaction: async (work) => work(sql),
    query: (text: string, params: unknown[] = []) => {
      assert.match(text, /^INSERT INTO audit_event \(request_id, subject, role, key_id, operation, outcome, patient_ids, image_ids, details\) VALUES /);
      const rows = params.length / 9;
      assert.equal(text.match(/\(\$\d+, /g)?.length, rows, 'one VALUES tuple per row');
      return new Promise((resolve, reject) => {
        calls.push({
          requestIds: Array.from({ length: rows }, (_, row) => String(params[row * 9])),
          operations: Array.from({ length: rows }, (_, row) => String(params[row * 9 + 4])),
          settle: (error) => (error ? reject(error) : resolve([])),
        });
      });
    },
  };
  return { sql, calls };
}

const actor = (requestId: string): AuditActor => ({ requestId, subject: 'demo-clinician', role: 'clinician', keyId: null });
const entry = (operation: string): AuditEntry => ({ operation, outcome: 'OK' });
const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Whether the promise has settled by now (without waiting for it). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await tick();
  return done;
}

test('a lone request is written at once, and its promise waits for the commit', async () => {
  const { sql, calls } = heldRunner();
  const writer = new AuditWriter(sql);
  const written = writer.write(actor('r1'), [entry('search'), entry('read-case')]);
  assert.equal(calls.length, 1, 'no timer: the INSERT is sent before anything else runs');
  assert.deepEqual(calls[0]!.requestIds, ['r1', 'r1']);
  assert.equal(await settled(written), false, 'not resolved before the database answered');
  calls[0]!.settle();
  await written;
  assert.deepEqual(writer.stats(), { inserts: 1, requests: 1, rows: 2, largestInsert: 1, waiting: 0 });
  assert.equal(await writer.write(actor('r0'), []).then(() => calls.length), 1, 'nothing to record, nothing sent');
});

test('requests that arrive while an INSERT is in flight go together in the next one, in order, each request\'s rows together', async () => {
  const { sql, calls } = heldRunner();
  const writer = new AuditWriter(sql);
  const first = writer.write(actor('a'), [entry('search')]);
  const waiting = [writer.write(actor('b'), [entry('search'), entry('read')]), writer.write(actor('c'), [entry('search')]), writer.write(actor('d'), [entry('link')])];
  assert.equal(calls.length, 1, 'one INSERT in flight at a time');
  assert.equal(writer.stats().waiting, 3);
  calls[0]!.settle();
  await first;
  await tick();
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1]!.requestIds, ['b', 'b', 'c', 'd']);
  assert.deepEqual(calls[1]!.operations, ['search', 'read', 'search', 'link']);
  for (const promise of waiting) assert.equal(await settled(promise), false, 'each waits for its own commit');
  calls[1]!.settle();
  await Promise.all(waiting);
  assert.deepEqual(writer.stats(), { inserts: 2, requests: 4, rows: 5, largestInsert: 3, waiting: 0 });
});

test('an INSERT carries at most maxRows rows; a request larger than that goes alone, never split', async () => {
  const { sql, calls } = heldRunner();
  const writer = new AuditWriter(sql, 3);
  const all = [
    writer.write(actor('a'), [entry('x')]),
    writer.write(actor('b'), [entry('x'), entry('y')]),
    writer.write(actor('c'), [entry('x'), entry('y')]),
    writer.write(actor('d'), [entry('x'), entry('y'), entry('z'), entry('w')]),
    writer.write(actor('e'), [entry('x')]),
  ];
  for (let insert = 0; insert < 5; insert += 1) {
    await tick();
    calls[insert]!.settle();
  }
  await Promise.all(all);
  assert.deepEqual(calls.map((call) => call.requestIds.join('')), ['a', 'bb', 'cc', 'dddd', 'e'], 'b + c would be 4 rows; d alone is 4');
});

test('a batch refused for its rows is written request by request: only the bad request fails', async () => {
  const { sql, calls } = heldRunner();
  const writer = new AuditWriter(sql);
  const first = writer.write(actor('a'), [entry('x')]);
  const good = writer.write(actor('b'), [entry('x')]);
  const bad = writer.write(actor('c'), [entry('x')]);
  const alsoGood = writer.write(actor('d'), [entry('x')]);
  const badRefused = assert.rejects(bad, (error: { code?: string }) => error.code === '22P05');
  calls[0]!.settle();
  await first;
  await tick();
  assert.deepEqual(calls[1]!.requestIds, ['b', 'c', 'd']);
  calls[1]!.settle(Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' }));
  for (const [index, requestId] of ['b', 'c', 'd'].entries()) {
    await tick();
    assert.deepEqual(calls[2 + index]!.requestIds, [requestId], 'then each alone');
    calls[2 + index]!.settle(requestId === 'c' ? Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' }) : undefined);
  }
  await good;
  await alsoGood;
  await badRefused;
});

test('any other error fails every request of the batch and nothing is sent again (a commit of unknown outcome is not repeated)', async () => {
  const { sql, calls } = heldRunner();
  const writer = new AuditWriter(sql);
  const first = writer.write(actor('a'), [entry('x')]);
  const batch = [writer.write(actor('b'), [entry('x')]), writer.write(actor('c'), [entry('x')])].map((promise) => assert.rejects(promise, /Connection terminated/));
  calls[0]!.settle();
  await first;
  await tick();
  calls[1]!.settle(Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined }));
  await Promise.all(batch);
  await tick();
  assert.equal(calls.length, 2, 'no retry');
  // The writer goes on with the next request.
  const after = writer.write(actor('e'), [entry('x')]);
  assert.equal(calls.length, 3);
  calls[2]!.settle();
  await after;
});
