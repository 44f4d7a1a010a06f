/**
 * Fundus preprocessing: the single place where a photograph becomes model input pixels.
 *
 * Why one module: the training cache (cli/build-cache), the API and the evaluation CLI all call
 * `preprocessFundusImage`, so the network sees byte-identical pixels at training and at serving time. The cache
 * stores the output as lossless PNG, so reading a cached PNG back gives exactly `pixels`.
 *
 * Steps and invariants:
 * - Accept raster photographs only: the first bytes must be JPEG, PNG, TIFF, WebP, GIF or HEIF/AVIF (anything else
 *   never reaches a decoder) and sharp's header must agree. An SVG (plain or gzipped) is VECTOR_IMAGE: librsvg
 *   would render a drawing, and a drawing of a disc would be embedded as if photographed. A PDF, or anything
 *   else, is NOT_AN_IMAGE (this libvips has no PDF loader; a build with one still refuses it). An image with more
 *   than one frame or page (animated GIF/WebP/PNG, multi-page TIFF, HEIF collections) is MULTI_FRAME_IMAGE:
 *   decoding only the first would silently pick one of several photographs, on every path alike.
 * - Decode with sharp under a pixel cap (`limitInputPixels`), apply EXIF orientation, convert any colour space
 *   (grey, CMYK, 16-bit) to 8-bit sRGB with exactly 3 channels; an embedded ICC profile is honoured (sharp converts
 *   through it, a CMYK image without one through libvips' CMYK profile).
 * - Alpha is dropped, not composited: a pixel keeps the colour it was photographed with whatever its opacity, so a
 *   semi-transparent copy gives the same pixels as the opaque original. Only fully transparent pixels become black:
 *   their colour is undefined (PNG optimisers rewrite it freely), and a cut-out fundus on a transparent surround
 *   must read as a disc on a black border. Images without alpha (every camera JPEG) take the unchanged pipeline.
 * - Find the fundus disc on a copy downscaled to at most DETECTION_SIDE px: threshold the per-pixel maximum
 *   channel (the fundus is bright in red even when underexposed; camera borders are near 0 plus JPEG noise),
 *   keep the largest 4-connected bright component (drops noise specks and burnt-in text), take its bounding box.
 *   Refuse (NO_FUNDUS) what cannot be a fundus: a black or uniform image, a component under 4% of the frame, one
 *   with no rim to fit a circle to (it runs into the image edges: a document, a screenshot, noise), or one with a
 *   side edge straight for most of its height (a card, a page, a screen or a bar, upright or tilted up to about
 *   15 degrees). These are sanity checks, not a fundus detector. Images under 64 px a side: TOO_SMALL.
 * - Crop the disc's bounding square. A whole disc (bbox touches no image edge and is square) gets its bbox,
 *   side max(width, height). A disc cut by the image edges or by the camera's straight mask lines (srahim
 *   800x535 and many EyePACS photographs cut the circle at top and bottom, not always symmetrically, and not
 *   always at the image edge) gets the square around a circle fitted to its rim: the left- and right-most
 *   component pixel of each row, excluding points on the image border (Kasa least-squares fit). If that fit
 *   is implausible (few points, large residual, centre outside the bbox), the centre is placed from the
 *   visible edges instead. A disc filling the whole frame (eyepacs-processed) keeps the whole frame.
 *   The square may extend beyond the image; that part is black (exactly 0).
 * - Resize to size x size (lanczos3). Output is RGB, HWC, uint8, row-major: index = (y * size + x) * 3 + c.
 *
 * Coordinates in `crop` are in pixels of the oriented original (after EXIF rotation), top-left origin.
 */
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
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
/** A side of the bright region straight for more than this share of its height is not a fundus rim (see
 * longestStraightRimRun: fundus photographs here reach 0.54). */
const MAX_STRAIGHT_RIM_FRACTION = 0.65;
/** Shorter side below which an image is refused (TOO_SMALL): a sanity floor, far below any camera's output. */
export const MIN_IMAGE_SIDE = 64;

export type PreprocessErrorCode =
  | 'EMPTY_FILE'
  | 'NOT_AN_IMAGE'
  | 'VECTOR_IMAGE'
  | 'MULTI_FRAME_IMAGE'
  | 'TOO_MANY_PIXELS'
  | 'TOO_SMALL'
  | 'NO_FUNDUS';

