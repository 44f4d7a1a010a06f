// createServer(config): the whole API as an importable value (tests start it on port 0). index.ts only listens.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import { AuditTrail, writeAuditEvents } from './audit/audit.service.js';
import { localKeySet, loadJwks, type AuthSettings } from './auth/authenticate.js';
import { DEMO_USERS, openLocalIssuer, type LocalIssuer } from './auth/local-issuer.js';
import { authorizePatientAccess } from './auth/policy.js';
import type { AppConfig } from './config.js';
import type { RequestContext } from './context.js';
import { openDatabase, type Database } from './db/database.js';
import { openReadRouting, type ReadRouting } from './db/read-routing.js';
import { Embedder } from './embedding/embedder.js';
import { AppError, createErrorFormatter, HTTP_STATUS_BY_CODE, toAppError } from './errors.js';
import { renderSyntheticPhotograph, seedDemoCohortIfEmpty } from './fixtures/seed.js';
import { complexityLimitPlugin, depthLimitRule, hitsLimitPlugin } from './graphql/limits.js';
import { auditedRoute } from './http/audited-route.js';
import { createAuthMiddleware, sendError, type RequestLocals } from './http/auth-middleware.js';
import { createRateLimiter } from './http/rate-limit.js';
import { createReadinessRoute } from './http/readiness.js';
import { buildApiSchema } from './graphql/schema.js';
import { createLogger, type Logger } from './logger.js';
import { assertShardsAttached, openShardSearch, startReplayLoop, type ReplayResult, type ShardSearch } from './search/shards.js';
import { registerShardedSearcher } from './search/similar-images.js';
import { countImagesMissingEmbedding } from './modules/embedding-version/reembed.service.js';
import { getPhotograph, requirePhotographSize } from './modules/photograph/photograph.service.js';
import { acceptUpload, renderUploadCrop } from './modules/upload/upload.service.js';
import { loadReuseCalibration } from './modules/similar-case/reuse-calibration.js';
import { createUploadStore, viewUploadsAs } from './modules/upload/upload.store.js';

export type RunningServer = {
  url: string;
  db: Database;
  close(): Promise<void>;
};

export type ApiServer = {
  db: Database;
  /** Where reads run: replicas when DATABASE_REPLICA_URLS is set, else the primary (db/read-routing.ts). */
  reads: ReadRouting;
  /** The sharded search and its background replay when SEARCH_SHARD_URLS is set (search/shards.ts), else null. */
  shards: { search: ShardSearch; replayNow(): Promise<ReplayResult> } | null;
  /** The demo's local token issuer, when on (config.auth.localIssuerKeyDir). */
  localIssuer: LocalIssuer | null;
  embedder: Embedder | null;
  logger: Logger;
  httpServer: http.Server;
  listen(port?: number, host?: string): Promise<RunningServer>;
};

/** Loads the ONNX model when its file exists; the API still serves stored-case search without one. */
async function loadEmbedder(config: AppConfig, logger: Logger): Promise<Embedder | null> {
  if (!fs.existsSync(config.modelPath)) {
    logger.warn('no embedding model found: search by a new photograph is unavailable', { modelPath: config.modelPath });
    return null;
  }
  const embedder = await Embedder.load({
    modelPath: config.modelPath,
    device: config.embeddingDevice,
    logger: { info: (message) => logger.info(message), warn: (message) => logger.warn(message) },
  });
  logger.info('embedding model loaded', { modelVersion: embedder.metadata.modelVersion, executionProvider: embedder.executionProvider, device: config.embeddingDevice });
  return embedder;
}

