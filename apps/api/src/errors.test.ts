import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphQLError } from 'graphql';
import { AppError, createErrorFormatter } from './errors.js';

test('AppErrors keep their code and message; unknown errors are logged and hidden', () => {
  const logged: unknown[] = [];
  const format = createErrorFormatter((error) => logged.push(error));
  const app = new AppError('NOT_FOUND', 'No case with id x', { field: 'id' });
  assert.deepEqual(format({ message: 'wrapped' }, new GraphQLError('wrapped', { originalError: app })).extensions, { code: 'NOT_FOUND', field: 'id' });
  const leaked = format({ message: 'relation "patient" does not exist', extensions: { code: 'INTERNAL_SERVER_ERROR' } }, new Error('relation "patient" does not exist'));
  assert.equal(leaked.message, 'Internal server error');
  assert.equal(leaked.extensions?.code, 'INTERNAL_SERVER_ERROR');
  assert.equal(logged.length, 1);
});

test('framework validation codes pass through unchanged', () => {
  const format = createErrorFormatter(() => assert.fail('must not log client mistakes'));
  const formatted = format({ message: 'Cannot query field "nope"', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }, new GraphQLError('Cannot query field "nope"'));
  assert.equal(formatted.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});
