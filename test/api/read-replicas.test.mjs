// Reads on a streaming replica, writes on the primary (apps/api/src/db/read-routing.ts), against a real primary and
// replica: scripts/cluster/start.sh starts them on loopback and writes TEST_REPLICA_PRIMARY_URL / TEST_REPLICA_URL
// (source /var/lib/fundus-cluster/test-env). Replay on the replica is paused on purpose, so a read that went to the
// replica cannot see a write made after the pause: that is what makes "the clinician finds the case just saved"
// fail without read-your-writes.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { TINY_MODEL, repositoryRoot, startApi } from '../support/backends.mjs';
import { postUpload } from '../support/uploads.mjs';

const { makeSyntheticFundusPng } = await import(path.join(repositoryRoot, 'apps/api/dist/embedding/testing/fixtures.js'));

const PRIMARY_TEMPLATE = process.env.TEST_REPLICA_PRIMARY_URL;
const REPLICA_TEMPLATE = process.env.TEST_REPLICA_URL;
const SKIP = PRIMARY_TEMPLATE && REPLICA_TEMPLATE
  ? false
  : 'TEST_REPLICA_PRIMARY_URL / TEST_REPLICA_URL are not set: run scripts/cluster/start.sh (as root) and source /var/lib/fundus-cluster/test-env';

const INGEST = `mutation I($input: IngestCaseInput!) { ingestCase(input: $input) { status case { id } } }`;
const SEARCH = `query S($input: SimilarCasesInput!) { similarCases(input: $input) { query { id } hits { case { id } } } }`;
const CASE = `query C($id: ID!) { case(id: $id) { id } }`;

/** The suite's own database on the replica: the same name as on the primary, on the replica's port. */
const onReplica = (primaryUrl) => {
  const url = new URL(primaryUrl);
  url.port = new URL(REPLICA_TEMPLATE).port;
  return url.toString();
};

