// What every resolver receives. The viewer was authenticated before the request reached GraphQL (server.ts); the
// audit trail collects what the request read or changed and is written before the response leaves.
import type { AuditTrail } from './audit/audit.service.js';
import type { Viewer } from './auth/policy.js';
import type { Database } from './db/database.js';
import type { Embedder } from './embedding/embedder.js';
import type { PrismaClient } from './generated/prisma/client.js';
import type { Logger } from './logger.js';
import type { LoadedReuseCalibration } from './modules/similar-case/reuse-calibration.js';
import type { OwnUploads } from './modules/upload/upload.store.js';

export type RequestContext = {
  requestId: string;
  viewer: Viewer;
  audit: AuditTrail;
  db: Database;
  /** Reads that may run on a streaming replica (searches, case and patient reads), where this viewer's own writes
   *  are visible (db/read-routing.ts); the primary without replicas. Writes always use `db`. */
  read<T>(work: (prisma: PrismaClient) => Promise<T>): Promise<T>;
  logger: Logger;
  /** Pinned model version for searches, when configured; else the newest in the database. */
  searchModelVersion: string | undefined;
  /** The ONNX embedder, or null when no model file is present (upload search then answers MODEL_UNAVAILABLE). */
  embedder: Embedder | null;
  /** The viewer's own uploads (POST /uploads tokens), in the database. */
  uploads: OwnUploads;
  /** Disclosure control settings of cohort statistics (config.cohort). */
  cohortSettings: { minimumCellSize: number; memoryDays: number };
  /** The reuse step's fitted calibration (config.reuseCalibrationPath), or why there is none. */
  reuseCalibration: LoadedReuseCalibration;
};