/** Raster formats accepted, as sharp names them (`metadata().format`). 'heif': sharp's prebuilt libheif bundles the
 * AV1 codec (aom) and no HEVC one, so only AVIF decodes; an HEIC photograph fails to decode (NOT_AN_IMAGE). */
export type RasterImageFormat = 'jpeg' | 'png' | 'tiff' | 'webp' | 'gif' | 'heif';

export const RASTER_IMAGE_MIME_TYPES: Readonly<Record<RasterImageFormat, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  tiff: 'image/tiff',
  webp: 'image/webp',
  gif: 'image/gif',
  heif: 'image/avif',
};

export function isRasterImageFormat(format: string | undefined): format is RasterImageFormat {
  return format !== undefined && Object.hasOwn(RASTER_IMAGE_MIME_TYPES, format);
}

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

export interface DiscCircle {
  centreX: number;
  centreY: number;
  radius: number;
  /** Root-mean-square distance of the rim points from the circle, same units as radius. */
  residual: number;
  points: number;
}

export interface BoundingBox {
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
  const format = requireRasterFormat(input);

  const header = await readImageHeader(input, format, maxInputPixels);
  const { original } = header;
  if (Math.min(original.width, original.height) < MIN_IMAGE_SIDE) {
    throw new PreprocessError(
      'TOO_SMALL',
      `The image is ${original.width}x${original.height} px; a fundus photograph needs at least ${MIN_IMAGE_SIDE} px on its shorter side.`,
    );
  }
  const source: ImageSource = header.hasAlpha ? await decodeDroppingAlpha(input, maxInputPixels) : { bytes: input };
  const detection = await decodeForDetection(source, maxInputPixels);
  const { box, circle } = locateFundusDisc(detection.values, detection.width, detection.height);
  const crop = computeSquareCrop(box, circle, { width: detection.width, height: detection.height }, original);

  const pixels = await cropAndResize(source, maxInputPixels, original, crop, size);
  return {
    pixels,
    size,
    original,
    crop,
    fundusFound: true,
    fundusAreaFraction: box.area / (detection.width * detection.height),
  };
}

/** Where pixels come from: the file itself, or (images with alpha) its decoded sRGB pixels with the alpha rule applied. */
type ImageSource = { bytes: Buffer } | { rgba: Buffer; width: number; height: number };

/** A decoder with the product's fixed input settings; every pipeline starts here. */
function openImage(source: ImageSource, maxInputPixels: number): Sharp {
  if ('rgba' in source) {
    // Every alpha is 255 here (decodeDroppingAlpha), so flatten only removes the band: colours pass unchanged.
    return sharp(source.rgba, { raw: { width: source.width, height: source.height, channels: 4 }, limitInputPixels: maxInputPixels })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb');
  }
  // Byte-identical to the pipeline the training cache was built with: keep these settings as they are.
  return sharp(source.bytes, { autoOrient: true, limitInputPixels: maxInputPixels, failOn: 'error' })
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace('srgb');
}

/**
 * The file's format from its first bytes; undefined for anything that is not a format this module decodes.
 * 'svg' covers plain and gzipped SVG (sharp renders both). Exported for the ingest path's stored media type.
 */
export function sniffImageFormat(bytes: Uint8Array): RasterImageFormat | 'svg' | 'pdf' | undefined {
  const startsWith = (...values: number[]) => values.every((value, index) => bytes[index] === value);
  const ascii = (start: number, end: number) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1', start, end);
  if (startsWith(0xff, 0xd8, 0xff)) return 'jpeg';
  if (startsWith(0x89, 0x50, 0x4e, 0x47)) return 'png';
  // Classic and BigTIFF, both byte orders.
  if (startsWith(0x49, 0x49, 0x2a, 0x00) || startsWith(0x4d, 0x4d, 0x00, 0x2a) || startsWith(0x49, 0x49, 0x2b, 0x00) || startsWith(0x4d, 0x4d, 0x00, 0x2b)) return 'tiff';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'gif';
  // ISO-BMFF with a still-image brand (an MP4 video has other brands and is not an image).
  if (ascii(4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(8, 12))) return 'heif';
  if (ascii(0, 5) === '%PDF-') return 'pdf';
  if (looksLikeSvg(bytes)) return 'svg';
  return undefined;
}

const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1']);
/** How far into a file the root element of an SVG is looked for; a longer preamble is refused as NOT_AN_IMAGE. */
const SVG_SNIFF_BYTES = 64 * 1024;