/** The issuers whose tokens are accepted: the configured OIDC provider and, where on, the local demo issuer. */
async function buildAuthSettings(config: AppConfig, logger: Logger): Promise<{ settings: AuthSettings; localIssuer: LocalIssuer | null }> {
  const settings: AuthSettings = { issuers: [], roleClaim: config.auth.roleClaim, systemClaim: config.auth.systemClaim };
  if (config.auth.oidc) {
    settings.issuers.push({ issuer: config.auth.oidc.issuer, audience: config.auth.oidc.audience, keys: loadJwks(config.auth.oidc.jwks) });
    logger.info('accepting tokens from the configured OpenID Connect provider', { issuer: config.auth.oidc.issuer, audience: config.auth.oidc.audience, jwks: config.auth.oidc.jwks.kind });
  }
  let localIssuer: LocalIssuer | null = null;
  if (config.auth.localIssuerKeyDir) {
    localIssuer = await openLocalIssuer(config.auth.localIssuerKeyDir, { audience: config.auth.audience, roleClaim: config.auth.roleClaim, systemClaim: config.auth.systemClaim });
    settings.issuers.push({ issuer: localIssuer.issuer, audience: config.auth.audience, keys: localKeySet(localIssuer.publicJwk) });
    logger.warn('the local demo issuer is on: anyone who can reach POST /auth/local/token can sign in as a demo user (never expose this API)', {
      users: DEMO_USERS.map((user) => user.subject),
    });
  }
  if (settings.issuers.length === 0) logger.info('no token issuer configured: only API keys are accepted');
  return { settings, localIssuer };
}

export type ServerOptions = {
  database?: Database;
  logger?: Logger;
  embedder?: Embedder | null;
  /**
   * bench/auth-overhead.mjs only: no authentication (every request acts as an admin) and no audit rows, to
   * measure what those cost side by side. Not reachable through configuration or the environment.
   */
  insecureBaselineForBenchmarks?: boolean;
};

const BENCHMARK_VIEWER = { subject: 'benchmark-baseline', role: 'admin', keyId: null, identifierSystem: null } as const;

/**
 * With SEARCH_SHARD_URLS: checks that the primary's search projection is attached to exactly those shards (else
 * start-up fails, saying to run `npm run shards -- attach`), opens their pools, registers the sharded search for
 * the primary's Prisma client and starts the background replay of the outbox.
 */
async function openShards(config: AppConfig, db: Database, logger: Logger): Promise<{ search: ShardSearch; replay: ReturnType<typeof startReplayLoop> } | null> {
  if (config.searchShards.urls.length === 0) return null;
  const { generation } = await assertShardsAttached(db.sql, config.searchShards.urls);
  const search = openShardSearch({ shardUrls: config.searchShards.urls, generation, poolSize: config.databasePoolSize, logger });
  registerShardedSearcher(db.prisma, search);
  const replay = startReplayLoop({ sql: db.sql, intervalMs: config.searchShards.replayIntervalMs, logger });
  logger.info('similar-case search fans out to the shards', { shards: search.shards, generation });
  return { search, replay };
}

