import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createNamedStatements } from './statement-names.js';

test('one SQL text has one name, two texts two names, and a statement without parameters stays unnamed', () => {
  const names = createNamedStatements();
  const first = names.nameFor({ sql: 'SELECT $1::int', args: [1] });
  assert.match(first, /^fcbr_[0-9a-f]{24}$/);
  assert.equal(names.nameFor({ sql: 'SELECT $1::int', args: [2] }), first, 'other values, the same statement');
  assert.notEqual(names.nameFor({ sql: 'SELECT $1::text', args: ['a'] }), first);
  assert.equal(names.nameFor({ sql: 'BEGIN', args: [] }), '', 'the simple protocol, unnamed');
  assert.deepEqual(names.stats(), { named: 2, unnamedOverCap: 0 });
  // Names are a digest of the text, so another process (another pool) names the same text alike.
  assert.equal(createNamedStatements().nameFor({ sql: 'SELECT $1::int', args: [3] }), first);
});

test('past the cap a new text runs unnamed, and the texts named before keep their names', () => {
  const names = createNamedStatements(2);
  const a = names.nameFor({ sql: 'SELECT $1 AS a', args: [1] });
  const b = names.nameFor({ sql: 'SELECT $1 AS b', args: [1] });
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS c', args: [1] }), '');
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS c', args: [1] }), '');
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS a', args: [1] }), a);
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS b', args: [1] }), b);
  assert.deepEqual(names.stats(), { named: 2, unnamedOverCap: 2 });
});