function looksLikeSvg(bytes: Uint8Array): boolean {
  let head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, SVG_SNIFF_BYTES));
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      // 1 KiB of deflate input inflates to at most about 1 MiB: enough to see the root element, no zip bomb.
      head = gunzipSync(head.subarray(0, 1024), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch {
      return false;
    }
  }
  const text = head.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  return text.startsWith('<') && /<svg[\s>]/i.test(text);
}

function requireRasterFormat(input: Buffer): RasterImageFormat {
  const format = sniffImageFormat(input);
  if (format === 'svg') {
    throw new PreprocessError('VECTOR_IMAGE', 'The file is an SVG drawing, not a photograph; upload the fundus photograph itself (JPEG, PNG, TIFF, WebP, GIF or AVIF).');
  }
  if (format === 'pdf') {
    throw new PreprocessError('NOT_AN_IMAGE', 'The file is a PDF document, not a photograph; export the fundus photograph itself (JPEG, PNG, TIFF, WebP, GIF or AVIF).');
  }
  if (!format) {
    throw new PreprocessError('NOT_AN_IMAGE', 'Not a readable image: the file is not a JPEG, PNG, TIFF, WebP, GIF or AVIF photograph.');
  }
  return format;
}

/** Number of frames an animated PNG declares (its acTL chunk, before the first IDAT); 1 for a plain PNG. */
function countPngFrames(png: Buffer): number {
  for (let offset = 8; offset + 8 <= png.length; ) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    if (type === 'acTL' && offset + 12 <= png.length) return png.readUInt32BE(offset + 8);
    if (type === 'IDAT' || type === 'IEND') return 1;
    offset += 12 + length;
  }
  return 1;
}

async function readImageHeader(
  input: Buffer,
  sniffed: RasterImageFormat,
  maxInputPixels: number,
): Promise<{ original: { width: number; height: number }; hasAlpha: boolean }> {
  let metadata: Metadata;
  try {
    // Metadata reads the header only, so an oversized image is refused before any pixel is decoded.
    metadata = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new PreprocessError('NOT_AN_IMAGE', `Not a readable image: ${describeSharpError(error)}.`, { cause: error });
  }
  // The signature said raster; the decoder sharp chose must agree (a second line of defence, not expected to trip).
  if (metadata.format === 'svg') throw new PreprocessError('VECTOR_IMAGE', 'The file is an SVG drawing, not a photograph.');
  if (!isRasterImageFormat(metadata.format)) {
    throw new PreprocessError('NOT_AN_IMAGE', `Not a readable image: a ${sniffed} signature but ${metadata.format} content.`);
  }
  const frames = Math.max(metadata.pages ?? 1, sniffed === 'png' ? countPngFrames(input) : 1);
  if (frames > 1) {
    throw new PreprocessError(
      'MULTI_FRAME_IMAGE',
      `The ${metadata.format} file holds ${frames} frames or pages; a case is one photograph. Export the one photograph to examine as its own file.`,
    );
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
  return { original: { width, height }, hasAlpha: metadata.hasAlpha === true };
}

/**
 * Decodes an image with alpha once to oriented 8-bit sRGB + alpha and applies the alpha rule in place: fully
 * transparent pixels become black, every pixel becomes opaque (its colour unchanged). Memory: 4 bytes a pixel.
 */
async function decodeDroppingAlpha(input: Buffer, maxInputPixels: number): Promise<ImageSource> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(input, { autoOrient: true, limitInputPixels: maxInputPixels, failOn: 'error' })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw toPreprocessError(error);
  }
  const { data, info } = decoded;
  if (info.channels !== 4) throw new Error(`alpha decode produced ${info.channels} channels, expected 4`);
  for (let base = 0; base < data.length; base += 4) {
    if (data[base + 3] === 0) data.fill(0, base, base + 3);
    data[base + 3] = 255;
  }
  return { rgba: data, width: info.width, height: info.height };
}

async function decodeForDetection(
  source: ImageSource,
  maxInputPixels: number,
): Promise<{ values: Uint8Array; width: number; height: number }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await openImage(source, maxInputPixels)
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
  const channels = info.channels;
  for (let i = 0, base = 0; i < pixelCount; i += 1, base += channels) {
    let max = data[base]!;
    if (channels >= 3) {
      const green = data[base + 1]!;
      const blue = data[base + 2]!;
      if (green > max) max = green;
      if (blue > max) max = blue;
    } else if (channels === 2 && data[base + 1]! > max) {
      max = data[base + 1]!;
    }
    values[i] = max;
  }
  return { values, width: info.width, height: info.height };
}

