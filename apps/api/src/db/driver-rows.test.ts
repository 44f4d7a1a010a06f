import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Prisma, type PrismaClient } from '../generated/prisma/client.js';
import { queryRows, registerDriverRunner } from './driver-rows.js';
import type { SqlRunner } from './sql-runner.js';

function recordingRunner() {
  const sent: { text: string; params: unknown[] }[] = [];
  const runner: SqlRunner = {
    exec: async () => {},
    transaction: async (work) => work(runner),
    query: async (text, params = []) => {
      sent.push({ text, params });
      return [{ answered: 'driver' }] as never[];
    },
  };
  return { runner, sent };
}

const fakeClient = (): PrismaClient => ({ $queryRaw: async () => [{ answered: 'prisma' }] }) as unknown as PrismaClient;

test('a registered client\'s statement goes to the driver as numbered parameters, the same values in order', async () => {
  const prisma = fakeClient();
  const { runner, sent } = recordingRunner();
  registerDriverRunner(prisma, runner);
  const ids = ['a', 'b'];
  const rows = await queryRows<{ answered: string }>(prisma, Prisma.sql`SELECT x FROM t WHERE id = ANY(${ids}::uuid[]) AND v = ${null} LIMIT ${10}`);
  assert.deepEqual(rows, [{ answered: 'driver' }]);
  assert.deepEqual(sent, [{ text: 'SELECT x FROM t WHERE id = ANY($1::uuid[]) AND v = $2 LIMIT $3', params: [ids, null, 10] }]);
});

test('a client nobody registered (PGlite\'s, a transaction\'s, a benchmark\'s own) keeps Prisma', async () => {
  const rows = await queryRows<{ answered: string }>(fakeClient(), Prisma.sql`SELECT ${1}`);
  assert.deepEqual(rows, [{ answered: 'prisma' }]);
});
