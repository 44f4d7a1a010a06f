// npm run token -- <demo user or role>     e.g. npm run token -- clinician
// Prints a bearer token of one of the embedded demo's users (demo-clinician, demo-researcher, demo-ehr,
// demo-admin), signed by the local demo issuer's key. Only where the local issuer is on (the embedded default;
// see README "Sign-in"); the API need not be stopped.
import { loadConfig } from '../config.js';
import { DEMO_USERS, openLocalIssuer } from '../auth/local-issuer.js';

const [wanted] = process.argv.slice(2);
const config = loadConfig();
const user = DEMO_USERS.find((candidate) => candidate.subject === wanted || candidate.role === wanted || candidate.subject === `demo-${wanted}`);
if (!user) {
  process.stderr.write(`usage: npm run token -- ${DEMO_USERS.map((candidate) => candidate.role).join('|')}\n`);
  process.exit(2);
}
if (!config.auth.localIssuerKeyDir) {
  process.stderr.write('The local demo issuer is off here (DATABASE_URL or AUTH_ISSUER is set); sign in through your OpenID Connect provider, or use an API key (npm run keys).\n');
  process.exit(1);
}
const issuer = await openLocalIssuer(config.auth.localIssuerKeyDir, { audience: config.auth.audience, roleClaim: config.auth.roleClaim, systemClaim: config.auth.systemClaim });
process.stdout.write(`${await issuer.sign(user)}\n`);