/**
 * Bounding box of the fundus in a single-channel image (values 0-255, row-major, width*height) and a circle
 * fitted to its rim (undefined when too few rim points). Throws NO_FUNDUS when the image is black, uniform, or
 * its bright region is too small.
 */
export function locateFundusDisc(values: Uint8Array, width: number, height: number): { box: BoundingBox; circle: DiscCircle | undefined } {
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
  const component = largestBrightComponent(values, width, height, threshold);
  const areaFraction = component ? component.box.area / pixelCount : 0;
  if (!component || areaFraction < MIN_FUNDUS_AREA_FRACTION) {
    throw new PreprocessError(
      'NO_FUNDUS',
      `No fundus visible: the largest bright region covers ${(areaFraction * 100).toFixed(1)}% of the image (need ${MIN_FUNDUS_AREA_FRACTION * 100}%).`,
    );
  }
  const rim = componentRim(component.labels, component.label, width, component.box);
  const circle = fitRimCircle(rim);
  if (!circle) {
    throw new PreprocessError(
      'NO_FUNDUS',
      'No fundus visible: the bright region has no round rim to fit (it runs into the image edges, as a document, a screenshot or noise does). ' +
        'A photograph cropped inside the fundus disc is not supported; use the uncropped photograph.',
    );
  }
  const regionHeight = component.box.y1 - component.box.y0;
  const straightFraction = longestStraightRimRun(rim, Math.floor(MAX_STRAIGHT_RIM_FRACTION * regionHeight) + 1) / regionHeight;
  if (straightFraction > MAX_STRAIGHT_RIM_FRACTION) {
    throw new PreprocessError(
      'NO_FUNDUS',
      `No fundus visible: a side edge of the bright region runs straight for at least ${(straightFraction * 100).toFixed(0)}% of its height; the rim of a fundus is round.`,
    );
  }
  return { box: component.box, circle };
}

/** Left and right rim of the component in each row; null where the row is empty or its extreme is on the image border. */
type Rim = { left: (number | null)[]; right: (number | null)[]; y0: number };

function componentRim(labels: Int32Array, label: number, width: number, box: BoundingBox): Rim {
  const rim: Rim = { left: [], right: [], y0: box.y0 };
  for (let y = box.y0; y < box.y1; y += 1) {
    let left = -1;
    let right = -1;
    const row = y * width;
    for (let x = box.x0; x < box.x1; x += 1) {
      if (labels[row + x] === label) {
        left = x;
        break;
      }
    }
    if (left !== -1) {
      for (let x = box.x1 - 1; x >= left; x -= 1) {
        if (labels[row + x] === label) {
          right = x;
          break;
        }
      }
    }
    // Right rim as a pixel edge (x + 1), the bbox convention.
    rim.left.push(left > 0 ? left : null);
    rim.right.push(right !== -1 && right < width - 1 ? right + 1 : null);
  }
  return rim;
}

/**
 * Longest run of consecutive rows over which one side's rim stays within 1 px of a straight line of any slope
 * (the chord from the run's first to its last row). A round rim (whole, cut or squashed into an ellipse) stays
 * within 1 px of a chord for about 2 * sqrt(2 * radius) rows; the side of a card, a screen, a page or a bar,
 * upright or tilted, stays on it all along. Stops early once a run reaches `enough` rows (the caller refuses then).
 * Over the 4812 photographs in ../shared/data, fundus photographs reach 0.54 of the region's height (a poor
 * eyepacs-processed photograph); the two refused there, neither a fundus, score 0.65 and 0.92. Per side, a tilted
 * rectangle's rim is two straight edges, so past about 15 degrees of tilt a card can pass: a sanity check, not a
 * fundus detector.
 */
function longestStraightRimRun(rim: Rim, enough: number): number {
  let longest = 0;
  for (const side of [rim.left, rim.right]) {
    for (let start = 0; start < side.length; start += 1) {
      const first = side[start];
      if (first == null) continue;
      let end = start;
      for (let next = start + 1; next < side.length; next += 1) {
        const last = side[next];
        if (last == null) break;
        const slope = (last - first) / (next - start);
        let straight = true;
        for (let row = start + 1; row < next; row += 1) {
          if (Math.abs(side[row]! - (first + slope * (row - start))) > 1) {
            straight = false;
            break;
          }
        }
        if (!straight) break;
        end = next;
      }
      longest = Math.max(longest, end - start + 1);
      if (longest >= enough) return longest;
    }
  }
  return longest;
}

