// Accepting a new photograph: size and type checks, the product's preprocessing and the ONNX embedder, then a
// short-lived token. A rejected image gets BAD_USER_INPUT with the preprocessing reason; nothing is stored.
import { AppError, badInput, notFound } from '../../errors.js';
import { Embedder } from '../../embedding/embedder.js';
import { PreprocessError } from '../../embedding/preprocess.js';
import { sha256Hex } from '../common/content-hash.js';
import { renderModelCrop } from '../photograph/photograph.service.js';
import type { OwnUploads, StoredUpload } from './upload.store.js';

/**
 * Media types accepted for upload. None is CORS-safelisted, so a browser must preflight: CSRF-safe. The declared
 * type only gates the route: what the bytes are is decided by preprocessing, the same for uploads and ingestion
 * (an SVG sent as image/png is VECTOR_IMAGE, an animated GIF MULTI_FRAME_IMAGE on both paths), so every raster
 * format preprocessing accepts is listed here too.
 */
const ACCEPTED_TYPES = new Set(['image/jpeg', 'image/png', 'image/tiff', 'image/webp', 'image/gif', 'image/avif', 'application/octet-stream']);

export function requireEmbedder(embedder: Embedder | null): Embedder {
  if (!embedder) throw new AppError('MODEL_UNAVAILABLE', 'No embedding model is loaded (MODEL_PATH not found); search by a new photograph is unavailable');
  return embedder;
}

export async function acceptUpload({
  bytes,
  contentType,
  embedder,
  store,
  maxBytes,
  maxPixels,
}: {
  bytes: Buffer;
  contentType: string | undefined;
  embedder: Embedder | null;
  store: OwnUploads;
  maxBytes: number;
  maxPixels: number;
}): Promise<StoredUpload> {
  const mimeType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (!ACCEPTED_TYPES.has(mimeType)) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Upload the photograph as the raw request body with Content-Type image/jpeg, image/png, image/tiff, image/webp, image/gif or image/avif (got "${mimeType || 'none'}")`);
  }
  if (bytes.length > maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `The photograph is ${bytes.length} bytes; the limit is ${maxBytes}`);
  const model = requireEmbedder(embedder);
  let embedded: Awaited<ReturnType<Embedder['embedImage']>>;
  try {
    embedded = await model.embedImage(bytes, { maxInputPixels: maxPixels });
  } catch (error) {
    if (error instanceof PreprocessError) throw badInput(`The photograph was rejected: ${error.message}`, { reason: error.code });
    throw error;
  }
  return store.put({
    bytes,
    contentHash: sha256Hex(bytes),
    mimeType,
    width: embedded.preprocessed.original.width,
    height: embedded.preprocessed.original.height,
    modelVersion: model.metadata.modelVersion,
    embedding: embedded.embedding,
    attention: embedded.attention,
    ...(embedded.featureMap && embedded.fundusShare ? { featureMap: embedded.featureMap, fundusShare: embedded.fundusShare } : {}),
  });
}

/**
 * An upload's model crop (the square its heat map covers), for the uploader only: the store is the caller's view
 * (viewUploadsAs), so another subject's token is NOT_FOUND like an expired one.
 */
export async function renderUploadCrop({ store, token }: { store: OwnUploads; token: string }): Promise<{ bytes: Buffer; contentHash: string }> {
  const upload = await store.getWithBytes(token);
  if (!upload) throw notFound('The upload token is unknown or expired; upload the photograph again', { field: 'uploadToken' });
  return { bytes: await renderModelCrop(upload.bytes), contentHash: upload.contentHash };
}
