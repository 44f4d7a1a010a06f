// Sign-in through the API's local demo issuer (on with the embedded database: GET /auth/local/users,
// POST /auth/local/token). Where it is off those routes answer 404 and people would sign in with the
// organisation's OpenID Connect provider, which this app cannot do yet (README, "Signing in"). Server-side only.
import 'server-only';
import { config } from './config';
import { parseSession, parseUser, type Session, type SignedInUser } from './session';

export type DemoUsersOutcome =
  | { kind: 'users'; users: SignedInUser[] }
  | { kind: 'provider-not-configured' }
  | { kind: 'unavailable'; message: string };

async function callIssuer(url: string, init: RequestInit = {}): Promise<Response | null> {
  try {
    return await fetch(url, { ...init, cache: 'no-store', signal: AbortSignal.timeout(config.apiTimeoutMs) });
  } catch {
    return null;
  }
}

export async function listDemoUsers(): Promise<DemoUsersOutcome> {
  const response = await callIssuer(config.localIssuer.usersUrl, { headers: { accept: 'application/json' } });
  if (!response) return { kind: 'unavailable', message: 'The API could not be reached. Try again shortly.' };
  if (response.status === 404) return { kind: 'provider-not-configured' };
  if (!response.ok) return { kind: 'unavailable', message: `The API answered ${response.status} when asked for the demo users.` };
  const body = (await response.json().catch(() => null)) as { users?: unknown } | null;
  const users = Array.isArray(body?.users) ? body.users.map(parseUser) : null;
  if (!users || users.some((user) => user === null)) return { kind: 'unavailable', message: 'The API sent a list of demo users this app cannot read.' };
  return { kind: 'users', users: users.filter((user) => user !== null) };
}

/** A session for a demo user, or null when the API issued none. */
export async function signInAsDemoUser(subject: string): Promise<Session | null> {
  const response = await callIssuer(config.localIssuer.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ subject }),
  });
  if (response?.status !== 201) return null;
  return parseSession(await response.json().catch(() => null));
}