/**
 * Least-squares circle (Kasa: minimise sum (x^2 + y^2 + D x + E y + F)^2) through the left and right rim of the
 * component in each row. Points on the image border are left out: there the disc is cut, not curved.
 * Coordinates are pixel edges (a pixel at column x spans [x, x+1)), matching the bbox convention.
 */
function fitRimCircle(rim: Rim): DiscCircle | undefined {
  const xs: number[] = [];
  const ys: number[] = [];
  rim.left.forEach((left, row) => {
    for (const x of [left, rim.right[row]]) {
      if (x == null) continue;
      xs.push(x);
      ys.push(rim.y0 + row + 0.5);
    }
  });
  const n = xs.length;
  if (n < 12) return undefined;
  // Centre the coordinates for a well-conditioned 3x3 system.
  const meanX = xs.reduce((sum, x) => sum + x, 0) / n;
  const meanY = ys.reduce((sum, y) => sum + y, 0) / n;
  let sxx = 0, sxy = 0, syy = 0, sx = 0, sy = 0, sxb = 0, syb = 0, sb = 0;
  for (let i = 0; i < n; i += 1) {
    const x = (xs[i] ?? 0) - meanX;
    const y = (ys[i] ?? 0) - meanY;
    const b = -(x * x + y * y);
    sxx += x * x; sxy += x * y; syy += y * y; sx += x; sy += y;
    sxb += x * b; syb += y * b; sb += b;
  }
  const solution = solve3x3([[sxx, sxy, sx], [sxy, syy, sy], [sx, sy, n]], [sxb, syb, sb]);
  if (!solution) return undefined;
  const [d, e, f] = solution;
  const centreX = -d / 2;
  const centreY = -e / 2;
  const radiusSquared = centreX * centreX + centreY * centreY - f;
  if (!(radiusSquared > 0)) return undefined;
  const radius = Math.sqrt(radiusSquared);
  let squaredError = 0;
  for (let i = 0; i < n; i += 1) {
    const distance = Math.hypot((xs[i] ?? 0) - meanX - centreX, (ys[i] ?? 0) - meanY - centreY);
    squaredError += (distance - radius) ** 2;
  }
  return { centreX: centreX + meanX, centreY: centreY + meanY, radius, residual: Math.sqrt(squaredError / n), points: n };
}

/** Cramer's rule; undefined for a (near-)singular matrix. */
function solve3x3(m: number[][], v: number[]): [number, number, number] | undefined {
  const at = (r: number, c: number): number => m[r]?.[c] ?? 0;
  const det = (a: number[][]): number => {
    const g = (r: number, c: number): number => a[r]?.[c] ?? 0;
    return g(0, 0) * (g(1, 1) * g(2, 2) - g(1, 2) * g(2, 1)) - g(0, 1) * (g(1, 0) * g(2, 2) - g(1, 2) * g(2, 0)) + g(0, 2) * (g(1, 0) * g(2, 1) - g(1, 1) * g(2, 0));
  };
  const full = [0, 1, 2].map((r) => [at(r, 0), at(r, 1), at(r, 2)]);
  const determinant = det(full);
  if (Math.abs(determinant) < 1e-9) return undefined;
  const column = (c: number): number => det(full.map((row, r) => row.map((value, k) => (k === c ? (v[r] ?? 0) : value))));
  return [column(0) / determinant, column(1) / determinant, column(2) / determinant];
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
): { box: BoundingBox; labels: Int32Array; label: number } | undefined {
  const pixelCount = width * height;
  // 0 = not visited; component k has label k + 1.
  const visited = new Int32Array(pixelCount);
  const stack = new Int32Array(pixelCount);
  let best: BoundingBox | undefined;
  let bestLabel = 0;
  let label = 0;
  for (let start = 0; start < pixelCount; start += 1) {
    if (visited[start] || (values[start] ?? 0) < threshold) continue;
    label += 1;
    let top = 0;
    stack[top++] = start;
    visited[start] = label;
    // Plain locals and no per-pixel allocation: this loop runs for every bright pixel of every photograph.
    let x0 = width, y0 = height, x1 = 0, y1 = 0, area = 0;
    while (top > 0) {
      const index = stack[--top]!;
      const x = index % width;
      const y = (index - x) / width;
      area += 1;
      if (x < x0) x0 = x;
      if (x + 1 > x1) x1 = x + 1;
      if (y < y0) y0 = y;
      if (y + 1 > y1) y1 = y + 1;
      // Neighbours in a fixed order (left, right, up, down), so the labelling never changes.
      if (x > 0 && visited[index - 1] === 0 && values[index - 1]! >= threshold) {
        visited[index - 1] = label;
        stack[top++] = index - 1;
      }
      if (x < width - 1 && visited[index + 1] === 0 && values[index + 1]! >= threshold) {
        visited[index + 1] = label;
        stack[top++] = index + 1;
      }
      if (y > 0 && visited[index - width] === 0 && values[index - width]! >= threshold) {
        visited[index - width] = label;
        stack[top++] = index - width;
      }
      if (y < height - 1 && visited[index + width] === 0 && values[index + width]! >= threshold) {
        visited[index + width] = label;
        stack[top++] = index + width;
      }
    }
    const box: BoundingBox = { x0, y0, x1, y1, area };
    if (!best || box.area > best.area) {
      best = box;
      bestLabel = label;
    }
  }
  return best ? { box: best, labels: visited, label: bestLabel } : undefined;
}

