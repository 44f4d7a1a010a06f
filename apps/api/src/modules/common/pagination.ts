// Relay-style connections: opaque cursors over a stable order, `first` capped, `hasNextPage` from a peek row.
import 'reflect-metadata';
import { Field, ObjectType } from 'type-graphql';
import { badInput } from '../../errors.js';
import { requireIntegerInRange, requireUuid } from './validation.js';

export const MAX_PAGE_SIZE = 100;

@ObjectType()
export class PageInfo {
  @Field(() => Boolean) hasNextPage!: boolean;
  @Field(() => String, { nullable: true }) endCursor!: string | null;
}

export function encodeCursor(id: string): string {
  return Buffer.from(`id:${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!decoded.startsWith('id:')) throw badInput('after is not a cursor this API issued', { field: 'after' });
  return requireUuid(decoded.slice(3), 'after');
}

export type Page<T> = { nodes: T[]; pageInfo: PageInfo };

export function checkPageSize(first: number): number {
  return requireIntegerInRange(first, 'first', 1, MAX_PAGE_SIZE);
}

/** Rows were fetched with take = first + 1; the extra row only says whether a next page exists. */
export function toPage<T extends { id: string }>(rows: T[], first: number): Page<T> {
  const nodes = rows.slice(0, first);
  const last = nodes.at(-1);
  return { nodes, pageInfo: { hasNextPage: rows.length > first, endCursor: last ? encodeCursor(last.id) : null } };
}
