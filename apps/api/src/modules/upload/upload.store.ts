// Short-lived upload tokens: an uploaded photograph is preprocessed and embedded once, and the token lets the
// client search it again with other filters (or save it as a case) without sending it twice. The upload lives in
// the database (table `upload`, migration 0008), not in one process's memory, so any API process on the same
// database answers a token another one issued (issue 15: stateless replicas). The cases' tables are untouched
// until a case is saved. Only the token's SHA-256 is stored, so a database dump holds no usable token.
import { createHash, randomBytes } from 'node:crypto';
import type { SqlRunner } from '../../db/sql-runner.js';
import type { FeatureMap } from '../../embedding/embedder.js';
import { decodeAttentionMap, decodeFloat32, encodeAttentionMap, type AttentionMap } from '../../search/similar-images.js';

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
  owner: string;
};

/** What a search needs of an upload: everything but the photograph's bytes (read only when a case is saved). */
export type UploadSummary = Omit<StoredUpload, 'bytes'>;

export type NewUpload = Omit<StoredUpload, 'token' | 'expiresAt' | 'owner'>;

export type UploadStore = {
  put(upload: NewUpload & { owner: string }): Promise<StoredUpload>;
  /** The upload, when the token is known, unexpired and the owner's. */
  get(token: string, owner: string): Promise<UploadSummary | undefined>;
  getWithBytes(token: string, owner: string): Promise<StoredUpload | undefined>;
};

/** The store as one credential sees it: what it puts is stamped with its subject, another's token reads as unknown. */
export type OwnUploads = {
  put(upload: NewUpload): Promise<StoredUpload>;
  get(token: string): Promise<UploadSummary | undefined>;
  getWithBytes(token: string): Promise<StoredUpload | undefined>;
};

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

const toBuffer = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

type UploadRow = {
  owner: string;
  content_hash: string;
  mime_type: string;
  width: number;
  height: number;
  model_version: string;
  embedding: Uint8Array;
  attention_width: number;
  attention_height: number;
  attention: Uint8Array;
  expires_at: Date | string;
  feature_map: Uint8Array | null;
  feature_map_channels: number | null;
  feature_map_height: number | null;
  feature_map_width: number | null;
  fundus_share: Uint8Array | null;
  bytes?: Uint8Array;
};

const SUMMARY_COLUMNS = 'owner, content_hash, mime_type, width, height, model_version, embedding, attention_width, attention_height, attention, expires_at, feature_map, feature_map_channels, feature_map_height, feature_map_width, fundus_share';

/**
 * Tokens expire after `ttlMs` by the database's clock (one clock for every process). Each upload deletes the
 * expired rows of every owner and the owner's uploads beyond the newest `maxPerOwner`, in the statement that
 * inserts it, so the table stays bounded without a sweeper process.
 */
export function createUploadStore({ sql, ttlMs, maxPerOwner = 50 }: { sql: SqlRunner; ttlMs: number; maxPerOwner?: number }): UploadStore {
  const read = async (token: string, owner: string, withBytes: boolean): Promise<StoredUpload | undefined> => {
    if (typeof token !== 'string' || token.length === 0) return undefined;
    const [row] = await sql.query<UploadRow>(
      `SELECT ${SUMMARY_COLUMNS}${withBytes ? ', bytes' : ''} FROM upload WHERE token_hash = $1 AND owner = $2 AND expires_at > now()`,
      [hashToken(token), owner],
    );
    if (!row) return undefined;
    return {
      token,
      owner: row.owner,
      expiresAt: new Date(row.expires_at),
      contentHash: row.content_hash.trim(),
      mimeType: row.mime_type,
      width: row.width,
      height: row.height,
      modelVersion: row.model_version,
      embedding: decodeFloat32(row.embedding),
      attention: decodeAttentionMap(row.attention, row.attention_width, row.attention_height),
      bytes: row.bytes ? toBuffer(row.bytes) : Buffer.alloc(0),
      ...(row.feature_map && row.fundus_share
        ? {
            featureMap: { channels: row.feature_map_channels!, height: row.feature_map_height!, width: row.feature_map_width!, values: decodeFloat32(row.feature_map) },
            fundusShare: decodeFloat32(row.fundus_share),
          }
        : {}),
    };
  };
  return {
    async put(upload) {
      const token = `upl_${randomBytes(18).toString('base64url')}`;
      // Bytes travel as base64 and are decoded by the database (PGlite would build a hex string in JavaScript).
      // The deletes see the snapshot before the insert, so the owner keeps maxPerOwner - 1 older uploads.
      const [row] = await sql.query<{ expires_at: Date | string }>(
        `WITH expired AS (DELETE FROM upload WHERE expires_at <= now()),
           overflow AS (
             DELETE FROM upload WHERE token_hash IN (
               SELECT token_hash FROM upload WHERE owner = $2 AND expires_at > now() ORDER BY created_at DESC OFFSET $13))
         INSERT INTO upload (token_hash, owner, content_hash, mime_type, width, height, model_version, embedding,
                             attention_width, attention_height, attention, bytes, expires_at,
                             feature_map, feature_map_channels, feature_map_height, feature_map_width, fundus_share)
         VALUES ($1, $2, $3, $4, $5, $6, $7, decode($8, 'base64'), $9, $10, decode($11, 'base64'), decode($12, 'base64'),
                 now() + make_interval(secs => $14), decode($15, 'base64'), $16, $17, $18, decode($19, 'base64'))
         RETURNING expires_at`,
        [
          hashToken(token),
          upload.owner,
          upload.contentHash,
          upload.mimeType,
          upload.width,
          upload.height,
          upload.modelVersion,
          toBuffer(encodeAttentionMap(Float32Array.from(upload.embedding))).toString('base64'),
          upload.attention.width,
          upload.attention.height,
          toBuffer(encodeAttentionMap(upload.attention.values)).toString('base64'),
          upload.bytes.toString('base64'),
          Math.max(0, maxPerOwner - 1),
          ttlMs / 1000,
          upload.featureMap ? toBuffer(encodeAttentionMap(upload.featureMap.values)).toString('base64') : null,
          upload.featureMap?.channels ?? null,
          upload.featureMap?.height ?? null,
          upload.featureMap?.width ?? null,
          upload.fundusShare ? toBuffer(encodeAttentionMap(upload.fundusShare)).toString('base64') : null,
        ],
      );
      return { ...upload, token, expiresAt: new Date(row!.expires_at) };
    },
    async get(token, owner) {
      const upload = await read(token, owner, false);
      if (!upload) return undefined;
      const { bytes: _bytes, ...summary } = upload;
      return summary;
    },
    getWithBytes: (token, owner) => read(token, owner, true),
  };
}

/**
 * The store as one credential sees it: uploads it puts are stamped with its subject, and another subject's
 * token reads as unknown (NOT_FOUND upstream), so a leaked token is no way into someone else's photograph.
 */
export function viewUploadsAs(store: UploadStore, owner: string): OwnUploads {
  return {
    put: (upload) => store.put({ ...upload, owner }),
    get: (token) => store.get(token, owner),
    getWithBytes: (token) => store.getWithBytes(token, owner),
  };
}
