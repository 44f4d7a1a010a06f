/**
 * Fundus preprocessing: the single place where a photograph becomes model input pixels.
 *
 * Why one module: the training cache (cli/build-cache), the API and the evaluation CLI all call
 * `preprocessFundusImage`, so the network sees byte-identical pixels at training and at serving time. The cache
 * stores the output as lossless PNG, so reading a cached PNG back gives exactly `pixels`.
 *
 * Steps and invariants:
 * - Decode with sharp under a pixel cap (`limitInputPixels`), apply EXIF orientation, flatten alpha on black,
 *   convert any colour space (grey, CMYK, 16-bit) to 8-bit sRGB with exactly 3 channels.
 * - Find the fundus disc on a copy downscaled to at most DETECTION_SIDE px: threshold the per-pixel maximum
 *   channel (the fundus is bright in red even when underexposed; camera borders are near 0 plus JPEG noise),
 *   keep the largest 4-connected bright component (drops noise specks and burnt-in text), take its bounding box.
 * - Crop a square of side max(bbox width, bbox height) centred on the disc. Where the disc is cut by one image
 *   edge (common: 800x535 srahim photographs cut the circle at top and bottom), the centre is placed from the
 *   visible opposite edge; where it is cut on both sides, the bbox centre is used. The square may extend beyond
 *   the image; that part is black.
 * - Resize to size x size (lanczos3). Output is RGB, HWC, uint8, row-major: index = (y * size + x) * 3 + c.
 *
 * Coordinates in `crop` are in pixels of the oriented original (after EXIF rotation), top-left origin.
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';

export const DEFAULT_MAX_INPUT_PIXELS = 40_000_000;
/** Longest side of the copy on which the disc is detected; bbox precision is about original/DETECTION_SIDE px. */
const DETECTION_SIDE = 512;
/** Bright threshold: a fraction of the 99th percentile of the max channel, never below an absolute floor. */
const RELATIVE_THRESHOLD = 0.18;
const ABSOLUTE_THRESHOLD_FLOOR = 18;
/** A fundus must cover at least this share of the (detection) image, else NO_FUNDUS. */
const MIN_FUNDUS_AREA_FRACTION = 0.04;
/** An image whose max-channel 99th percentile is below this is treated as black. */
const MIN_BRIGHT_PERCENTILE = 30;
/** Standard deviation (0-255 units) of the max channel below which an image is treated as uniform. */
const MIN_STANDARD_DEVIATION = 3;

export type PreprocessErrorCode = 'EMPTY_FILE' | 'NOT_AN_IMAGE' | 'TOO_MANY_PIXELS' | 'NO_FUNDUS';

