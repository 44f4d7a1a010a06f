// The embedded demo's own token issuer: a local ES256 signing key made on first start, and one demo user per
// role. On only where config says so (by default with the embedded database and no OIDC issuer configured; never
// against PostgreSQL unless AUTH_LOCAL_ISSUER=true), so a real deployment cannot be entered with demo tokens.
import fs from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Role } from './policy.js';

export const LOCAL_ISSUER = 'urn:fundus-cbr:local-issuer';
const KEY_FILE = 'local-issuer.private.jwk.json';
const ALGORITHM = 'ES256';

export type DemoUser = { subject: string; name: string; role: Role; identifierSystem?: string };

/** The demo users, one per role; the EHR user is bound to the demo cohort's MRN system. */
export const DEMO_USERS: readonly DemoUser[] = [
  { subject: 'demo-clinician', name: 'Demo Clinician', role: 'clinician' },
  { subject: 'demo-researcher', name: 'Demo Researcher', role: 'researcher' },
  { subject: 'demo-ehr', name: 'Demo EHR integration', role: 'ehr-service', identifierSystem: 'urn:fundus-cbr:synthetic:demo-clinic' },
  { subject: 'demo-admin', name: 'Demo Administrator', role: 'admin' },
];

export type LocalIssuer = {
  issuer: string;
  publicJwk: JWK;
  /** Signs a token for a demo user (or any subject/role, for tests). */
  sign(claims: { subject: string; role: string; identifierSystem?: string; name?: string }, options?: { audience: string; roleClaim: string; systemClaim: string; ttlSeconds?: number }): Promise<string>;
};

async function readOrCreateKey(keyDir: string): Promise<JWK> {
  const file = path.join(keyDir, KEY_FILE);
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as JWK;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const { privateKey } = await generateKeyPair(ALGORITHM, { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: ALGORITHM, kid: `local-${Date.now().toString(36)}`, use: 'sig' };
  await fs.mkdir(keyDir, { recursive: true, mode: 0o700 });
  // wx: two processes starting at once never overwrite each other's key; the loser reads the winner's.
  try {
    await fs.writeFile(file, JSON.stringify(jwk), { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return JSON.parse(await fs.readFile(file, 'utf8')) as JWK;
    throw error;
  }
  return jwk;
}

export async function openLocalIssuer(keyDir: string, defaults: { audience: string; roleClaim: string; systemClaim: string }): Promise<LocalIssuer> {
  const privateJwk = await readOrCreateKey(keyDir);
  const privateKey = (await importJWK(privateJwk, ALGORITHM)) as CryptoKey;
  const { d: _private, ...publicJwk } = privateJwk;
  return {
    issuer: LOCAL_ISSUER,
    publicJwk,
    async sign(claims, options = defaults) {
      const payload: Record<string, unknown> = { [options.roleClaim]: claims.role };
      if (claims.name) payload.name = claims.name;
      if (claims.identifierSystem) payload[options.systemClaim] = claims.identifierSystem;
      return new SignJWT(payload)
        .setProtectedHeader({ alg: ALGORITHM, kid: privateJwk.kid, typ: 'JWT' })
        .setIssuer(LOCAL_ISSUER)
        .setAudience(options.audience)
        .setSubject(claims.subject)
        .setIssuedAt()
        .setExpirationTime(`${options.ttlSeconds ?? 8 * 3600}s`)
        .sign(privateKey);
    },
  };
}
