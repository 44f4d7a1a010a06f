import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLsn, parseLsn, replicaLagMs } from './read-routing.js';

test('WAL positions parse to comparable numbers and back', () => {
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('0/16B3748'), 0x16b3748n);
  assert.equal(parseLsn('1/0'), 1n << 32n);
  assert.ok(parseLsn('1/0') > parseLsn('0/FFFFFFFF'), 'the high half dominates');
  assert.equal(formatLsn(parseLsn('2A/DEADBEEF')), '2A/DEADBEEF');
  assert.throws(() => parseLsn('16B3748'), /not a WAL position/);
});

test('replica lag is the age of the oldest primary position the replica has not replayed', () => {
  const samples = [
    { at: 1000, lsn: 100n },
    { at: 1500, lsn: 200n },
    { at: 2000, lsn: 300n },
  ];
  assert.equal(replicaLagMs(samples, 300n, 2100), 0, 'replayed the newest: no lag');
  assert.equal(replicaLagMs(samples, 350n, 2100), 0);
  assert.equal(replicaLagMs(samples, 250n, 2100), 100, 'missing what the newest sample saw');
  assert.equal(replicaLagMs(samples, 150n, 2100), 600, 'missing what the sample at 1500 saw');
  assert.equal(replicaLagMs(samples, 50n, 2100), Number.POSITIVE_INFINITY, 'behind every kept sample: more than the window');
  assert.equal(replicaLagMs([], 0n, 2100), 0, 'no samples yet');
});