async function until(what, check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A client on the suite's database on the replica (retrying while the CREATE DATABASE is still replaying). */
async function connectReplica(url) {
  let lastError;
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      return client;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw lastError;
}

const caseInput = (uploadToken, mrn) => ({
  uploadToken,
  patient: { mrn, mrnSystem: 'urn:oid:1.2.3.4', birthYear: 1961, sex: 'FEMALE', diabetesType: 'TYPE_2' },
  visitDate: '2025-03-14',
  eye: 'LEFT',
  grading: { drGrade: 2, grader: 'Dr Test' },
});

async function saveCase(api, tint, mrn) {
  const uploaded = await postUpload(api, await makeSyntheticFundusPng({ width: 420, height: 320, tint }));
  assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
  const saved = await api.graphql(INGEST, { input: caseInput(uploaded.body.uploadToken, mrn) });
  assert.equal(saved.body.errors, undefined, JSON.stringify(saved.body.errors));
  assert.equal(saved.body.data.ingestCase.status, 'ADDED');
  return saved.body.data.ingestCase.case.id;
}

describe('reads on a streaming replica', { skip: SKIP }, () => {
  let api;
  let replica;
  before(async () => {
    api = await startApi('postgres', {
      templateUrl: PRIMARY_TEMPLATE,
      modelPath: TINY_MODEL,
      // Lag tolerance far above the test's pause: the replica stays in service, so only read-your-writes keeps
      // the clinician's reads off it.
      env: (database) => ({ DATABASE_URL: database.url, DATABASE_REPLICA_URLS: onReplica(database.url), REPLICA_POLL_INTERVAL_MS: '100', REPLICA_MAX_LAG_MS: '120000' }),
    });
    replica = await connectReplica(onReplica(api.database.url));
    await until('the replica in service', async () => {
      await api.server.reads.poll();
      return api.server.reads.stats().replicas[0].healthy;
    });
  });
  after(async () => {
    // Never leave the shared replica paused, whatever failed.
    await replica?.query('SELECT pg_wal_replay_resume()').catch(() => {});
    await replica?.end();
    await api?.close();
  });

  test('a case read by a credential with no write of its own runs on the replica', async () => {
    const [stored] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
    const before = api.server.reads.stats();
    const result = await api.graphql(CASE, { id: stored.id });
    assert.equal(result.body.data?.case?.id, stored.id, JSON.stringify(result.body.errors));
    const afterRead = api.server.reads.stats();
    assert.equal(afterRead.replicaReads, before.replicaReads + 1, 'the read ran on the replica');
    assert.equal(afterRead.primaryReads, before.primaryReads);
  });

  test('the clinician who saved a case finds it at once while the replica has not replayed it; others see it after replay', async () => {
    await replica.query('SELECT pg_wal_replay_pause()');
    await until('replay paused', async () => (await replica.query('SELECT pg_get_wal_replay_pause_state() AS state')).rows[0].state === 'paused');
    const savedId = await saveCase(api, 0.37, 'MRN-RYW-1');

    const search = await api.graphql(SEARCH, { input: { imageId: savedId, k: 1, excludeSamePatient: false } });
    assert.equal(search.body.errors, undefined, JSON.stringify(search.body.errors));
    assert.equal(search.body.data.similarCases.query.id, savedId, 'the saver searches from the case just saved');
    const read = await api.graphql(CASE, { id: savedId });
    assert.equal(read.body.data?.case?.id, savedId, JSON.stringify(read.body.errors));

    // Another credential, with no write of its own, reads from the paused replica: the case is not there yet.
    // This is what the saver would see without read-your-writes.
    const [{ n: onReplicaBefore }] = (await replica.query('SELECT count(*)::int AS n FROM fundus_image WHERE id = $1', [savedId])).rows;
    assert.equal(onReplicaBefore, 0, 'the replica has not replayed the write');
    const other = await api.graphql(CASE, { id: savedId }, { as: 'demo-admin' });
    assert.equal(other.body.errors?.[0]?.extensions?.code, 'NOT_FOUND', 'another credential read the paused replica');

    await replica.query('SELECT pg_wal_replay_resume()');
    await until('the replica replays the write', async () => (await replica.query('SELECT count(*)::int AS n FROM fundus_image WHERE id = $1', [savedId])).rows[0].n === 1);
    await api.server.reads.poll();
    const otherAfter = await api.graphql(CASE, { id: savedId }, { as: 'demo-admin' });
    assert.equal(otherAfter.body.data?.case?.id, savedId, JSON.stringify(otherAfter.body.errors));
    // And once the replica has caught up, the saver's searches go back to it, and find the same.
    const before = api.server.reads.stats();
    const again = await api.graphql(SEARCH, { input: { imageId: savedId, k: 1, excludeSamePatient: false } });
    assert.equal(again.body.data?.similarCases?.query?.id, savedId, JSON.stringify(again.body.errors));
    assert.equal(api.server.reads.stats().replicaReads, before.replicaReads + 1, "the saver's search ran on the caught-up replica");
  });
});

describe('reads fall back to the primary', { skip: SKIP }, () => {
  test('when the replica cannot be reached: every read answers, from the primary', async () => {
    const api = await startApi('postgres', { templateUrl: PRIMARY_TEMPLATE, env: (database) => ({ DATABASE_URL: database.url, DATABASE_REPLICA_URLS: 'postgresql://fundus:fundus@127.0.0.1:1/none', REPLICA_POLL_INTERVAL_MS: '100' }) });
    try {
      const stats = api.server.reads.stats();
      assert.equal(stats.replicas[0].healthy, false);
      assert.match(stats.replicas[0].problem, /unreachable/);
      const [stored] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
      const result = await api.graphql(SEARCH, { input: { imageId: stored.id, k: 2 } });
      assert.equal(result.body.errors, undefined, JSON.stringify(result.body.errors));
      assert.equal(result.body.data.similarCases.hits.length, 2);
      assert.equal(api.server.reads.stats().replicaReads, 0);
      assert.equal(api.server.reads.stats().primaryReads, 1);
    } finally {
      await api.close();
    }
  });

  test('when a read fails on a replica that polls as well: it is rerun on the primary and answers', { skip: !process.env.TEST_REPLICA_UNPRIVILEGED_USER && 'TEST_REPLICA_UNPRIVILEGED_USER is not set: rerun scripts/cluster/start.sh and source its test-env' }, async () => {
    // The replica is reached as a login without table privileges: the poll (a function anyone may call)
    // succeeds, every read there fails, as on a replica that breaks between two polls.
    const broken = (url) => {
      const replicaUrl = new URL(onReplica(url));
      [replicaUrl.username, replicaUrl.password] = process.env.TEST_REPLICA_UNPRIVILEGED_USER.split(':');
      return replicaUrl.toString();
    };
    const api = await startApi('postgres', {
      templateUrl: PRIMARY_TEMPLATE,
      env: (database) => ({ DATABASE_URL: database.url, DATABASE_REPLICA_URLS: broken(database.url), REPLICA_POLL_INTERVAL_MS: '100' }),
    });
    try {
      await until('the replica in service', async () => {
        await api.server.reads.poll();
        return api.server.reads.stats().replicas[0].healthy;
      });
      const [stored] = await api.db.sql.query('SELECT id::text AS id FROM fundus_image ORDER BY id LIMIT 1');
      const result = await api.graphql(CASE, { id: stored.id }, { as: 'demo-admin' });
      assert.equal(result.body.data?.case?.id, stored.id, JSON.stringify(result.body.errors));
      const stats = api.server.reads.stats();
      assert.equal(stats.fallbacks, 1, 'the read failed on the replica and was rerun on the primary');
      assert.equal(stats.replicaReads, 0);
      assert.equal(stats.primaryReads, 1);
    } finally {
      await api.close();
    }
  });

  test('when the replica lags more than REPLICA_MAX_LAG_MS: it leaves reads until it catches up', async () => {
    const api = await startApi('postgres', {
      templateUrl: PRIMARY_TEMPLATE,
      modelPath: TINY_MODEL,
      env: (database) => ({ DATABASE_URL: database.url, DATABASE_REPLICA_URLS: onReplica(database.url), REPLICA_POLL_INTERVAL_MS: '100', REPLICA_MAX_LAG_MS: '400' }),
    });
    const replica = await connectReplica(onReplica(api.database.url));
    try {
      await until('the replica in service', async () => {
        await api.server.reads.poll();
        return api.server.reads.stats().replicas[0].healthy;
      });
      await replica.query('SELECT pg_wal_replay_pause()');
      await until('replay paused', async () => (await replica.query('SELECT pg_get_wal_replay_pause_state() AS state')).rows[0].state === 'paused');
      // The clinician writes; the admin, who wrote nothing, is served by the primary once the replica is too far behind.
      const savedId = await saveCase(api, 0.61, 'MRN-LAG-1');
      await until('the lagging replica left out', async () => !api.server.reads.stats().replicas[0].healthy);
      assert.match(api.server.reads.stats().replicas[0].problem, /behind the primary/);
      const read = await api.graphql(CASE, { id: savedId }, { as: 'demo-admin' });
      assert.equal(read.body.data?.case?.id, savedId, JSON.stringify(read.body.errors));

      await replica.query('SELECT pg_wal_replay_resume()');
      await until('the replica back in service', async () => api.server.reads.stats().replicas[0].healthy);
    } finally {
      await replica.query('SELECT pg_wal_replay_resume()').catch(() => {});
      await replica.end();
      await api.close();
    }
  });
});
