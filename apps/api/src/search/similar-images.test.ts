import assert from 'node:assert/strict';
import { test } from 'node:test';
import { approximateSearchSql, toVectorParameter, type SimilarImageSearch } from './similar-images.js';

const NO_FILTERS = { drGrades: [], eye: null, sex: null, ageMin: null, ageMax: null, treatmentTypes: [] };
const search = (drGrades: number[]): SimilarImageSearch => ({
  modelVersion: 'v1',
  query: { vector: [0.6, 0.8], contentHash: 'a'.repeat(64) },
  k: 10,
  filters: { ...NO_FILTERS, drGrades },
  excludePatientId: null,
});

test('a vector goes to the database as one text parameter in pgvector form', () => {
  const sql = toVectorParameter(new Float32Array([0.5, -0.25, 1]), 'a test');
  assert.deepEqual(sql.values, ['[0.5,-0.25,1]']);
  assert.match(sql.sql, /^\?::vector$|^\$1::vector$/);
});

test('an empty or non-finite vector is refused before it reaches the database', () => {
  assert.throws(() => toVectorParameter([], 'empty'), /empty or contains a non-finite value/);
  assert.throws(() => toVectorParameter([1, Number.NaN], 'nan'), /non-finite/);
  assert.throws(() => toVectorParameter([1, Number.POSITIVE_INFINITY], 'inf'), /non-finite/);
});

test('a grade filter searches one partial-index branch per grade, with the grade as a literal', () => {
  const { sql } = approximateSearchSql(search([1, 4]));
  assert.equal(sql.match(/ORDER BY e\.embedding <=>/g)?.length, 2);
  assert.match(sql, /e\.dr_grade = 1 AND/);
  assert.match(sql, /e\.dr_grade = 4 AND/);
  assert.doesNotMatch(sql, /dr_grade IS NULL/);
});

test('no grade filter merges all five grades and the ungraded photographs', () => {
  const { sql } = approximateSearchSql(search([]));
  assert.equal(sql.match(/UNION ALL/g)?.length, 5);
  for (const grade of [0, 1, 2, 3, 4]) assert.match(sql, new RegExp(`e\\.dr_grade = ${grade} AND`));
  assert.match(sql, /e\.dr_grade IS NULL AND/);
});

test('a grade outside 0-4 never becomes SQL', () => {
  assert.throws(() => approximateSearchSql(search([5])), /not an integer 0-4/);
  assert.throws(() => approximateSearchSql(search([1.5])), /not an integer 0-4/);
});
