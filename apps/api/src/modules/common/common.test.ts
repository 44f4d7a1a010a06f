import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import { decodeCursor, encodeCursor, toPage } from './pagination.js';
import { requireIcdrGrade, requireIntegerInRange, requireUuid } from './validation.js';

const ID = '0b6f1c1e-8f3a-4c1e-9d55-0a1b2c3d4e5f';

const codeOf = (work: () => unknown) => {
  try {
    work();
  } catch (error) {
    return error instanceof AppError ? error.code : 'not an AppError';
  }
  return 'no error';
};

test('cursors round-trip and forged ones are BAD_USER_INPUT', () => {
  assert.equal(decodeCursor(encodeCursor(ID)), ID);
  assert.equal(codeOf(() => decodeCursor('garbage')), 'BAD_USER_INPUT');
  assert.equal(codeOf(() => decodeCursor(Buffer.from('id:not-a-uuid').toString('base64url'))), 'BAD_USER_INPUT');
});

test('toPage uses the extra row only to say that a next page exists', () => {
  const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  assert.deepEqual(toPage(rows, 2).nodes, [{ id: 'a' }, { id: 'b' }]);
  assert.equal(toPage(rows, 2).pageInfo.hasNextPage, true);
  assert.equal(toPage(rows, 3).pageInfo.hasNextPage, false);
  assert.equal(toPage([], 3).pageInfo.endCursor, null);
});

test('validators accept the bounds and refuse what lies outside', () => {
  assert.equal(requireIntegerInRange(1, 'k', 1, 100), 1);
  assert.equal(requireIntegerInRange(100, 'k', 1, 100), 100);
  for (const bad of [0, 101, 2.5, Number.NaN]) assert.equal(codeOf(() => requireIntegerInRange(bad, 'k', 1, 100)), 'BAD_USER_INPUT');
  for (const grade of [0, 4]) assert.equal(requireIcdrGrade(grade, 'g'), grade);
  for (const bad of [-1, 5, 1.5]) assert.equal(codeOf(() => requireIcdrGrade(bad, 'g')), 'BAD_USER_INPUT');
  assert.equal(requireUuid(ID.toUpperCase(), 'id'), ID);
  assert.equal(codeOf(() => requireUuid('42', 'id')), 'BAD_USER_INPUT');
});