export async function createServer(config: AppConfig, options: ServerOptions = {}): Promise<ApiServer> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const db = options.database ?? (await openDatabase(config));
  const embedder = options.embedder !== undefined ? options.embedder : await loadEmbedder(config, logger);
  const uploads = createUploadStore({ sql: db.sql, ttlMs: config.upload.tokenTtlSeconds * 1000 });
  const rateLimiter = createRateLimiter({ db, requestsPerMinute: config.rateLimitPerMinute });
  const shardSearch = await openShards(config, db, logger);
  const reads = await openReadRouting({
    primary: db, replicaUrls: config.readReplicas.urls, maxLagMs: config.readReplicas.maxLagMs, pollIntervalMs: config.readReplicas.pollIntervalMs, logger,
    onClient: (prisma) => shardSearch && registerShardedSearcher(prisma, shardSearch.search),
  });
  const reuseCalibration = loadReuseCalibration(config.reuseCalibrationPath);
  if (reuseCalibration.calibration === null) logger.warn('grade suggestions will be uncalibrated', { problem: reuseCalibration.problem });
  else if (embedder && reuseCalibration.calibration.modelVersion !== embedder.metadata.modelVersion) {
    logger.warn('the reuse calibration is for another model version: grade suggestions will be uncalibrated', { calibrated: reuseCalibration.calibration.modelVersion, loaded: embedder.metadata.modelVersion });
  }
  if (config.seedDemoCohort) {
    const seeded = await seedDemoCohortIfEmpty(db, {
      renderImage: renderSyntheticPhotograph,
      embedder,
      onPatient: (done, total) => {
        if (done % 20 === 0) logger.info('seeding the synthetic demo cohort', { done, total });
      },
    });
    if (seeded) logger.info('seeded the demo cohort into an empty database', seeded);
  }
  if (embedder) {
    // A new model file over an existing database (a model upgrade): say so at start, not at the first search.
    const missing = await countImagesMissingEmbedding(db.prisma, embedder.metadata.modelVersion);
    if (missing > 0) {
      logger.warn('stored photographs have no embedding of the loaded model: searches from them fail with EMBEDDING_UNAVAILABLE until `npm run reembed`', {
        modelVersion: embedder.metadata.modelVersion,
        missing,
      });
    }
  }
  const schema = await buildApiSchema();
  const { settings: authSettings, localIssuer } = await buildAuthSettings(config, logger);
  const app = express();
  const httpServer = http.createServer(app);

  const apollo = new ApolloServer<RequestContext>({
    schema,
    formatError: createErrorFormatter((error) => logger.error('unexpected error in a GraphQL request', { error: String((error as Error)?.stack ?? error) })),
    validationRules: [depthLimitRule(config.maxQueryDepth)],
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // No response here may be cached (patients' records): 'private, no-store' is set on every one below. Apollo's
      // cache-control plugin, on by default, would compute a cache policy for every field resolved only to send
      // 'no-store', and its per-field hook wraps every resolver (bench/README.md, "One statement for a page of cases").
      ApolloServerPluginCacheControlDisabled(),
      complexityLimitPlugin(schema, config.maxQueryComplexity),
      hitsLimitPlugin(schema, config.maxHitsPerRequest),
      {
        // Writes the request's audit trail before the response leaves; a response whose trail cannot be written
        // is replaced by AUDIT_UNAVAILABLE (a read is never answered unrecorded). Requests that no resolver
        // audited but that failed (parse, validation, limits) are recorded by their error codes.
        async requestDidStart() {
          return {
            async willSendResponse({ contextValue, response, request, operation }) {
              response.http.headers.set('cache-control', 'private, no-store');
              // Read-your-writes: after a mutation, this credential reads from the primary until a replica has
              // replayed it. Recorded before the response leaves, so the client's next request already knows.
              if (operation?.operation === 'mutation') {
                await reads.recordWrite(contextValue.viewer.subject).catch((error) => logger.warn('could not read the WAL position after a write', { error: String(error) }));
              }
              if (options.insecureBaselineForBenchmarks) return;
              const trail = contextValue.audit;
              const body = response.body;
              if (trail.entries.length === 0 && body.kind === 'single' && body.singleResult.errors?.length) {
                const codes = [...new Set(body.singleResult.errors.map((error) => String(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR')))];
                for (const code of codes) trail.add({ operation: 'graphql', outcome: code, details: { operationName: request.operationName ?? null } });
              }
              // No answer because the database is unreachable: 503, so a balancer or client retries elsewhere or later.
              if (body.kind === 'single' && body.singleResult.data == null && body.singleResult.errors?.some((error) => error.extensions?.code === 'SERVICE_UNAVAILABLE')) {
                response.http.status = HTTP_STATUS_BY_CODE.SERVICE_UNAVAILABLE;
              }
              const { viewer } = contextValue;
              try {
                await writeAuditEvents(db.sql, { requestId: contextValue.requestId, subject: viewer.subject, role: viewer.role, keyId: viewer.keyId }, trail.entries);
              } catch (error) {
                logger.error('could not write the audit log; the response was withheld', { requestId: contextValue.requestId, error: String((error as Error)?.stack ?? error) });
                response.body = { kind: 'single', singleResult: { errors: [{ message: 'The access could not be recorded in the audit log, so nothing is returned; try again', extensions: { code: 'AUDIT_UNAVAILABLE', retryable: true } }] } };
                response.http.status = HTTP_STATUS_BY_CODE.AUDIT_UNAVAILABLE;
              }
            },
          };
        },
      },
    ],
    // Compact JSON: Apollo's default indents every response by two spaces, bytes each client receives and parses.
    stringifyResult: (value) => JSON.stringify(value),
    // CSRF prevention stays on (Apollo's default): a POST must be JSON or carry a preflight header.
    csrfPrevention: true,
    introspection: true,
  });
  await apollo.start();

  app.disable('x-powered-by');
  // One log line per request: id (also sent back as x-request-id), method, route, status, duration, the
  // viewer's role and subject; headers, tokens and identifiers are redacted (logger.ts).
  app.use(
    pinoHttp({
      logger: logger.pino,
      genReqId: (request, response) => {
        const requestId = randomUUID();
        (response.locals as RequestLocals).requestId = requestId;
        response.setHeader('x-request-id', requestId);
        return requestId;
      },
      customLogLevel: (_request, response, error) => (error || response.statusCode >= 500 ? 'error' : 'info'),
      customSuccessMessage: () => 'request',
      customErrorMessage: () => 'request failed',
      customProps: (_request, response) => {
        const locals = response.locals as RequestLocals;
        const outcomes = [...new Set(locals.audit?.entries.map((entry) => entry.outcome) ?? [])];
        const outcome = locals.outcome ?? (outcomes.length === 0 ? 'OK' : outcomes.join(','));
        return locals.viewer ? { outcome, role: locals.viewer.role, subject: locals.viewer.subject } : { outcome };
      },
      serializers: {
        req: (request: { id: string; method: string; url: string }) => ({ id: request.id, method: request.method, path: String(request.url).split('?')[0] }),
        res: (response: { statusCode: number }) => ({ status: response.statusCode }),
      },
      wrapSerializers: false,
      quietReqLogger: true,
    }),
  );
  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok', database: db.kind });
  });
  app.get('/readyz', createReadinessRoute({ db, embedder, migrationsDir: config.migrationsDir, rateLimiter: rateLimiter.leases, shardSearch: shardSearch?.search ?? null }));
  if (localIssuer) {
    // The embedded demo's sign-in: a token for one of the demo users. Exists only while the local issuer is on.
    app.get('/auth/local/users', (_request, response) => {
      response.json({ issuer: localIssuer.issuer, users: DEMO_USERS.map(({ subject, name, role }) => ({ subject, name, role })) });
    });
    app.post('/auth/local/token', express.json({ limit: 4096 }), async (request, response, next) => {
      const locals = response.locals as RequestLocals;
      try {
        const subject = (request.body as { subject?: unknown } | undefined)?.subject;
        const user = DEMO_USERS.find((candidate) => candidate.subject === subject);
        if (!user) throw new AppError('BAD_USER_INPUT', `subject must be one of ${DEMO_USERS.map((candidate) => candidate.subject).join(', ')}`, { field: 'subject' });
        const ttlSeconds = 8 * 3600;
        const token = await localIssuer.sign(user, { audience: config.auth.audience, roleClaim: config.auth.roleClaim, systemClaim: config.auth.systemClaim, ttlSeconds });
        await writeAuditEvents(db.sql, { requestId: locals.requestId, subject: user.subject, role: user.role, keyId: null }, [{ operation: 'sign-in', outcome: 'OK', details: { issuer: localIssuer.issuer } }]);
        response.status(201).json({ token, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString(), user: { subject: user.subject, name: user.name, role: user.role } });
      } catch (error) {
        if (error instanceof AppError) return sendError(response, error);
        next(error);
      }
    });
  }
  const requireViewer: express.RequestHandler = options.insecureBaselineForBenchmarks
    ? (_request, response, next) => {
        (response.locals as RequestLocals).viewer = { ...BENCHMARK_VIEWER };
        next();
      }
    : createAuthMiddleware({ db, settings: authSettings, logger, limiter: rateLimiter.limiter, requestsPerMinute: config.rateLimitPerMinute });
  app.use(
    '/graphql',
    requireViewer,
    express.json({ limit: config.maxBodyBytes }),
    expressMiddleware(apollo, {
      context: async ({ res }): Promise<RequestContext> => {
        const locals = res.locals as RequestLocals;
        const viewer = locals.viewer!;
        locals.audit = new AuditTrail();
        return {
          requestId: locals.requestId,
          viewer,
          audit: locals.audit,
          db,
          read: (work) => reads.read(viewer.subject, work),
          logger,
          searchModelVersion: config.searchModelVersion,
          embedder,
          uploads: viewUploadsAs(uploads, viewer.subject),
          cohortSettings: config.cohort,
          reuseCalibration,
        };
      },
    }),
  );
  // A new photograph as the raw body (not multipart: keeps GraphQL JSON-only with CSRF prevention, and the
  // non-safelisted image/* content type makes browsers preflight). Answers a short-lived token for similarCases.
  app.post(
    '/uploads',
    requireViewer,
    express.raw({ type: () => true, limit: config.upload.maxBytes }),
    auditedRoute({
      db,
      logger,
      operation: 'upload',
      describe: (request) => ({ bytes: Buffer.isBuffer(request.body) ? request.body.length : 0 }),
      handle: async (request, viewer) => {
        const upload = await acceptUpload({
          bytes: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
          contentType: request.headers['content-type'],
          embedder,
          store: viewUploadsAs(uploads, viewer.subject),
          maxBytes: config.upload.maxBytes,
          maxPixels: config.upload.maxPixels,
        });
        return {
          // The photograph is not stored until a case is saved; the row records that it was received, and its hash.
          audit: { details: { contentHash: upload.contentHash, modelVersion: upload.modelVersion } },
          send: (response) =>
            response.status(201).json({
              uploadToken: upload.token,
              expiresAt: upload.expiresAt.toISOString(),
              modelVersion: upload.modelVersion,
              contentHash: upload.contentHash,
              image: { width: upload.width, height: upload.height },
              attention: { width: upload.attention.width, height: upload.attention.height, values: Array.from(upload.attention.values) },
            }),
        };
      },
    }),
  );
  // An upload's model crop (PNG, the square its heat map covers), to its uploader only; nothing is stored.
  app.get(
    '/uploads/:token/crop',
    requireViewer,
    auditedRoute({
      db,
      logger,
      operation: 'upload',
      describe: () => ({ view: 'crop' }),
      handle: async (request, viewer) => {
        const crop = await renderUploadCrop({ store: viewUploadsAs(uploads, viewer.subject), token: String(request.params.token) });
        return {
          audit: { details: { contentHash: crop.contentHash } },
          send: (response) => {
            response.setHeader('Cache-Control', 'private, no-store');
            response.type('image/png').send(crop.bytes);
          },
        };
      },
    }),
  );
  // A stored photograph for display (?size=full|thumbnail|crop), under the same policy (read-case, and a bound
  // credential's patient check) and audit as the case itself. Never cached by a shared cache.
  app.get(
    '/photographs/:id',
    requireViewer,
    auditedRoute({
      db,
      logger,
      operation: 'read-case',
      describe: (request) => ({ photograph: String(request.params.id), size: typeof request.query.size === 'string' ? request.query.size : null }),
      handle: async (request, viewer) => {
        const photograph = await getPhotograph({ prisma: db.prisma, imageId: String(request.params.id), size: requirePhotographSize(request.query.size) });
        authorizePatientAccess(viewer, photograph.case.patient);
        return {
          audit: { patientIds: [photograph.case.patient.id], imageIds: [photograph.case.id] },
          send: (response) => {
            response.setHeader('Cache-Control', 'private, no-store');
            response.type(photograph.mimeType).send(photograph.bytes);
          },
        };
      },
    }),
  );
  // Body-parser failures (too large, malformed JSON) answer in GraphQL's error shape with a stable code.
  const handleBodyErrors: ErrorRequestHandler = (error, _request, response, next) => {
    if (response.headersSent) return next(error);
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') {
      response.status(HTTP_STATUS_BY_CODE.PAYLOAD_TOO_LARGE).json({
        errors: [{ message: `Request body exceeds the limit of ${(error as { limit?: number }).limit ?? config.maxBodyBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }],
      });
      return;
    }
    if (type === 'entity.parse.failed') {
      response.status(400).json({ errors: [{ message: 'Request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
      return;
    }
    const known = toAppError(error);
    if (known) return sendError(response, known);
    logger.error('unexpected HTTP error', { error: String((error as Error)?.stack ?? error) });
    response.status(500).json({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  };
  app.use(handleBodyErrors);

  return {
    db,
    reads,
    shards: shardSearch && { search: shardSearch.search, replayNow: shardSearch.replay.replayNow },
    localIssuer,
    embedder,
    logger,
    httpServer,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          const address = httpServer.address() as AddressInfo;
          resolve({
            url: `http://${host}:${address.port}/graphql`,
            db,
            async close() {
              await apollo.stop();
              await rateLimiter.close();
              await reads.close();
              if (shardSearch) {
                await shardSearch.replay.stop();
                await shardSearch.search.close();
              }
              await db.close();
              await embedder?.release();
            },
          });
        });
      });
    },
  };
}
