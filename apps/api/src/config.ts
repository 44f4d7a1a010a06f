// The API's configuration: one zod schema parsed once at start-up. Nothing else reads process.env.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const booleanFromEnv = z
  .enum(['true', 'false', '1', '0'])
  .transform((value) => value === 'true' || value === '1');

const environmentSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  /** PostgreSQL 15+ with pgvector. When unset, the embedded PGlite database in PGLITE_DATA_DIR is used. */
  DATABASE_URL: z.string().url().optional(),
  /** Connections of the API's PostgreSQL pool (Prisma and the audit writer share it; bench/README.md, load). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),
  /** Named prepared statements on the PostgreSQL pools (db/statement-names.ts): parsed and planned once a
   *  connection. Off: every statement is the unnamed one, planned each time (for comparison, bench/load.mjs). */
  DATABASE_NAMED_STATEMENTS: booleanFromEnv.default(true),
  /** Streaming replicas of DATABASE_URL (comma-separated URLs): searches and case reads go there, writes stay on
   *  DATABASE_URL; a credential that just wrote reads from the primary until a replica has replayed its write. */
  DATABASE_REPLICA_URLS: z.string().optional(),
  /** A replica further behind the primary than this is left out of reads until it catches up. */
  REPLICA_MAX_LAG_MS: z.coerce.number().int().positive().default(5000),
  /** How often each replica's replay position (and the primary's WAL position) is polled. */
  REPLICA_POLL_INTERVAL_MS: z.coerce.number().int().positive().default(500),
  /** Shard databases of similar-case search (comma-separated postgresql:// URLs, in the order `npm run shards --
   *  attach` was given them): searches fan out to them (search/shards.ts); unset: the primary searches alone. */
  SEARCH_SHARD_URLS: z.string().optional(),
  /** How often the API replays the search projection's outbox to the shards when it is not busy replaying. */
  SEARCH_SHARD_REPLAY_INTERVAL_MS: z.coerce.number().int().positive().default(250),
  PGLITE_DATA_DIR: z.string().default(path.join(repositoryRoot, '.data', 'pglite')),
  MIGRATIONS_DIR: z.string().default(path.join(repositoryRoot, 'prisma', 'migrations')),
  /** Seed the named demo cohort into an empty database at start-up. */
  SEED_DEMO_COHORT: booleanFromEnv.default(true),
  /** Embedding model version searches use; defaults to the newest version present in the database. */
  SEARCH_MODEL_VERSION: z.string().min(1).optional(),
  /** Largest accepted HTTP request body. GraphQL documents are small; uploads have their own limit. */
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(256 * 1024),
  MAX_QUERY_DEPTH: z.coerce.number().int().positive().default(12),
  MAX_QUERY_COMPLEXITY: z.coerce.number().int().positive().default(20_000),
  /** The ONNX embedding model; when the file is absent the API runs without upload search and says so. */
  MODEL_PATH: z.string().default(path.join(repositoryRoot, 'models', 'fundus-cbr.onnx')),
  /** The reuse step's fitted vote rule and calibration (cli/fit-reuse.ts), tied to one model version; default:
   *  beside MODEL_PATH as <name>.reuse.json. Absent or for another version: suggestions come uncalibrated. */
  REUSE_CALIBRATION_PATH: z.string().min(1).optional(),
  /** auto: CUDA when onnxruntime-node has its provider and a GPU answers, else CPU (logged at start). */
  EMBEDDING_DEVICE: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(20 * 1024 * 1024),
  MAX_UPLOAD_PIXELS: z.coerce.number().int().positive().default(40_000_000),
  UPLOAD_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(600),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  /** OpenID Connect provider whose signed JWTs people present (iss), the audience (aud) they must be for, and
   *  its keys: a JWKS file or URL. Unset: no external provider (API keys and, where on, the local issuer). */
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).default('fundus-cbr-api'),
  AUTH_JWKS_FILE: z.string().min(1).optional(),
  AUTH_JWKS_URL: z.string().url().optional(),
  /** The claim that names the role (a string, or an array naming exactly one of the roles). */
  AUTH_ROLE_CLAIM: z.string().min(1).default('fundus_role'),
  /** The claim that names an ehr-service token's identifier system. */
  AUTH_SYSTEM_CLAIM: z.string().min(1).default('fundus_identifier_system'),
  /** The demo's local token issuer: auto = on with the embedded database only; true/false force it. */
  AUTH_LOCAL_ISSUER: z.enum(['auto', 'true', 'false']).default('auto'),
  AUTH_LOCAL_KEY_DIR: z.string().min(1).optional(),
  /** Requests per minute per credential (and per client address for requests without one). */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(600),
  /** Most similar-case hits one request may ask for, summed over every similarCases field (aliases too). */
  MAX_HITS_PER_REQUEST: z.coerce.number().int().positive().default(200),
  /** Disclosure control of cohort statistics: the smallest cohort and cell shown (k), and how long a researcher's
   *  cohorts are remembered for differencing control. */
  COHORT_MIN_CELL_SIZE: z.coerce.number().int().min(2).max(100).default(5),
  COHORT_MEMORY_DAYS: z.coerce.number().int().min(1).max(3650).default(90),
});

