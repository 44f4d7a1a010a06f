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
  /** auto: CUDA when onnxruntime-node has its provider and a GPU answers, else CPU (logged at start). */
  EMBEDDING_DEVICE: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(20 * 1024 * 1024),
  MAX_UPLOAD_PIXELS: z.coerce.number().int().positive().default(40_000_000),
  UPLOAD_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(600),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

export type AppConfig = {
  host: string;
  port: number;
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string };
  migrationsDir: string;
  seedDemoCohort: boolean;
  searchModelVersion: string | undefined;
  maxBodyBytes: number;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  modelPath: string;
  embeddingDevice: 'auto' | 'cpu' | 'cuda';
  upload: { maxBytes: number; maxPixels: number; tokenTtlSeconds: number };
};

/** Parses the environment; throws with every problem listed when a variable is invalid. */
export function loadConfig(environment: Record<string, string | undefined> = process.env): AppConfig {
  const parsed = environmentSchema.safeParse(environment);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  const env = parsed.data;
  return {
    host: env.HOST,
    port: env.PORT,
    database: env.DATABASE_URL ? { kind: 'postgres', url: env.DATABASE_URL } : { kind: 'pglite', dataDir: env.PGLITE_DATA_DIR },
    migrationsDir: env.MIGRATIONS_DIR,
    seedDemoCohort: env.SEED_DEMO_COHORT,
    searchModelVersion: env.SEARCH_MODEL_VERSION,
    maxBodyBytes: env.MAX_BODY_BYTES,
    maxQueryDepth: env.MAX_QUERY_DEPTH,
    maxQueryComplexity: env.MAX_QUERY_COMPLEXITY,
    logLevel: env.LOG_LEVEL,
    modelPath: env.MODEL_PATH,
    embeddingDevice: env.EMBEDDING_DEVICE,
    upload: { maxBytes: env.MAX_UPLOAD_BYTES, maxPixels: env.MAX_UPLOAD_PIXELS, tokenTtlSeconds: env.UPLOAD_TOKEN_TTL_SECONDS },
  };
}
