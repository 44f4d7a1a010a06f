import assert from 'node:assert/strict';
import { test } from 'node:test';
import { APPROXIMATE_SEARCH_TUNING, approximateSearchSql, toVectorParameter, vectorSessionOptions, vectorSessionSettings, type SimilarImageSearch } from './similar-images.js';

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

test('every search session carries both index kinds\' settings: a grade may have either after a rebuild', () => {
  assert.deepEqual(vectorSessionSettings(), {
    'hnsw.ef_search': '100',
    'hnsw.iterative_scan': 'relaxed_order',
    'hnsw.max_scan_tuples': '20000',
    'ivfflat.probes': '10',
    'ivfflat.iterative_scan': 'relaxed_order',
    'ivfflat.max_probes': '100',
  });
  assert.ok(APPROXIMATE_SEARCH_TUNING.maxProbes > APPROXIMATE_SEARCH_TUNING.probes, 'the iterative scan may read past the first probes');
  assert.match(vectorSessionOptions(), /-c ivfflat\.probes=10 -c ivfflat\.iterative_scan=relaxed_order -c ivfflat\.max_probes=100/);
});