export type AppConfig = {
  host: string;
  port: number;
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string };
  databasePoolSize: number;
  databaseNamedStatements: boolean;
  /** Read replicas of the PostgreSQL primary (db/read-routing.ts); empty: every read on the primary. */
  readReplicas: { urls: string[]; maxLagMs: number; pollIntervalMs: number };
  /** Shards of similar-case search (search/shards.ts); empty: the primary searches alone. */
  searchShards: { urls: string[]; replayIntervalMs: number };
  migrationsDir: string;
  seedDemoCohort: boolean;
  searchModelVersion: string | undefined;
  maxBodyBytes: number;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  modelPath: string;
  reuseCalibrationPath: string;
  embeddingDevice: 'auto' | 'cpu' | 'cuda';
  upload: { maxBytes: number; maxPixels: number; tokenTtlSeconds: number };
  auth: {
    oidc: { issuer: string; audience: string; jwks: { kind: 'file'; path: string } | { kind: 'url'; url: string } } | null;
    audience: string;
    roleClaim: string;
    systemClaim: string;
    /** Directory of the local issuer's signing key; null when the local issuer is off. */
    localIssuerKeyDir: string | null;
  };
  rateLimitPerMinute: number;
  maxHitsPerRequest: number;
  cohort: { minimumCellSize: number; memoryDays: number };
};

