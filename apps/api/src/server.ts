// createServer(config): the whole API as an importable value (tests start it on port 0). index.ts only listens.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler } from 'express';
import type { AppConfig } from './config.js';
import type { RequestContext } from './context.js';
import { openDatabase, type Database } from './db/database.js';
import { Embedder } from './embedding/embedder.js';
import { AppError, createErrorFormatter, HTTP_STATUS_BY_CODE } from './errors.js';
import { renderSyntheticPhotograph, seedDemoCohortIfEmpty } from './fixtures/seed.js';
import { complexityLimitPlugin, depthLimitRule } from './graphql/limits.js';
import { buildApiSchema } from './graphql/schema.js';
import { createLogger, type Logger } from './logger.js';
import { countImagesMissingEmbedding } from './modules/embedding-version/reembed.service.js';
import { acceptUpload } from './modules/upload/upload.service.js';
import { createUploadStore } from './modules/upload/upload.store.js';

export type RunningServer = {
  url: string;
  db: Database;
  close(): Promise<void>;
};

export type ApiServer = {
  db: Database;
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

export async function createServer(config: AppConfig, options: { database?: Database; logger?: Logger; embedder?: Embedder | null } = {}): Promise<ApiServer> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const db = options.database ?? (await openDatabase(config));
  const embedder = options.embedder !== undefined ? options.embedder : await loadEmbedder(config, logger);
  const uploads = createUploadStore({ ttlMs: config.upload.tokenTtlSeconds * 1000 });
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
  const app = express();
  const httpServer = http.createServer(app);

  const apollo = new ApolloServer<RequestContext>({
    schema,
    formatError: createErrorFormatter((error) => logger.error('unexpected error in a GraphQL request', { error: String((error as Error)?.stack ?? error) })),
    validationRules: [depthLimitRule(config.maxQueryDepth)],
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), complexityLimitPlugin(schema, config.maxQueryComplexity)],
    // CSRF prevention stays on (Apollo's default): a POST must be JSON or carry a preflight header.
    csrfPrevention: true,
    introspection: true,
  });
  await apollo.start();

  app.disable('x-powered-by');
  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok', database: db.kind });
  });
  app.use(
    '/graphql',
    express.json({ limit: config.maxBodyBytes }),
    expressMiddleware(apollo, {
      context: async (): Promise<RequestContext> => ({
        requestId: randomUUID(),
        viewer: { role: 'CLINICIAN', subject: 'development' },
        db,
        logger,
        searchModelVersion: config.searchModelVersion,
        embedder,
        uploads,
      }),
    }),
  );
  // A new photograph as the raw body (not multipart: keeps GraphQL JSON-only with CSRF prevention, and the
  // non-safelisted image/* content type makes browsers preflight). Answers a short-lived token for similarCases.
  app.post(
    '/uploads',
    express.raw({ type: () => true, limit: config.upload.maxBytes }),
    async (request, response, next) => {
      try {
        const upload = await acceptUpload({
          bytes: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
          contentType: request.headers['content-type'],
          embedder,
          store: uploads,
          maxBytes: config.upload.maxBytes,
          maxPixels: config.upload.maxPixels,
        });
        response.status(201).json({
          uploadToken: upload.token,
          expiresAt: upload.expiresAt.toISOString(),
          modelVersion: upload.modelVersion,
          contentHash: upload.contentHash,
          image: { width: upload.width, height: upload.height },
          attention: { width: upload.attention.width, height: upload.attention.height, values: Array.from(upload.attention.values) },
        });
      } catch (error) {
        if (error instanceof AppError) {
          response.status(HTTP_STATUS_BY_CODE[error.code]).json({ errors: [{ message: error.message, extensions: { code: error.code, ...error.details } }] });
          return;
        }
        next(error);
      }
    },
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
    logger.error('unexpected HTTP error', { error: String((error as Error)?.stack ?? error) });
    response.status(500).json({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  };
  app.use(handleBodyErrors);

  return {
    db,
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
              await db.close();
              await embedder?.release();
            },
          });
        });
      });
    },
  };
}
