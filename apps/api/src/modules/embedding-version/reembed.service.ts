// Rolling out a model: embed every stored photograph that has no embedding of the model's version yet. The walk
// is by image id and each image is written on its own, so an interrupted run resumes where it stopped and a
// rerun of a finished one does nothing. Searches keep using the old version until SEARCH_MODEL_VERSION (or the
// loaded model) says otherwise, so a half-finished roll-out never mixes versions in one search.
import type { Embedder } from '../../embedding/embedder.js';
import { PreprocessError } from '../../embedding/preprocess.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { findImagesMissingEmbedding, upsertImageEmbedding } from '../../search/similar-images.js';

export type ReembedProgress = { done: number; embedded: number; failed: number; remaining: number };
export type ReembedSummary = { modelVersion: string; embedded: number; failed: { imageId: string; code: string; message: string }[] };

export async function countImagesMissingEmbedding(prisma: PrismaClient, modelVersion: string): Promise<number> {
  const rows = await prisma.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM fundus_image fi
    WHERE NOT EXISTS (SELECT 1 FROM image_embedding e WHERE e.image_id = fi.id AND e.model_version = ${modelVersion})`;
  return rows[0]?.n ?? 0;
}

export async function reembedImages({
  prisma,
  embedder,
  batchSize = 16,
  limit = Number.POSITIVE_INFINITY,
  onProgress,
}: {
  prisma: PrismaClient;
  embedder: Embedder;
  batchSize?: number;
  limit?: number;
  onProgress?: (progress: ReembedProgress) => void;
}): Promise<ReembedSummary> {
  const modelVersion = embedder.metadata.modelVersion;
  const total = Math.min(limit, await countImagesMissingEmbedding(prisma, modelVersion));
  const summary: ReembedSummary = { modelVersion, embedded: 0, failed: [] };
  let afterId: string | null = null;
  while (summary.embedded + summary.failed.length < total) {
    const ids = await findImagesMissingEmbedding(prisma, modelVersion, afterId, Math.min(batchSize, total - summary.embedded - summary.failed.length));
    if (ids.length === 0) break;
    afterId = ids[ids.length - 1]!;
    const images = await prisma.fundusImage.findMany({ where: { id: { in: ids } }, select: { id: true, blob: { select: { bytes: true } } } });
    for (const image of images) {
      try {
        const result = await embedder.embedImage(Buffer.from(image.blob.bytes));
        await upsertImageEmbedding(prisma, { imageId: image.id, modelVersion, embedding: result.embedding, attention: result.attention });
        summary.embedded += 1;
      } catch (error) {
        if (!(error instanceof PreprocessError)) throw error;
        summary.failed.push({ imageId: image.id, code: error.code, message: error.message });
      }
    }
    onProgress?.({ done: summary.embedded + summary.failed.length, embedded: summary.embedded, failed: summary.failed.length, remaining: total - summary.embedded - summary.failed.length });
  }
  return summary;
}
