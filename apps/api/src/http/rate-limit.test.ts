import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { LeasingRateLimiter, leaseSizeFor, MAX_LEASE } from './rate-limit.js';

/** A shared store (what RateLimiterPostgres is to several API processes) that counts the calls made to it. */
function countedStore(points: number, duration = 60) {
  const memory = new RateLimiterMemory({ points, duration });
  const calls: number[] = [];
  const store = {
    points,
    consume: (key: string | number, asked?: number) => {
      calls.push(asked ?? 1);
      return memory.consume(key, asked);
    },
  };
  return { store, calls };
}

/** Consumes `count` points one after another; true for each admitted request, false for each refusal. */
async function sequential(limiter: LeasingRateLimiter, key: string, count: number): Promise<boolean[]> {
  const outcomes: boolean[] = [];
  for (let index = 0; index < count; index += 1) {
    outcomes.push(await limiter.consume(key).then(() => true, (rejection) => {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return false;
    }));
  }
  return outcomes;
}

test('the lease is one in a hundred of the limit, from 1 to MAX_LEASE', () => {
  assert.equal(leaseSizeFor(3), 1);
  assert.equal(leaseSizeFor(40), 1);
  assert.equal(leaseSizeFor(600), 6);
  assert.equal(leaseSizeFor(10_000_000), MAX_LEASE);
});

test('one process admits exactly the limit and asks the store once a lease, not once a request', async () => {
  const { store, calls } = countedStore(100);
  const limiter = new LeasingRateLimiter(store, { leaseSize: 8 });
  const outcomes = await sequential(limiter, 'sub:a', 130);
  assert.deepEqual(outcomes, [...Array(100).fill(true), ...Array(30).fill(false)]);
  // 12 leases of 8 and one of the 4 left admit the 100; one more lease is refused, after which the process refuses
  // the rest of the window itself.
  assert.deepEqual(calls, [...Array(12).fill(8), 4, 1]);
  assert.deepEqual(limiter.stats(), { admitted: 100, storeCalls: 14, leaseSize: 8 });
});

test('two processes on one store never admit more than the limit, and at most a lease less', async () => {
  const { store } = countedStore(100);
  const first = new LeasingRateLimiter(store, { leaseSize: 8 });
  const second = new LeasingRateLimiter(store, { leaseSize: 8 });
  let admitted = 0;
  for (let index = 0; index < 150; index += 1) {
    // Uneven turns, as a load balancer's would be: two on the first process, one on the second.
    const limiter = index % 3 === 2 ? second : first;
    admitted += await limiter.consume('sub:a').then(() => 1, () => 0);
  }
  assert.ok(admitted <= 100, `admitted ${admitted} of a limit of 100`);
  assert.ok(admitted >= 100 - (8 - 1), `admitted ${admitted}: refused more than one lease early`);
});

test('a lease that gets fewer points than asked admits those and refuses the rest, with the time left', async () => {
  const { store } = countedStore(10);
  // Another process has spent 7 of the 10.
  await store.consume('sub:a', 7);
  const limiter = new LeasingRateLimiter(store, { leaseSize: 8 });
  const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => limiter.consume('sub:a')));
  assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected']);
  const refusal = (outcomes[3] as PromiseRejectedResult).reason;
  assert.ok(refusal instanceof RateLimiterRes, String(refusal));
  assert.ok(refusal.msBeforeNext > 0 && refusal.msBeforeNext <= 60_000, `msBeforeNext ${refusal.msBeforeNext}`);
});

test('requests arriving together share one lease', async () => {
  const { store, calls } = countedStore(1000);
  const limiter = new LeasingRateLimiter(store, { leaseSize: 10 });
  await Promise.all(Array.from({ length: 25 }, () => limiter.consume('sub:a')));
  assert.deepEqual(calls, [10, 10, 10], '25 concurrent requests: three leases');
  assert.equal(limiter.stats().admitted, 25);
});

test('credentials have leases of their own', async () => {
  const { store } = countedStore(2);
  const limiter = new LeasingRateLimiter(store, { leaseSize: 1 });
  assert.deepEqual(await sequential(limiter, 'sub:a', 3), [true, true, false]);
  assert.deepEqual(await sequential(limiter, 'sub:b', 2), [true, true]);
});

test('points leased in a window are not spent in the next one', async () => {
  let now = 1_000_000;
  const leases: number[] = [];
  const store = {
    points: 100,
    // The store's window ends 1 s after each lease.
    consume: async (_key: string | number, asked = 1) => {
      leases.push(asked);
      return new RateLimiterRes(100 - asked, 1000, asked, true);
    },
  };
  const limiter = new LeasingRateLimiter(store, { leaseSize: 5, now: () => now });
  await limiter.consume('sub:a');
  now += 999;
  await limiter.consume('sub:a');
  assert.deepEqual(leases, [5], 'within the window the lease serves');
  now += 2;
  await limiter.consume('sub:a');
  assert.deepEqual(leases, [5, 5], 'after the window the 3 unspent points are gone and a new lease is taken');
});

test('a store that fails fails the waiting requests, and the next request asks it again', async () => {
  let failing = true;
  let asked = 0;
  const store = {
    points: 100,
    consume: async (_key: string | number, points = 1) => {
      asked += 1;
      if (failing) throw new Error('connection refused');
      return new RateLimiterRes(100 - points, 60_000, points, true);
    },
  };
  const limiter = new LeasingRateLimiter(store, { leaseSize: 4 });
  const outcomes = await Promise.allSettled([limiter.consume('sub:a'), limiter.consume('sub:a')]);
  assert.deepEqual(outcomes.map((outcome) => outcome.status), ['rejected', 'rejected']);
  assert.equal(((outcomes[0] as PromiseRejectedResult).reason as Error).message, 'connection refused');
  assert.equal(asked, 1, 'the two waited for one call');
  failing = false;
  await limiter.consume('sub:a');
  assert.equal(asked, 2);
});

test('a lease size that is not a positive integer is refused', () => {
  assert.throws(() => new LeasingRateLimiter({ points: 10, consume: async () => new RateLimiterRes() }, { leaseSize: 0 }), /lease size 0/);
});
