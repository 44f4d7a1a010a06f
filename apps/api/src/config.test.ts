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
