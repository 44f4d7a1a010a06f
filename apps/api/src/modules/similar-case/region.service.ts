// Search by region (SMILY's refine-by-region) and the explanation of a hit (feature correspondence), both from the
// model's feature map: of an upload (kept with its token) or of a stored photograph (its bytes run through the
// product's preprocessing and the model again; nothing is stored, the map is 64 KB a photograph).
import { AppError, badInput, notFound } from '../../errors.js';
import type { Embedder, FeatureMap } from '../../embedding/embedder.js';
import { PreprocessError } from '../../embedding/preprocess.js';
import { computeCorrespondence, findRegionProblem, regionCellMask, singleCellMasks, type Region } from '../../embedding/regions.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { requireUuid } from '../common/validation.js';
import type { OwnUploads } from '../upload/upload.store.js';

export type PhotographFeatures = { featureMap: FeatureMap; fundusShare: Float32Array; modelVersion: string };

const REGION_MESSAGES = {
  REGION_NOT_FINITE: 'region: x, y, width and height must be finite numbers',
  REGION_EMPTY: 'region: width and height must be greater than 0 (a rectangle of zero area selects nothing)',
  REGION_OUTSIDE_PHOTOGRAPH: 'region: the rectangle must lie inside the photograph crop: 0 <= x, 0 <= y, x + width <= 1, y + height <= 1 (fractions of the crop the model sees)',
} as const;

/** The rectangle, checked: BAD_USER_INPUT with reason REGION_NOT_FINITE, REGION_EMPTY or REGION_OUTSIDE_PHOTOGRAPH. */
export function requireRegion(region: Region): Region {
  const problem = findRegionProblem(region);
  if (problem) throw badInput(REGION_MESSAGES[problem], { field: 'region', reason: problem });
  return { x: region.x, y: region.y, width: region.width, height: region.height };
}

/** The embedder, when it can pool regions; MODEL_UNAVAILABLE otherwise. */
export function requireRegionModel(embedder: Embedder | null): Embedder {
  if (!embedder) throw new AppError('MODEL_UNAVAILABLE', 'No embedding model is loaded (MODEL_PATH not found); search by region and explanations are unavailable');
  if (!embedder.supportsRegions) {
    throw new AppError('MODEL_UNAVAILABLE', `The loaded model ${embedder.metadata.modelVersion} has no feature_map output or region head; search by region and explanations are unavailable (models/scripts/add_region_outputs.py)`);
  }
  return embedder;
}

/** Feature map of a stored photograph, from its bytes. */
export async function featuresOfStoredPhotograph(prisma: PrismaClient, embedder: Embedder, imageId: string): Promise<PhotographFeatures> {
  const image = await prisma.fundusImage.findUnique({ where: { id: imageId }, select: { blob: { select: { bytes: true } } } });
  if (!image) throw notFound(`No case with id ${imageId}`, { field: 'caseId' });
  let embedded: Awaited<ReturnType<Embedder['embedImage']>>;
  try {
    embedded = await embedder.embedImage(Buffer.from(image.blob.bytes));
  } catch (error) {
    if (error instanceof PreprocessError) throw new AppError('EMBEDDING_UNAVAILABLE', `The stored photograph ${imageId} cannot be preprocessed again: ${error.message}`, { field: 'caseId' });
    throw error;
  }
  if (!embedded.featureMap || !embedded.fundusShare) throw new AppError('MODEL_UNAVAILABLE', 'The loaded model returned no feature map');
  return { featureMap: embedded.featureMap, fundusShare: embedded.fundusShare, modelVersion: embedder.metadata.modelVersion };
}

/** Feature map of an upload (kept with the token at upload time). */
export async function featuresOfUpload(uploads: OwnUploads, uploadToken: string): Promise<PhotographFeatures & { contentHash: string }> {
  const upload = await uploads.get(uploadToken);
  if (!upload) throw notFound('The upload token is unknown or expired; upload the photograph again', { field: 'uploadToken' });
  if (!upload.featureMap || !upload.fundusShare) {
    throw new AppError('MODEL_UNAVAILABLE', `The upload was embedded by model ${upload.modelVersion}, which has no feature map; upload it again`, { field: 'uploadToken' });
  }
  return { featureMap: upload.featureMap, fundusShare: upload.fundusShare, modelVersion: upload.modelVersion, contentHash: upload.contentHash };
}

