// A stored photograph's bytes for display: as stored, a thumbnail, or the square crop the model saw (the region
// its attention heat map covers). Policy and audit are the caller's (server.ts, GET /photographs/:id).
import sharp from 'sharp';
import { badInput, notFound } from '../../errors.js';
import { preprocessFundusImage } from '../../embedding/preprocess.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { loadCases } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';
import { requireUuid } from '../common/validation.js';

export const PHOTOGRAPH_SIZES = ['full', 'thumbnail', 'crop'] as const;
export type PhotographSize = (typeof PHOTOGRAPH_SIZES)[number];
const THUMBNAIL_SIDE = 256;
const CROP_SIDE = 512;

export function requirePhotographSize(value: unknown): PhotographSize {
  if (value === undefined) return 'full';
  if (typeof value === 'string' && (PHOTOGRAPH_SIZES as readonly string[]).includes(value)) return value as PhotographSize;
  throw badInput(`size must be one of ${PHOTOGRAPH_SIZES.join(', ')}`, { field: 'size' });
}

/** The case (for the caller's access check) and the bytes to send. */
export async function getPhotograph({ prisma, imageId, size }: { prisma: PrismaClient; imageId: string; size: PhotographSize }): Promise<{ case: Case; bytes: Buffer; mimeType: string }> {
  const id = requireUuid(imageId, 'id');
  const found = (await loadCases(prisma, [id])).get(id);
  if (!found) throw notFound(`No photograph with id ${id}`, { field: 'id' });
  const blob = await prisma.imageBlob.findUnique({ where: { sha256: found.image.contentHash }, select: { bytes: true, mimeType: true } });
  if (!blob) throw notFound(`The bytes of photograph ${id} are missing`, { field: 'id' });
  const bytes = Buffer.from(blob.bytes);
  if (size === 'full') return { case: found, bytes, mimeType: blob.mimeType };
  if (size === 'thumbnail') {
    const thumbnail = await sharp(bytes, { autoOrient: true }).resize({ width: THUMBNAIL_SIDE, height: THUMBNAIL_SIDE, fit: 'inside' }).jpeg({ quality: 85 }).toBuffer();
    return { case: found, bytes: thumbnail, mimeType: 'image/jpeg' };
  }
  return { case: found, bytes: await renderModelCrop(bytes), mimeType: 'image/png' };
}

/** The product's own preprocessing: the same square the model embedded (the heat map's frame), as a PNG for display. */
export async function renderModelCrop(bytes: Buffer): Promise<Buffer> {
  const crop = await preprocessFundusImage(bytes, { size: CROP_SIDE });
  return sharp(Buffer.from(crop.pixels), { raw: { width: crop.size, height: crop.size, channels: 3 } }).png().toBuffer();
}
