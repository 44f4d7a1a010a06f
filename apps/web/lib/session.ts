// The signed-in person's session: the API token and who it names, in one httpOnly, SameSite=Lax cookie that
// expires with the token. Nothing is kept on the server, and page scripts cannot read it. The web app never
// verifies the token itself: the API does on every request, and a token it refuses ends the session
// (lib/api-request.ts -> /session-ended). Server-side only.
import 'server-only';
import { createHash } from 'node:crypto';
import { cookies, headers } from 'next/headers';
import { redirect } from 'next/navigation';
import { config } from './config';

export interface SignedInUser {
  subject: string;
  name: string;
  role: string;
}

export interface Session {
  token: string;
  /** ISO date-time at which the API stops accepting the token. */
  expiresAt: string;
  user: SignedInUser;
}

/** Why a person is sent to the sign-in page; each has its message there (app/signin/page.tsx). */
export const SIGN_IN_REASONS = ['required', 'expired', 'rejected', 'signin-failed', 'signed-out'] as const;
export type SignInReason = (typeof SIGN_IN_REASONS)[number];

export const isSignInReason = (value: unknown): value is SignInReason =>
  typeof value === 'string' && (SIGN_IN_REASONS as readonly string[]).includes(value);

const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

/** A user as the API names one (subject, name, role), checked; the name falls back to the subject. */
export function parseUser(value: unknown): SignedInUser | null {
  if (typeof value !== 'object' || value === null) return null;
  const { subject, name, role } = value as Record<string, unknown>;
  if (!isNonEmptyString(subject) || !isNonEmptyString(role)) return null;
  return { subject, role, name: isNonEmptyString(name) ? name : subject };
}

/** The shape the API's sign-in answers with, checked: a cookie or response that does not match is no session. */
export function parseSession(value: unknown): Session | null {
  if (typeof value !== 'object' || value === null) return null;
  const { token, expiresAt, user } = value as Record<string, unknown>;
  if (!isNonEmptyString(token) || !isNonEmptyString(expiresAt) || Number.isNaN(Date.parse(expiresAt))) return null;
  const parsedUser = parseUser(user);
  return parsedUser ? { token, expiresAt, user: parsedUser } : null;
}

// The cookie value is base64url(JSON): no characters that need cookie quoting.
const encodeSession = (session: Session) => Buffer.from(JSON.stringify(session), 'utf8').toString('base64url');

function decodeSession(value: string): Session | null {
  try {
    return parseSession(JSON.parse(Buffer.from(value, 'base64url').toString('utf8')));
  } catch {
    return null;
  }
}

type SessionState = { kind: 'none' } | { kind: 'expired' } | { kind: 'signed-in'; session: Session };

async function readSessionState(): Promise<SessionState> {
  const cookie = (await cookies()).get(config.sessionCookieName);
  if (!cookie) return { kind: 'none' };
  const session = decodeSession(cookie.value);
  if (!session) return { kind: 'none' };
  // The browser drops the cookie at expiry; this covers a clock that is behind.
  if (Date.parse(session.expiresAt) <= Date.now()) return { kind: 'expired' };
  return { kind: 'signed-in', session };
}

export async function readSession(): Promise<Session | null> {
  const state = await readSessionState();
  return state.kind === 'signed-in' ? state.session : null;
}

/** A path on this site, or null: `next` values come from the query string, so no other origin is accepted. */
export function safeReturnPath(value: unknown): string | null {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return null;
  return value;
}

export function signInPath({ reason, next }: { reason?: SignInReason; next?: string | null } = {}): string {
  const params = new URLSearchParams();
  if (reason) params.set('reason', reason);
  if (next && safeReturnPath(next) && !next.startsWith('/signin')) params.set('next', next);
  const query = params.toString();
  return query ? `/signin?${query}` : '/signin';
}

/** The session, or a redirect to the sign-in page that comes back to `returnTo` afterwards. */
export async function requireSession(returnTo: string): Promise<Session> {
  const state = await readSessionState();
  if (state.kind === 'signed-in') return state.session;
  redirect(signInPath({ reason: state.kind === 'expired' ? 'expired' : 'required', next: returnTo }));
}

/**
 * Names a session without revealing its token. /session-ended deletes the cookie only when given the
 * fingerprint of the token in it, so a link from elsewhere cannot sign anyone out.
 */
export function fingerprintOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}

/** Where a page sends the browser when the API refuses the session's token (401). */
export function sessionEndedPath(session: Session, reason: 'expired' | 'rejected', returnTo: string): string {
  const params = new URLSearchParams({ session: fingerprintOf(session.token), reason });
  if (safeReturnPath(returnTo)) params.set('next', returnTo);
  return `/session-ended?${params}`;
}

/** Secure when the browser reached this server over https (directly or through a proxy that says so). */
async function isServedOverHttps(): Promise<boolean> {
  const forwardedProto = (await headers()).get('x-forwarded-proto');
  return forwardedProto?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/** Server actions and route handlers only (Next.js cannot set cookies while rendering). */
export async function writeSession(session: Session): Promise<void> {
  (await cookies()).set(config.sessionCookieName, encodeSession(session), {
    httpOnly: true,
    sameSite: 'lax',
    secure: await isServedOverHttps(),
    path: '/',
    expires: new Date(session.expiresAt),
  });
}

export async function clearSession(): Promise<void> {
  (await cookies()).delete(config.sessionCookieName);
}

/** For /session-ended: the session's token fingerprint, or null when there is no session. */
export async function currentFingerprint(): Promise<string | null> {
  const cookie = (await cookies()).get(config.sessionCookieName);
  const session = cookie ? decodeSession(cookie.value) : null;
  return session ? fingerprintOf(session.token) : null;
}

/** A page's path with its query string, as a return path for the sign-in page. */
export function pagePath(pathname: string, searchParams: Record<string, string | string[] | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(searchParams)) {
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) query.append(name, item);
  }
  const text = query.toString();
  return text ? `${pathname}?${text}` : pathname;
}
