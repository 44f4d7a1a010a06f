import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createNamedStatements, MAX_NAMED_STATEMENTS } from './statement-names.js';

test('a text is named from its second execution on; one text has one name, two texts two; no parameters, no name', () => {
  const names = createNamedStatements();
  assert.equal(names.nameFor({ sql: 'SELECT $1::int', args: [1] }), '', 'the first execution runs unnamed');
  const first = names.nameFor({ sql: 'SELECT $1::int', args: [2] });
  assert.match(first, /^fcbr_[0-9a-f]{24}$/);
  assert.equal(names.nameFor({ sql: 'SELECT $1::int', args: [3] }), first, 'other values, the same statement');
  names.nameFor({ sql: 'SELECT $1::text', args: ['a'] });
  const other = names.nameFor({ sql: 'SELECT $1::text', args: ['b'] });
  assert.match(other, /^fcbr_/);
  assert.notEqual(other, first);
  assert.equal(names.nameFor({ sql: 'BEGIN', args: [] }), '', 'the simple protocol, unnamed');
  assert.equal(names.nameFor({ sql: 'BEGIN', args: [] }), '');
  assert.deepEqual(names.stats(), { named: 2, cap: MAX_NAMED_STATEMENTS, unnamedOverCap: 0 });
  // Names are a digest of the text, so another process (another pool) names the same text alike.
  const elsewhere = createNamedStatements();
  elsewhere.nameFor({ sql: 'SELECT $1::int', args: [4] });
  assert.equal(elsewhere.nameFor({ sql: 'SELECT $1::int', args: [5] }), first);
});

test('texts run once never take a name; past the cap a new text runs unnamed and the named ones keep their names', () => {
  const names = createNamedStatements(2);
  for (let index = 0; index < 50; index += 1) assert.equal(names.nameFor({ sql: `INSERT INTO t VALUES ($1) -- shape ${index}`, args: [index] }), '');
  assert.equal(names.stats().named, 0, 'one-off texts do not use up the cap');
  const twice = (sql: string) => (names.nameFor({ sql, args: [1] }), names.nameFor({ sql, args: [1] }));
  const a = twice('SELECT $1 AS a');
  const b = twice('SELECT $1 AS b');
  assert.match(a, /^fcbr_/);
  assert.match(b, /^fcbr_/);
  assert.equal(twice('SELECT $1 AS c'), '');
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS a', args: [1] }), a);
  assert.equal(names.nameFor({ sql: 'SELECT $1 AS b', args: [1] }), b);
  assert.deepEqual(names.stats(), { named: 2, cap: 2, unnamedOverCap: 1 });
});
