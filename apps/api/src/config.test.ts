import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from './config.js';

test('the embedded database is the default and DATABASE_URL switches to PostgreSQL', () => {
  assert.equal(loadConfig({}).database.kind, 'pglite');
  const config = loadConfig({ DATABASE_URL: 'postgresql://u:p@localhost:5432/db', PORT: '4100' });
  assert.deepEqual(config.database, { kind: 'postgres', url: 'postgresql://u:p@localhost:5432/db' });
  assert.equal(config.port, 4100);
});

test('invalid settings fail at start-up with every problem named', () => {
  assert.throws(() => loadConfig({ PORT: 'eighty', SEED_DEMO_COHORT: 'maybe' }), /PORT.*SEED_DEMO_COHORT|SEED_DEMO_COHORT.*PORT/);
});

test('the local demo issuer is on with the embedded database only, unless configured', () => {
  assert.notEqual(loadConfig({}).auth.localIssuerKeyDir, null);
  assert.equal(loadConfig({ DATABASE_URL: 'postgresql://u:p@localhost:5432/db' }).auth.localIssuerKeyDir, null);
  assert.notEqual(loadConfig({ DATABASE_URL: 'postgresql://u:p@localhost:5432/db', AUTH_LOCAL_ISSUER: 'true' }).auth.localIssuerKeyDir, null);
  assert.equal(loadConfig({ AUTH_ISSUER: 'https://id.example.org', AUTH_JWKS_URL: 'https://id.example.org/jwks' }).auth.localIssuerKeyDir, null);
  assert.equal(loadConfig({ AUTH_LOCAL_ISSUER: 'false' }).auth.localIssuerKeyDir, null);
});

test('an OIDC issuer needs exactly one key source', () => {
  assert.throws(() => loadConfig({ AUTH_ISSUER: 'https://id.example.org' }), /AUTH_JWKS_FILE or AUTH_JWKS_URL/);
  assert.throws(() => loadConfig({ AUTH_ISSUER: 'https://id.example.org', AUTH_JWKS_FILE: '/k.json', AUTH_JWKS_URL: 'https://id.example.org/jwks' }), /not both/);
  assert.deepEqual(loadConfig({ AUTH_ISSUER: 'https://id.example.org', AUTH_JWKS_FILE: '/k.json' }).auth.oidc?.jwks, { kind: 'file', path: '/k.json' });
});

test('read replicas are a comma-separated list beside DATABASE_URL, never without it', () => {
  const primary = 'postgresql://u:p@localhost:5442/db';
  assert.deepEqual(loadConfig({ DATABASE_URL: primary }).readReplicas.urls, []);
  const config = loadConfig({ DATABASE_URL: primary, DATABASE_REPLICA_URLS: 'postgresql://u:p@localhost:5443/db, postgresql://u:p@localhost:5444/db', REPLICA_MAX_LAG_MS: '250' });
  assert.deepEqual(config.readReplicas, { urls: ['postgresql://u:p@localhost:5443/db', 'postgresql://u:p@localhost:5444/db'], maxLagMs: 250, pollIntervalMs: 500 });
  assert.throws(() => loadConfig({ DATABASE_REPLICA_URLS: 'postgresql://u:p@localhost:5443/db' }), /DATABASE_REPLICA_URLS needs DATABASE_URL/);
  assert.throws(() => loadConfig({ DATABASE_URL: primary, DATABASE_REPLICA_URLS: 'not a url' }), /each entry must be a postgresql:\/\/ URL/);
});
