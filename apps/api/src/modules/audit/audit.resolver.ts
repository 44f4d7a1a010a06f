import 'reflect-metadata';
import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { DateTimeISOResolver } from 'graphql-scalars';
import { listAuditEvents } from '../../audit/audit.service.js';
import { audited } from '../../audit/audited.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../../auth/api-keys.service.js';
import type { RequestContext } from '../../context.js';
import { badInput } from '../../errors.js';
import { requireIntegerInRange, requireUuid } from '../common/validation.js';
import { ApiKey, AuditEventPage, AuditFilterInput, CreatedApiKey } from './audit.type.js';

@Resolver()
export class AuditResolver {
  @Query(() => AuditEventPage, { description: 'The audit log, newest first, filtered. Roles: admin.' })
  auditEvents(
    @Ctx() context: RequestContext,
    @Arg('filter', () => AuditFilterInput, { nullable: true }) filter?: AuditFilterInput | null,
    @Arg('first', () => Int, { defaultValue: 50 }) first: number = 50,
    @Arg('before', () => String, { nullable: true }) before?: string | null,
  ) {
    return audited(
      context,
      { operation: 'read-audit', details: { filter: filter ? { ...filter } : null, first, before: before ?? null } },
      async () => {
        requireIntegerInRange(first, 'first', 1, 500);
        if (before != null && !/^[1-9]\d{0,18}$/.test(before)) throw badInput('before must be a seq from a previous page', { field: 'before' });
        if (filter?.patientId) requireUuid(filter.patientId, 'filter.patientId');
        if (filter?.from && filter?.to && filter.from.getTime() > filter.to.getTime()) throw badInput('filter.from is after filter.to', { field: 'filter.from' });
        const { rows, hasMore } = await listAuditEvents(context.db.sql, { filters: filter ?? {}, first, before: before ? BigInt(before) : null });
        return { nodes: rows, nextBefore: hasMore ? rows[rows.length - 1]!.seq : null };
      },
      (page) => ({ details: { returned: page.nodes.length } }),
    );
  }

  @Query(() => [ApiKey], { description: 'Every API key (never their secrets). Roles: admin.' })
  apiKeys(@Ctx() context: RequestContext) {
    return audited(context, { operation: 'manage-keys', details: { action: 'list' } }, () => listApiKeys({ prisma: context.db.prisma }), (keys) => ({ details: { returned: keys.length } }));
  }

  @Mutation(() => CreatedApiKey, { description: 'Creates an API key; the secret is in this answer only. Roles: admin.' })
  createApiKey(
    @Ctx() context: RequestContext,
    @Arg('name', () => String) name: string,
    @Arg('role', () => String) role: string,
    @Arg('identifierSystem', () => String, { nullable: true }) identifierSystem?: string | null,
    @Arg('expiresAt', () => DateTimeISOResolver, { nullable: true }) expiresAt?: Date | null,
  ) {
    return audited(
      context,
      { operation: 'manage-keys', details: { action: 'create', name, role, identifierSystem: identifierSystem ?? null } },
      () => createApiKey({ prisma: context.db.prisma, name, role, identifierSystem, expiresAt, createdBy: context.viewer.subject }),
      (created) => ({ details: { keyId: created.key.id } }),
    );
  }

  @Mutation(() => ApiKey, { description: 'Revokes an API key at once (idempotent). Roles: admin.' })
  revokeApiKey(@Ctx() context: RequestContext, @Arg('id', () => ID) id: string) {
    return audited(context, { operation: 'manage-keys', details: { action: 'revoke', keyId: id } }, () => revokeApiKey({ prisma: context.db.prisma, id }));
  }
}
