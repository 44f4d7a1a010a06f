import { createHash } from 'node:crypto';

/** SHA-256 of a photograph's bytes, lowercase hex: the content address of image_blob and fundus_image. */
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
