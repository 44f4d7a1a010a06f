// API keys for services: random, shown once, stored only as a SHA-256 hash, revocable, optional expiry. An
// ehr-service key is bound to one identifier system (CHECK constraint api_key_ehr_bound_to_system).
import { createHash, randomBytes } from 'node:crypto';
import { AppError, badInput, notFound } from '../errors.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { isRole, UNIVERSAL_IDENTIFIER_SYSTEMS, type Role, type Viewer } from './policy.js';
import { requireUuid } from '../modules/common/validation.js';
import { requireIdentifierSystem } from './identifiers.js';

/** Prefix that makes a key recognisable in a leaked log or a secret scanner. */
export const API_KEY_PREFIX = 'fcbr_';
const API_KEY_PATTERN = /^fcbr_[A-Za-z0-9_-]{43}$/;

export const hashApiKey = (secret: string) => createHash('sha256').update(secret, 'utf8').digest('hex');

export type ApiKeySummary = {
  id: string;
  name: string;
  role: Role;
  identifierSystem: string | null;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
};

const toSummary = (row: { id: string; name: string; role: string; identifierSystem: string | null; createdBy: string; createdAt: Date; expiresAt: Date | null; revokedAt: Date | null }): ApiKeySummary => ({
  id: row.id,
  name: row.name,
  role: row.role as Role,
  identifierSystem: row.identifierSystem,
  createdBy: row.createdBy,
  createdAt: row.createdAt,
  expiresAt: row.expiresAt,
  revokedAt: row.revokedAt,
});

export async function createApiKey({
  prisma,
  name,
  role,
  identifierSystem,
  expiresAt,
  createdBy,
  now = new Date(),
}: {
  prisma: PrismaClient;
  name: string;
  role: string;
  identifierSystem?: string | null;
  expiresAt?: Date | null;
  createdBy: string;
  now?: Date;
}): Promise<{ key: ApiKeySummary; secret: string }> {
  const trimmed = name.trim();
  if (!/^[\w .:@-]{1,100}$/.test(trimmed)) throw badInput('name must be 1-100 letters, digits, spaces or . _ : @ -', { field: 'name' });
  if (!isRole(role)) throw badInput(`role must be one of clinician, researcher, ehr-service, admin; got "${role}"`, { field: 'role' });
  let system: string | null = null;
  if (role === 'ehr-service') {
    if (!identifierSystem) throw badInput('an ehr-service key must be bound to an identifier system (--system)', { field: 'identifierSystem' });
    system = requireIdentifierSystem(identifierSystem, 'identifierSystem');
    // Bound to a system everyone may use (urn:dicom:uid), a key would see every hospital's FHIR-imported patients.
    if (UNIVERSAL_IDENTIFIER_SYSTEMS.has(system)) throw badInput(`an ehr-service key must be bound to its own identifier system (its MRN namespace), not ${system}, which every credential shares`, { field: 'identifierSystem' });
  } else if (identifierSystem) {
    throw badInput('only ehr-service keys are bound to an identifier system', { field: 'identifierSystem' });
  }
  if (expiresAt && (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= now.getTime())) throw badInput('expiresAt must be a time in the future', { field: 'expiresAt' });
  const secret = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  const row = await prisma.apiKey.create({
    data: { name: trimmed, role, identifierSystem: system, secretHash: hashApiKey(secret), createdBy, expiresAt: expiresAt ?? null },
  });
  return { key: toSummary(row), secret };
}

export async function listApiKeys({ prisma }: { prisma: PrismaClient }): Promise<ApiKeySummary[]> {
  const rows = await prisma.apiKey.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
  return rows.map(toSummary);
}

export async function revokeApiKey({ prisma, id, now = new Date() }: { prisma: PrismaClient; id: string; now?: Date }): Promise<ApiKeySummary> {
  requireUuid(id, 'id');
  const existing = await prisma.apiKey.findUnique({ where: { id } });
  if (!existing) throw notFound(`No API key with id ${id}`, { field: 'id' });
  if (existing.revokedAt) return toSummary(existing);
  return toSummary(await prisma.apiKey.update({ where: { id }, data: { revokedAt: now } }));
}

/** The viewer a presented key stands for; UNAUTHENTICATED with a reason when it is unknown, revoked or expired. */
export async function authenticateApiKey({ prisma, secret, now = new Date() }: { prisma: PrismaClient; secret: string; now?: Date }): Promise<Viewer> {
  if (!API_KEY_PATTERN.test(secret)) throw new AppError('UNAUTHENTICATED', 'The API key is malformed', { reason: 'UNKNOWN_KEY' });
  const row = await prisma.apiKey.findUnique({ where: { secretHash: hashApiKey(secret) } });
  if (!row) throw new AppError('UNAUTHENTICATED', 'The API key is not known', { reason: 'UNKNOWN_KEY' });
  if (row.revokedAt) throw new AppError('UNAUTHENTICATED', 'The API key was revoked', { reason: 'KEY_REVOKED', keyId: row.id });
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) throw new AppError('UNAUTHENTICATED', 'The API key has expired', { reason: 'KEY_EXPIRED', keyId: row.id });
  if (!isRole(row.role)) throw new AppError('FORBIDDEN', `The API key carries an unknown role "${row.role}"`, { reason: 'UNKNOWN_ROLE' });
  return { subject: `key:${row.name}`, role: row.role, keyId: row.id, identifierSystem: row.identifierSystem };
}
