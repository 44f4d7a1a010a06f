// Short-lived upload tokens, in memory: an uploaded photograph is preprocessed and embedded once, and the token
// lets the client search it again with other filters (or save it as a case) without sending it twice. Nothing
// reaches the database until a case is saved. Per process: behind several API instances the store would move
// to a shared cache (or sticky sessions); one instance is the deployment today.
import { randomBytes } from 'node:crypto';
import type { FeatureMap } from '../../embedding/embedder.js';
import type { AttentionMap } from '../../search/similar-images.js';

export type StoredUpload = {
  token: string;
  expiresAt: Date;
  bytes: Buffer;
  contentHash: string;
  mimeType: string;
  width: number;
  height: number;
  modelVersion: string;
  embedding: Float32Array;
  attention: AttentionMap;
  /** The map GeM pools and the fundus share of its cells, for search by region and explanation (models with them). */
  featureMap?: FeatureMap;
  fundusShare?: Float32Array;
  /** The subject that uploaded it (viewUploadsAs); a token is usable by its uploader only. */
  owner?: string;
};

export type UploadStore = {
  put(upload: Omit<StoredUpload, 'token' | 'expiresAt'>): StoredUpload;
  get(token: string): StoredUpload | undefined;
  size(): number;
};

/** Expired tokens are refused and dropped; past maxEntries the oldest upload is evicted first. */
export function createUploadStore({ ttlMs, maxEntries = 200, now = () => Date.now() }: { ttlMs: number; maxEntries?: number; now?: () => number }): UploadStore {
  const uploads = new Map<string, StoredUpload>();
  const sweep = () => {
    for (const [token, upload] of uploads) if (upload.expiresAt.getTime() <= now()) uploads.delete(token);
  };
  return {
    put(upload) {
      sweep();
      while (uploads.size >= maxEntries) uploads.delete(uploads.keys().next().value!);
      const stored = { ...upload, token: `upl_${randomBytes(18).toString('base64url')}`, expiresAt: new Date(now() + ttlMs) };
      uploads.set(stored.token, stored);
      return stored;
    },
    get(token) {
      const upload = uploads.get(token);
      if (!upload) return undefined;
      if (upload.expiresAt.getTime() <= now()) {
        uploads.delete(token);
        return undefined;
      }
      return upload;
    },
    size: () => uploads.size,
  };
}

/**
 * The store as one credential sees it: uploads it puts are stamped with its subject, and another subject's
 * token reads as unknown (NOT_FOUND upstream), so a leaked token is no way into someone else's photograph.
 */
export function viewUploadsAs(store: UploadStore, owner: string): UploadStore {
  return {
    put: (upload) => store.put({ ...upload, owner }),
    get(token) {
      const upload = store.get(token);
      return upload && upload.owner === owner ? upload : undefined;
    },
    size: () => store.size(),
  };
}