/**
 * The region descriptor: the model's GeM over the cells under the rectangle, projected; a unit vector. A rectangle
 * wholly on the black surround (the crop's padding or the camera mask: no fundus pixel under any of its cells) is
 * BAD_USER_INPUT reason REGION_OUTSIDE_PHOTOGRAPH: there is nothing photographed to search by.
 */
export async function computeRegionQueryVector(embedder: Embedder, features: Pick<PhotographFeatures, 'featureMap' | 'fundusShare'>, region: Region): Promise<Float32Array> {
  const { featureMap, fundusShare } = features;
  const mask = regionCellMask(region, featureMap.height, featureMap.width);
  if (!mask.some((weight, cell) => weight > 0 && fundusShare[cell]! > 0)) {
    throw badInput('region: the rectangle covers no part of the photographed fundus (it lies on the black surround)', { field: 'region', reason: 'REGION_OUTSIDE_PHOTOGRAPH' });
  }
  const [vector] = await embedder.embedRegions(featureMap, [mask]);
  return vector!;
}

export type SimilarityExplanation = {
  modelVersion: string;
  queryMap: { width: number; height: number; values: Float32Array };
  hitMap: { width: number; height: number; values: Float32Array };
  matches: { queryCell: { row: number; column: number }; hitCell: { row: number; column: number }; similarity: number }[];
};

/**
 * Which regions of the query and of a hit correspond: every feature cell embedded on its own by the region head,
 * then each cell's best cosine match in the other photograph (regions.ts computeCorrespondence).
 */
export async function explainSimilarity({
  prisma,
  embedder,
  uploads,
  imageId,
  uploadToken,
  caseId,
}: {
  prisma: PrismaClient;
  embedder: Embedder | null;
  uploads: OwnUploads;
  imageId?: string | null;
  uploadToken?: string | null;
  caseId: string;
}): Promise<SimilarityExplanation> {
  if ((imageId ? 1 : 0) + (uploadToken ? 1 : 0) !== 1) throw badInput('Give exactly one of imageId (a stored case) or uploadToken (from POST /uploads)', { field: 'imageId' });
  const hitId = requireUuid(caseId, 'caseId');
  const queryId = imageId ? requireUuid(imageId, 'imageId') : null;
  if (queryId !== null && queryId === hitId) throw badInput('caseId is the query itself; explain a hit against another photograph', { field: 'caseId' });
  const model = requireRegionModel(embedder);
  const query = queryId ? await featuresOfStoredPhotograph(prisma, model, queryId).catch(renameField('imageId')) : await featuresOfUpload(uploads, uploadToken!);
  if (query.modelVersion !== model.metadata.modelVersion) {
    throw new AppError('EMBEDDING_UNAVAILABLE', `The upload was embedded by model ${query.modelVersion} but the loaded model is ${model.metadata.modelVersion}; upload it again`, { field: 'uploadToken' });
  }
  const hit = await featuresOfStoredPhotograph(prisma, model, hitId);
  const { height, width } = query.featureMap;
  const masks = singleCellMasks(height, width);
  const [queryCells, hitCells] = [await model.embedRegions(query.featureMap, masks), await model.embedRegions(hit.featureMap, masks)];
  const correspondence = computeCorrespondence({ height, width, queryCells, hitCells, queryFundus: query.fundusShare, hitFundus: hit.fundusShare });
  const cell = (index: number) => ({ row: Math.floor(index / width), column: index % width });
  return {
    modelVersion: model.metadata.modelVersion,
    queryMap: { width, height, values: correspondence.queryMap },
    hitMap: { width, height, values: correspondence.hitMap },
    matches: correspondence.matches.map((match) => ({ queryCell: cell(match.queryCell), hitCell: cell(match.hitCell), similarity: match.similarity })),
  };
}

/** A NOT_FOUND about the query names the query's field, not the hit's. */
function renameField(field: string) {
  return (error: unknown): never => {
    if (error instanceof AppError && error.code === 'NOT_FOUND') throw notFound(error.message, { field });
    throw error;
  };
}
