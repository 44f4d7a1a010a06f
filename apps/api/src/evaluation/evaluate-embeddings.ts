/**
 * Evaluation of an embedding model for similar-case retrieval against the trivial baselines, on embeddings
 * already computed (the CLI computes them through the product's own preprocessing and Embedder, so what is
 * measured is what the API serves).
 *
 * Without a separate gallery the query set is its own gallery; own-patient exclusion (retrieval.ts) removes the
 * query image and the patient's other eye.
 */
import {
  evaluateMajorityBaseline,
  evaluateRandomBaseline,
  evaluateRanker,
  rankByCosineSimilarity,
  type EvaluationItem,
  type RetrievalReport,
} from './retrieval.js';

export interface EmbeddedItem extends EvaluationItem {
  /** L2-normalised. */
  embedding: Float32Array;
}

export interface EvaluationResult {
  queries: number;
  gallery: number;
  model: RetrievalReport;
  baselines: {
    random: RetrievalReport & { expectedPrecision: number; seeds: number };
    majority: RetrievalReport;
  };
}

export function evaluateEmbeddings(options: { queries: readonly EmbeddedItem[]; gallery?: readonly EmbeddedItem[] }): EvaluationResult {
  const { queries } = options;
  const gallery = options.gallery ?? queries;
  const galleryEmbeddings = gallery.map((item) => item.embedding);
  return {
    queries: queries.length,
    gallery: gallery.length,
    model: evaluateRanker(queries, gallery, (queryIndex) => rankByCosineSimilarity(queries[queryIndex]!.embedding, galleryEmbeddings)),
    baselines: {
      random: evaluateRandomBaseline(queries, gallery),
      majority: evaluateMajorityBaseline(queries, gallery),
    },
  };
}