/**
 * Square around the disc, in original pixels. `box` and `circle` are in detection pixels (`detection` size),
 * mapped to `original` by the per-axis scale. Exported for tests.
 */
export function computeSquareCrop(
  box: { x0: number; y0: number; x1: number; y1: number },
  circle: DiscCircle | undefined,
  detection: { width: number; height: number },
  original: { width: number; height: number },
): SquareCrop {
  const scaleX = original.width / detection.width;
  const scaleY = original.height / detection.height;
  const boxWidth = box.x1 - box.x0;
  const boxHeight = box.y1 - box.y0;
  const edgeTolerance = 1; // detection pixels
  const cut = {
    left: box.x0 <= edgeTolerance,
    top: box.y0 <= edgeTolerance,
    right: box.x1 >= detection.width - edgeTolerance,
    bottom: box.y1 >= detection.height - edgeTolerance,
  };
  const squareEnough = Math.min(boxWidth, boxHeight) / Math.max(boxWidth, boxHeight) >= 0.97;
  const fillsFrame = cut.left && cut.right && cut.top && cut.bottom;
  const wholeDisc = !cut.left && !cut.right && !cut.top && !cut.bottom && squareEnough;

  let centreX = (box.x0 + box.x1) / 2;
  let centreY = (box.y0 + box.y1) / 2;
  let side = Math.max(boxWidth * scaleX, boxHeight * scaleY);
  if (!wholeDisc && !fillsFrame && circle && isPlausibleCircle(circle, box)) {
    centreX = circle.centreX;
    centreY = circle.centreY;
    side = 2 * circle.radius * ((scaleX + scaleY) / 2);
  } else if (!wholeDisc && !fillsFrame) {
    centreX = placeCentre(box.x0, box.x1, cut.left, cut.right, side / scaleX);
    centreY = placeCentre(box.y0, box.y1, cut.top, cut.bottom, side / scaleY);
  }
  const roundedSide = Math.max(1, Math.round(side));
  return {
    x: Math.round(centreX * scaleX - roundedSide / 2),
    y: Math.round(centreY * scaleY - roundedSide / 2),
    side: roundedSide,
  };
}

/** The fitted rim must be round (small residual), hold the visible region, and be centred inside it. */
function isPlausibleCircle(circle: DiscCircle, box: { x0: number; y0: number; x1: number; y1: number }): boolean {
  const longest = Math.max(box.x1 - box.x0, box.y1 - box.y0);
  return (
    circle.points >= 40 &&
    circle.residual <= 0.02 * circle.radius + 0.5 &&
    2 * circle.radius >= 0.95 * longest &&
    2 * circle.radius <= 1.6 * longest &&
    circle.centreX >= box.x0 &&
    circle.centreX <= box.x1 &&
    circle.centreY >= box.y0 - 0.3 * longest &&
    circle.centreY <= box.y1 + 0.3 * longest
  );
}

/** Fallback when no circle fits: a disc cut on one side is placed from its visible opposite edge. */
function placeCentre(start: number, end: number, cutAtStart: boolean, cutAtEnd: boolean, side: number): number {
  if (cutAtStart && !cutAtEnd) return end - side / 2;
  if (cutAtEnd && !cutAtStart) return start + side / 2;
  return (start + end) / 2;
}

async function cropAndResize(
  source: ImageSource,
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
    decoded = await openImage(source, maxInputPixels)
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