export class PreprocessError extends Error {
  override readonly name = 'PreprocessError';
  constructor(
    readonly code: PreprocessErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PreprocessOptions {
  /** Output side in pixels (the model's input size). */
  size: number;
  /** Decoding refuses images with more pixels than this (width * height). */
  maxInputPixels?: number;
}

export interface SquareCrop {
  /** Left/top of the square in original pixel coordinates; may be negative (padded black). */
  x: number;
  y: number;
  side: number;
}

export interface PreprocessedImage {
  /** RGB, HWC, uint8, length size * size * 3. */
  pixels: Uint8Array;
  size: number;
  /** Dimensions after EXIF orientation. */
  original: { width: number; height: number };
  crop: SquareCrop;
  /** Always true for a returned image (no fundus throws NO_FUNDUS); kept so callers can log/store it. */
  fundusFound: true;
  /** Share of the oriented original covered by the detected disc component, 0-1. */
  fundusAreaFraction: number;
}

interface BoundingBox {
  /** Inclusive-exclusive: x0 <= x < x1. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  area: number;
}

export async function preprocessFundusImage(input: Buffer, options: PreprocessOptions): Promise<PreprocessedImage> {
  const { size } = options;
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  if (!Number.isInteger(size) || size < 8) {
    throw new RangeError(`size must be an integer >= 8, got ${size}`);
  }
  if (input.length === 0) {
    throw new PreprocessError('EMPTY_FILE', 'The file is empty (0 bytes).');
  }

  const original = await readOrientedDimensions(input, maxInputPixels);
  const detection = await decodeForDetection(input, maxInputPixels);
  const box = findFundusBoundingBox(detection.values, detection.width, detection.height);

  const scaleX = original.width / detection.width;
  const scaleY = original.height / detection.height;
  const disc = {
    x0: box.x0 * scaleX,
    x1: box.x1 * scaleX,
    y0: box.y0 * scaleY,
    y1: box.y1 * scaleY,
  };
  const crop = computeSquareCrop(disc, original);

  const pixels = await cropAndResize(input, maxInputPixels, original, crop, size);
  return {
    pixels,
    size,
    original,
    crop,
    fundusFound: true,
    fundusAreaFraction: box.area / (detection.width * detection.height),
  };
}

/** A decoder with the product's fixed input settings; every pipeline starts here. */
function openImage(input: Buffer, maxInputPixels: number): Sharp {
  return sharp(input, { autoOrient: true, limitInputPixels: maxInputPixels, failOn: 'error' })
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace('srgb');
}

async function readOrientedDimensions(
  input: Buffer,
  maxInputPixels: number,
): Promise<{ width: number; height: number }> {
  let metadata: Metadata;
  try {
    // Metadata reads the header only, so an oversized image is refused before any pixel is decoded.
    metadata = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new PreprocessError('NOT_AN_IMAGE', `Not a readable image: ${describeSharpError(error)}.`, { cause: error });
  }
  const { width, height } = metadata.autoOrient ?? metadata;
  if (!width || !height) {
    throw new PreprocessError('NOT_AN_IMAGE', `Not a readable image: no dimensions in the ${metadata.format} header.`);
  }
  if (width * height > maxInputPixels) {
    throw new PreprocessError(
      'TOO_MANY_PIXELS',
      `The image has ${width}x${height} = ${(width * height / 1e6).toFixed(1)} MP, more than the limit of ${(maxInputPixels / 1e6).toFixed(1)} MP.`,
    );
  }
  return { width, height };
}

async function decodeForDetection(
  input: Buffer,
  maxInputPixels: number,
): Promise<{ values: Uint8Array; width: number; height: number }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await openImage(input, maxInputPixels)
      .resize({ width: DETECTION_SIDE, height: DETECTION_SIDE, fit: 'inside', withoutEnlargement: true })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw toPreprocessError(error);
  }
  const { data, info } = decoded;
  const pixelCount = info.width * info.height;
  const values = new Uint8Array(pixelCount);
  for (let i = 0; i < pixelCount; i += 1) {
    const base = i * info.channels;
    let max = data[base] ?? 0;
    for (let c = 1; c < Math.min(info.channels, 3); c += 1) {
      max = Math.max(max, data[base + c] ?? 0);
    }
    values[i] = max;
  }
  return { values, width: info.width, height: info.height };
}

/**
 * Bounding box of the fundus in a single-channel image (values 0-255, row-major, width*height).
 * Exported for tests; throws NO_FUNDUS when the image is black, uniform, or its bright region is too small.
 */
export function findFundusBoundingBox(values: Uint8Array, width: number, height: number): BoundingBox {
  const pixelCount = width * height;
  const histogram = new Uint32Array(256);
  let sum = 0;
  let sumOfSquares = 0;
  for (let i = 0; i < pixelCount; i += 1) {
    const v = values[i] ?? 0;
    histogram[v] = (histogram[v] ?? 0) + 1;
    sum += v;
    sumOfSquares += v * v;
  }
  const mean = sum / pixelCount;
  const standardDeviation = Math.sqrt(Math.max(0, sumOfSquares / pixelCount - mean * mean));
  const p99 = percentileFromHistogram(histogram, pixelCount, 0.99);
  if (p99 < MIN_BRIGHT_PERCENTILE) {
    throw new PreprocessError('NO_FUNDUS', `No fundus visible: the image is black (99th percentile brightness ${p99}/255).`);
  }
  if (standardDeviation < MIN_STANDARD_DEVIATION) {
    throw new PreprocessError(
      'NO_FUNDUS',
      `No fundus visible: the image is uniform (brightness ${mean.toFixed(0)}/255, standard deviation ${standardDeviation.toFixed(1)}).`,
    );
  }

  const threshold = Math.max(ABSOLUTE_THRESHOLD_FLOOR, RELATIVE_THRESHOLD * p99);
  const box = largestBrightComponent(values, width, height, threshold);
  const areaFraction = box ? box.area / pixelCount : 0;
  if (!box || areaFraction < MIN_FUNDUS_AREA_FRACTION) {
    throw new PreprocessError(
      'NO_FUNDUS',
      `No fundus visible: the largest bright region covers ${(areaFraction * 100).toFixed(1)}% of the image (need ${MIN_FUNDUS_AREA_FRACTION * 100}%).`,
    );
  }
  return box;
}

function percentileFromHistogram(histogram: Uint32Array, count: number, quantile: number): number {
  const target = quantile * count;
  let cumulative = 0;
  for (let v = 0; v < histogram.length; v += 1) {
    cumulative += histogram[v] ?? 0;
    if (cumulative >= target) return v;
  }
  return 255;
}

/** Largest 4-connected component of pixels >= threshold, by pixel count; iterative flood fill. */
function largestBrightComponent(
  values: Uint8Array,
  width: number,
  height: number,
  threshold: number,
): BoundingBox | undefined {
  const pixelCount = width * height;
  const visited = new Uint8Array(pixelCount);
  const stack = new Int32Array(pixelCount);
  let best: BoundingBox | undefined;
  for (let start = 0; start < pixelCount; start += 1) {
    if (visited[start] || (values[start] ?? 0) < threshold) continue;
    let top = 0;
    stack[top++] = start;
    visited[start] = 1;
    const box: BoundingBox = { x0: width, y0: height, x1: 0, y1: 0, area: 0 };
    while (top > 0) {
      const index = stack[--top] ?? 0;
      const x = index % width;
      const y = (index - x) / width;
      box.area += 1;
      if (x < box.x0) box.x0 = x;
      if (x + 1 > box.x1) box.x1 = x + 1;
      if (y < box.y0) box.y0 = y;
      if (y + 1 > box.y1) box.y1 = y + 1;
      const neighbours = [x > 0 ? index - 1 : -1, x < width - 1 ? index + 1 : -1, y > 0 ? index - width : -1, y < height - 1 ? index + width : -1];
      for (const next of neighbours) {
        if (next >= 0 && !visited[next] && (values[next] ?? 0) >= threshold) {
          visited[next] = 1;
          stack[top++] = next;
        }
      }
    }
    if (!best || box.area > best.area) best = box;
  }
  return best;
}

/**
 * Square around the disc, in original pixels. Exported for tests.
 * `disc` is the bbox in original (float) coordinates; an edge within EDGE_TOLERANCE of the image border counts as
 * cut by that border, and the disc centre is then placed from the opposite, visible edge.
 */
export function computeSquareCrop(
  disc: { x0: number; y0: number; x1: number; y1: number },
  image: { width: number; height: number },
): SquareCrop {
  const side = Math.max(1, Math.round(Math.max(disc.x1 - disc.x0, disc.y1 - disc.y0)));
  const centreX = placeCentre(disc.x0, disc.x1, image.width, side);
  const centreY = placeCentre(disc.y0, disc.y1, image.height, side);
  return { x: Math.round(centreX - side / 2), y: Math.round(centreY - side / 2), side };
}

function placeCentre(start: number, end: number, limit: number, side: number): number {
  const tolerance = Math.max(2, limit * 0.005);
  const cutAtStart = start <= tolerance;
  const cutAtEnd = end >= limit - tolerance;
  if (cutAtStart && !cutAtEnd) return end - side / 2;
  if (cutAtEnd && !cutAtStart) return start + side / 2;
  return (start + end) / 2;
}

async function cropAndResize(
  input: Buffer,
  maxInputPixels: number,
  original: { width: number; height: number },
  crop: SquareCrop,
  size: number,
): Promise<Uint8Array> {
  // Visible part of the square, in original pixels.
  const left = Math.max(0, crop.x);
  const top = Math.max(0, crop.y);
  const right = Math.min(original.width, crop.x + crop.side);
  const bottom = Math.min(original.height, crop.y + crop.side);
  const scale = size / crop.side;
  // Place the visible part in output pixels; rounding both edges keeps padding + content = size exactly.
  const outLeft = Math.round((left - crop.x) * scale);
  const outTop = Math.round((top - crop.y) * scale);
  const outRight = Math.round((right - crop.x) * scale);
  const outBottom = Math.round((bottom - crop.y) * scale);
  const contentWidth = Math.max(1, outRight - outLeft);
  const contentHeight = Math.max(1, outBottom - outTop);
  const padLeft = Math.min(outLeft, size - contentWidth);
  const padTop = Math.min(outTop, size - contentHeight);

  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await openImage(input, maxInputPixels)
      .extract({ left, top, width: Math.max(1, right - left), height: Math.max(1, bottom - top) })
      .resize({ width: contentWidth, height: contentHeight, fit: 'fill', kernel: 'lanczos3' })
      .extend({
        left: padLeft,
        top: padTop,
        right: size - contentWidth - padLeft,
        bottom: size - contentHeight - padTop,
        background: { r: 0, g: 0, b: 0 },
      })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw toPreprocessError(error);
  }
  const { data, info } = decoded;
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new Error(`preprocess produced ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function describeSharpError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]?.trim() || 'unknown decoder error';
}

function toPreprocessError(error: unknown): PreprocessError {
  if (error instanceof PreprocessError) return error;
  const message = describeSharpError(error);
  if (/pixel limit/i.test(message)) {
    return new PreprocessError('TOO_MANY_PIXELS', `The image exceeds the pixel limit: ${message}.`, { cause: error });
  }
  return new PreprocessError('NOT_AN_IMAGE', `The image could not be decoded: ${message}.`, { cause: error });
}