/** Parses the environment; throws with every problem listed when a variable is invalid. */
export function loadConfig(environment: Record<string, string | undefined> = process.env): AppConfig {
  const parsed = environmentSchema.safeParse(environment);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  const env = parsed.data;
  if (env.AUTH_ISSUER && !env.AUTH_JWKS_FILE && !env.AUTH_JWKS_URL) throw new Error('Invalid configuration: AUTH_ISSUER needs AUTH_JWKS_FILE or AUTH_JWKS_URL (the provider\'s signing keys)');
  if (env.AUTH_JWKS_FILE && env.AUTH_JWKS_URL) throw new Error('Invalid configuration: set one of AUTH_JWKS_FILE and AUTH_JWKS_URL, not both');
  if (!env.AUTH_ISSUER && (env.AUTH_JWKS_FILE || env.AUTH_JWKS_URL)) throw new Error('Invalid configuration: AUTH_JWKS_FILE/AUTH_JWKS_URL need AUTH_ISSUER');
  const embedded = !env.DATABASE_URL;
  const replicaUrls = (env.DATABASE_REPLICA_URLS ?? '').split(',').map((url) => url.trim()).filter((url) => url.length > 0);
  if (replicaUrls.length > 0 && embedded) throw new Error('Invalid configuration: DATABASE_REPLICA_URLS needs DATABASE_URL (replicas are of a PostgreSQL primary)');
  for (const url of replicaUrls) {
    if (!z.string().url().safeParse(url).success) throw new Error('Invalid configuration: DATABASE_REPLICA_URLS: each entry must be a postgresql:// URL');
  }
  const shardUrls = (env.SEARCH_SHARD_URLS ?? '').split(',').map((url) => url.trim()).filter((url) => url.length > 0);
  if (shardUrls.length > 0 && embedded) throw new Error('Invalid configuration: SEARCH_SHARD_URLS needs DATABASE_URL (shards are of a PostgreSQL primary)');
  for (const url of shardUrls) {
    if (!/^postgres(ql)?:\/\//.test(url) || !z.string().url().safeParse(url).success) throw new Error('Invalid configuration: SEARCH_SHARD_URLS: each entry must be a postgresql:// URL');
  }
  if (new Set(shardUrls).size !== shardUrls.length) throw new Error('Invalid configuration: SEARCH_SHARD_URLS names a shard twice');
  const localIssuer = env.AUTH_LOCAL_ISSUER === 'true' || (env.AUTH_LOCAL_ISSUER === 'auto' && embedded && !env.AUTH_ISSUER);
  return {
    host: env.HOST,
    port: env.PORT,
    database: env.DATABASE_URL ? { kind: 'postgres', url: env.DATABASE_URL } : { kind: 'pglite', dataDir: env.PGLITE_DATA_DIR },
    databasePoolSize: env.DATABASE_POOL_SIZE,
    databaseNamedStatements: env.DATABASE_NAMED_STATEMENTS,
    readReplicas: { urls: replicaUrls, maxLagMs: env.REPLICA_MAX_LAG_MS, pollIntervalMs: env.REPLICA_POLL_INTERVAL_MS },
    searchShards: { urls: shardUrls, replayIntervalMs: env.SEARCH_SHARD_REPLAY_INTERVAL_MS },
    migrationsDir: env.MIGRATIONS_DIR,
    seedDemoCohort: env.SEED_DEMO_COHORT,
    searchModelVersion: env.SEARCH_MODEL_VERSION,
    maxBodyBytes: env.MAX_BODY_BYTES,
    maxQueryDepth: env.MAX_QUERY_DEPTH,
    maxQueryComplexity: env.MAX_QUERY_COMPLEXITY,
    logLevel: env.LOG_LEVEL,
    modelPath: env.MODEL_PATH,
    reuseCalibrationPath: env.REUSE_CALIBRATION_PATH ?? env.MODEL_PATH.replace(/(\.onnx)?$/, '.reuse.json'),
    embeddingDevice: env.EMBEDDING_DEVICE,
    upload: { maxBytes: env.MAX_UPLOAD_BYTES, maxPixels: env.MAX_UPLOAD_PIXELS, tokenTtlSeconds: env.UPLOAD_TOKEN_TTL_SECONDS },
    auth: {
      oidc: env.AUTH_ISSUER
        ? { issuer: env.AUTH_ISSUER, audience: env.AUTH_AUDIENCE, jwks: env.AUTH_JWKS_FILE ? { kind: 'file', path: env.AUTH_JWKS_FILE } : { kind: 'url', url: env.AUTH_JWKS_URL! } }
        : null,
      audience: env.AUTH_AUDIENCE,
      roleClaim: env.AUTH_ROLE_CLAIM,
      systemClaim: env.AUTH_SYSTEM_CLAIM,
      localIssuerKeyDir: localIssuer ? (env.AUTH_LOCAL_KEY_DIR ?? path.join(repositoryRoot, '.data', 'auth')) : null,
    },
    rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
    maxHitsPerRequest: env.MAX_HITS_PER_REQUEST,
    cohort: { minimumCellSize: env.COHORT_MIN_CELL_SIZE, memoryDays: env.COHORT_MEMORY_DAYS },
  };
}
