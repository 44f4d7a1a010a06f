// Turns a request's credential into a Viewer, or refuses it with UNAUTHENTICATED and a stable reason:
//   Authorization: Bearer <JWT>      a person, signed by the configured OpenID Connect provider (or the local
//                                    demo issuer), verified with jose against issuer, audience and JWKS
//   Authorization: Bearer fcbr_...   or  X-API-Key: fcbr_...   a service's API key
// The role comes from the configured claim; a token whose role is not one of the policy's roles is FORBIDDEN
// (the identity is fine, it just may do nothing here).
import fs from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../errors.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { API_KEY_PREFIX, authenticateApiKey } from './api-keys.service.js';
import { isRole, type Viewer } from './policy.js';

/** Asymmetric algorithms only: an HS256 token would need a shared secret, and `none` is never accepted. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Seconds of clock difference tolerated between the provider and this server. */
const CLOCK_TOLERANCE_SECONDS = 30;

export type TrustedIssuer = { issuer: string; audience: string; keys: JWTVerifyGetKey };

export type AuthSettings = {
  issuers: TrustedIssuer[];
  roleClaim: string;
  systemClaim: string;
};

export type JwksSource = { kind: 'file'; path: string } | { kind: 'url'; url: string };

export function loadJwks(source: JwksSource): JWTVerifyGetKey {
  if (source.kind === 'url') return createRemoteJWKSet(new URL(source.url), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  const parsed = JSON.parse(fs.readFileSync(source.path, 'utf8')) as { keys?: JWK[] };
  if (!Array.isArray(parsed.keys)) throw new Error(`${source.path} is not a JWKS (no "keys" array)`);
  return createLocalJWKSet({ keys: parsed.keys });
}

export const localKeySet = (publicJwk: JWK): JWTVerifyGetKey => createLocalJWKSet({ keys: [publicJwk] });

const unauthenticated = (reason: string, message: string) => new AppError('UNAUTHENTICATED', message, { reason });

/** The bearer credential of a request, or null when none was sent. */
export function readCredential(headers: { authorization?: string | undefined; 'x-api-key'?: string | string[] | undefined }): string | null {
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.length > 0) return apiKey.trim();
  const authorization = headers.authorization;
  if (!authorization) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) throw unauthenticated('MALFORMED_CREDENTIAL', 'The Authorization header must be "Bearer <token>"');
  return match[1]!;
}

function classifyJoseError(error: unknown): AppError {
  if (error instanceof joseErrors.JWTExpired) return unauthenticated('TOKEN_EXPIRED', 'The token has expired; sign in again');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' || error.claim === 'iat') return unauthenticated('TOKEN_NOT_YET_VALID', 'The token is not valid yet (nbf/iat in the future)');
    if (error.claim === 'iss') return unauthenticated('WRONG_ISSUER', 'The token was issued by an issuer this API does not trust');
    if (error.claim === 'aud') return unauthenticated('WRONG_AUDIENCE', 'The token was issued for another audience');
    return unauthenticated('INVALID_CLAIMS', `The token's ${error.claim} claim is invalid`);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return unauthenticated('UNSIGNED_OR_WEAK_TOKEN', 'The token is unsigned or uses an algorithm this API does not accept');
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) {
    return unauthenticated('BAD_SIGNATURE', "The token's signature does not verify against the issuer's keys");
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) {
    return new AppError('INTERNAL_SERVER_ERROR', "The identity provider's keys could not be loaded", { reason: 'JWKS_UNAVAILABLE' });
  }
  return unauthenticated('MALFORMED_TOKEN', 'The token is not a well-formed signed JWT');
}

async function verifyJwt(token: string, settings: AuthSettings): Promise<JWTPayload> {
  let unverified: JWTPayload;
  try {
    unverified = decodeJwt(token);
  } catch {
    throw unauthenticated('MALFORMED_TOKEN', 'The token is not a well-formed JWT');
  }
  // Picks the key set by the token's claimed issuer; jwtVerify then checks that claim against it, so a token
  // cannot choose a key set other than its issuer's.
  const trusted = settings.issuers.find((candidate) => candidate.issuer === unverified.iss);
  if (!trusted) throw unauthenticated('WRONG_ISSUER', 'The token was issued by an issuer this API does not trust');
  try {
    const { payload } = await jwtVerify(token, trusted.keys, {
      issuer: trusted.issuer,
      audience: trusted.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['sub', 'exp'],
    });
    if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
      throw unauthenticated('TOKEN_NOT_YET_VALID', 'The token is not valid yet (issued in the future)');
    }
    return payload;
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw classifyJoseError(error);
  }
}

function roleFromClaim(value: unknown): string | null {
  if (typeof value === 'string') return value;
  // An array claim (Keycloak's roles, say) must name exactly one of the policy's roles.
  if (Array.isArray(value)) {
    const known = value.filter(isRole);
    return known.length === 1 ? known[0]! : null;
  }
  return null;
}

/**
 * Verified JWTs, by their exact text, until they expire: a signed token cannot change, so verifying it once per
 * process is enough, and a session's later requests skip the signature check (a thread-pool round trip). Bounded;
 * oldest first out. API keys are never cached: a revocation must take effect on the next request.
 */
const MAX_CACHED_TOKENS = 2000;
const verifiedTokens = new WeakMap<AuthSettings, Map<string, { viewer: Viewer; expiresAtMs: number }>>();

function cachedViewer(settings: AuthSettings, token: string, now: number): Viewer | null {
  const cache = verifiedTokens.get(settings);
  const hit = cache?.get(token);
  if (!hit) return null;
  if (hit.expiresAtMs <= now) {
    cache!.delete(token);
    return null;
  }
  return hit.viewer;
}

function rememberViewer(settings: AuthSettings, token: string, viewer: Viewer, expiresAtMs: number): void {
  let cache = verifiedTokens.get(settings);
  if (!cache) {
    cache = new Map();
    verifiedTokens.set(settings, cache);
  }
  while (cache.size >= MAX_CACHED_TOKENS) cache.delete(cache.keys().next().value!);
  cache.set(token, { viewer, expiresAtMs });
}

export async function authenticate({ credential, settings, prisma }: { credential: string; settings: AuthSettings; prisma: PrismaClient }): Promise<Viewer> {
  if (credential.startsWith(API_KEY_PREFIX)) return authenticateApiKey({ prisma, secret: credential });
  const cached = cachedViewer(settings, credential, Date.now());
  if (cached) return cached;
  const viewer = await authenticateJwt(credential, settings);
  const { exp } = decodeJwt(credential);
  if (typeof exp === 'number') rememberViewer(settings, credential, viewer, exp * 1000);
  return viewer;
}

async function authenticateJwt(credential: string, settings: AuthSettings): Promise<Viewer> {
  const payload = await verifyJwt(credential, settings);
  const role = roleFromClaim(payload[settings.roleClaim]);
  if (!isRole(role)) {
    throw new AppError('FORBIDDEN', `The token's ${settings.roleClaim} claim names no role of this API (clinician, researcher, ehr-service, admin)`, { reason: 'UNKNOWN_ROLE' });
  }
  let identifierSystem: string | null = null;
  if (role === 'ehr-service') {
    const system = payload[settings.systemClaim];
    if (typeof system !== 'string' || system.length === 0) {
      throw new AppError('FORBIDDEN', `An ehr-service token must carry its identifier system in the ${settings.systemClaim} claim`, { reason: 'UNBOUND_SERVICE' });
    }
    identifierSystem = system;
  }
  return { subject: String(payload.sub), role, keyId: null, identifierSystem };
}
