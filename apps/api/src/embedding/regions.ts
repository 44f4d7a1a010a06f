/**
 * Regions of the model's input square and their feature cells: search by region (SMILY's refine-by-region) and
 * feature correspondence between two photographs.
 *
 * Coordinates: fractions (0-1) of the preprocessed square crop the model sees, top-left origin, the frame that
 * `GET /photographs/<id>?size=crop` serves and that every heat map covers. The crop of a photograph cut by the
 * image edges includes black padding outside the photograph; a rectangle there is still inside the crop but finds
 * no fundus (`fundusShare` says how much of it is photograph).
 */

export type Region = { x: number; y: number; width: number; height: number };

export type RegionProblem = 'REGION_NOT_FINITE' | 'REGION_EMPTY' | 'REGION_OUTSIDE_PHOTOGRAPH';

/** Why a rectangle cannot be searched, or null: non-finite numbers, zero or negative area, or outside the crop. */
export function findRegionProblem(region: Region): RegionProblem | null {
  const { x, y, width, height } = region;
  if (![x, y, width, height].every(Number.isFinite)) return 'REGION_NOT_FINITE';
  if (width <= 0 || height <= 0) return 'REGION_EMPTY';
  // A hair of tolerance for clients that compute x + width in floating point.
  const epsilon = 1e-9;
  if (x < 0 || y < 0 || x + width > 1 + epsilon || y + height > 1 + epsilon) return 'REGION_OUTSIDE_PHOTOGRAPH';
  return null;
}

/**
 * Weight of each feature cell (height x width grid over the crop, row-major): the share of the cell the rectangle
 * covers, so a rectangle smaller than a cell still selects the cell it lies in.
 */
export function regionCellMask(region: Region, height: number, width: number): Float32Array {
  const mask = new Float32Array(height * width);
  for (let row = 0; row < height; row += 1) {
    const top = row / height;
    const bottom = (row + 1) / height;
    const overlapY = Math.max(0, Math.min(bottom, region.y + region.height) - Math.max(top, region.y)) * height;
    if (overlapY <= 0) continue;
    for (let column = 0; column < width; column += 1) {
      const left = column / width;
      const right = (column + 1) / width;
      const overlapX = Math.max(0, Math.min(right, region.x + region.width) - Math.max(left, region.x)) * width;
      if (overlapX > 0) mask[row * width + column] = overlapX * overlapY;
    }
  }
  return mask;
}

/** One mask per cell (a one-hot grid), for per-cell embeddings. */
export function singleCellMasks(height: number, width: number): Float32Array[] {
  return Array.from({ length: height * width }, (_, index) => {
    const mask = new Float32Array(height * width);
    mask[index] = 1;
    return mask;
  });
}

/**
 * Share of each cell that is fundus, from the preprocessed pixels (RGB HWC, size x size): a pixel is fundus when
 * its channel mean exceeds 8, the rule the model's own input normalisation uses (models/src/fundus_cbr/model.py).
 */
export function fundusShareByCell(pixels: Uint8Array, size: number, height: number, width: number): Float32Array {
  const inside = new Float32Array(height * width);
  const counts = new Float32Array(height * width);
  for (let y = 0; y < size; y += 1) {
    const row = Math.min(height - 1, Math.floor((y * height) / size));
    for (let x = 0; x < size; x += 1) {
      const cell = row * width + Math.min(width - 1, Math.floor((x * width) / size));
      const offset = (y * size + x) * 3;
      counts[cell]! += 1;
      if ((pixels[offset]! + pixels[offset + 1]! + pixels[offset + 2]!) / 3 > 8) inside[cell]! += 1;
    }
  }
  return inside.map((value, cell) => (counts[cell]! > 0 ? value / counts[cell]! : 0));
}

export function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let index = 0; index < a.length; index += 1) sum += a[index]! * b[index]!;
  return sum;
}

export type CellMatch = { queryCell: number; hitCell: number; similarity: number };

export type Correspondence = {
  height: number;
  width: number;
  /** Per query cell: how well its best match in the hit corresponds, 0-1 over the fundus cells, 0 outside. */
  queryMap: Float32Array;
  /** The same from the hit's side. */
  hitMap: Float32Array;
  /** Mutual nearest neighbours (each cell is the other's best match), most similar first. */
  matches: CellMatch[];
};

/**
 * Feature correspondence between two photographs from their per-cell embeddings (unit vectors, one per cell,
 * row-major): each cell's best cosine match among the other's fundus cells. Cells under `minFundusShare` fundus
 * (black padding, the camera mask) take no part: padding matches padding perfectly and means nothing.
 * Map values are the best-match similarity rescaled min-max over the photograph's fundus cells, so the map shows
 * where the correspondence is strongest relative to the rest of that photograph.
 */
export function computeCorrespondence(options: {
  height: number;
  width: number;
  queryCells: readonly Float32Array[];
  hitCells: readonly Float32Array[];
  queryFundus: Float32Array;
  hitFundus: Float32Array;
  minFundusShare?: number;
  maxMatches?: number;
}): Correspondence {
  const { height, width, queryCells, hitCells, queryFundus, hitFundus } = options;
  const minShare = options.minFundusShare ?? 0.5;
  const cells = height * width;
  const queryActive = [...Array(cells).keys()].filter((cell) => queryFundus[cell]! >= minShare);
  const hitActive = [...Array(cells).keys()].filter((cell) => hitFundus[cell]! >= minShare);
  const bestForQuery = new Map<number, { cell: number; similarity: number }>();
  const bestForHit = new Map<number, { cell: number; similarity: number }>();
  for (const q of queryActive) {
    for (const h of hitActive) {
      const similarity = dot(queryCells[q]!, hitCells[h]!);
      if ((bestForQuery.get(q)?.similarity ?? -Infinity) < similarity) bestForQuery.set(q, { cell: h, similarity });
      if ((bestForHit.get(h)?.similarity ?? -Infinity) < similarity) bestForHit.set(h, { cell: q, similarity });
    }
  }
  const toMap = (best: Map<number, { similarity: number }>) => {
    const map = new Float32Array(cells);
    const values = [...best.values()].map((entry) => entry.similarity);
    if (values.length === 0) return map;
    const low = Math.min(...values);
    const span = Math.max(...values) - low;
    for (const [cell, entry] of best) map[cell] = span > 0 ? (entry.similarity - low) / span : 1;
    return map;
  };
  const matches = [...bestForQuery]
    .filter(([q, entry]) => bestForHit.get(entry.cell)?.cell === q)
    .map(([q, entry]) => ({ queryCell: q, hitCell: entry.cell, similarity: entry.similarity }))
    .sort((a, b) => b.similarity - a.similarity || a.queryCell - b.queryCell)
    .slice(0, options.maxMatches ?? 8);
  return { height, width, queryMap: toMap(bestForQuery), hitMap: toMap(bestForHit), matches };
}

