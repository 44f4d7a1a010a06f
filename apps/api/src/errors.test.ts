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

test('a lost database connection is SERVICE_UNAVAILABLE with retryable, however deeply the driver wrapped it', () => {
  const format = createErrorFormatter(() => assert.fail('an unreachable database is not a bug to log per request'));
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5499'), { code: 'ECONNREFUSED' });
  const restarting = Object.assign(new Error('the database system is starting up'), { code: '57P03' });
  const prismaWrapped = Object.assign(new Error('Invalid `prisma.fundusImage.findMany()` invocation'), { code: 'P1017', meta: { driverAdapterError: { cause: { kind: 'ConnectionClosed' } } } });
  const terminated = new Error('Connection terminated unexpectedly');
  for (const cause of [refused, restarting, prismaWrapped, terminated, new GraphQLError('wrapped', { originalError: terminated })]) {
    const formatted = format({ message: 'x' }, new GraphQLError('x', { originalError: cause }));
    assert.deepEqual(formatted.extensions, { code: 'SERVICE_UNAVAILABLE', retryable: true }, cause.message);
    assert.doesNotMatch(formatted.message, /5499|prisma|ECONN/, 'no internals');
  }
});

test('errors that are not about reaching the database stay what they were', () => {
  const logged: unknown[] = [];
  const format = createErrorFormatter((error) => logged.push(error));
  const uniqueViolation = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
  assert.equal(format({ message: 'x' }, uniqueViolation).extensions?.code, 'INTERNAL_SERVER_ERROR');
  assert.deepEqual(format({ message: 'x' }, new AppError('AUDIT_UNAVAILABLE', 'try again')).extensions, { code: 'AUDIT_UNAVAILABLE', retryable: true });
  assert.deepEqual(format({ message: 'x' }, new AppError('NOT_FOUND', 'no')).extensions, { code: 'NOT_FOUND' }, 'only dependency failures are retryable');
  assert.equal(logged.length, 1);
});
