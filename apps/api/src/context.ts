// What every resolver receives. The viewer is the seam for roles (clinician, researcher, EHR system) and
// de-identification: today every request acts as a clinician because the API has no authentication yet.
import type { Database } from './db/database.js';
import type { Embedder } from './embedding/embedder.js';
import type { Logger } from './logger.js';
import type { UploadStore } from './modules/upload/upload.store.js';

export type ViewerRole = 'CLINICIAN' | 'RESEARCHER' | 'EHR_SYSTEM';
export type Viewer = { role: ViewerRole; subject: string };

export type RequestContext = {
  requestId: string;
  viewer: Viewer;
  db: Database;
  logger: Logger;
  /** Pinned model version for searches, when configured; else the newest in the database. */
  searchModelVersion: string | undefined;
  /** The ONNX embedder, or null when no model file is present (upload search then answers MODEL_UNAVAILABLE). */
  embedder: Embedder | null;
  uploads: UploadStore;
};
