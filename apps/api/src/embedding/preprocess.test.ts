import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { renderSyntheticFundusPixels } from '../fixtures/synthetic-fundus.js';
import { PreprocessError, preprocessFundusImage, sniffImageFormat, type PreprocessErrorCode } from './preprocess.js';

/** Synthetic fundus: a textured bright disc (orange, like a real fundus) on black, raw RGB. */
function drawDisc(options: {
  width: number;
  height: number;
  centreX: number;
  centreY: number;
  radius: number;
  vignette?: boolean;
  /** Camera mask: rows outside [maskTop, maskBottom) stay black (straight cuts inside the frame). */
  maskTop?: number;
  maskBottom?: number;
}): Buffer {
  const { width, height, centreX, centreY, radius } = options;
  const distance = (x: number, y: number) => Math.hypot(x + 0.5 - centreX, y + 0.5 - centreY);
  return paint(
    width,
    height,
    (x, y) => distance(x, y) <= radius && y >= (options.maskTop ?? 0) && y < (options.maskBottom ?? height),
    [220, 110, 40],
    // Vignetting: brightness falls to 25% at the rim, as in underexposed photographs.
    options.vignette ? (x, y) => 1 - 0.75 * (distance(x, y) / radius) ** 2 : () => 1,
  );
}

/** Textured `colour` (times `shade`) wherever `inside` holds, black elsewhere; RGB, row-major. */
function paint(
  width: number,
  height: number,
  inside: (x: number, y: number) => boolean,
  colour: [number, number, number],
  shade: (x: number, y: number) => number = () => 1,
): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (!inside(x, y)) continue;
      const factor = shade(x, y) * (0.85 + 0.15 * Math.sin(x / 7) * Math.cos(y / 5));
      data.set(colour.map((value) => Math.round(value * factor)), (y * width + x) * 3);
    }
  }
  return data;
}

/** Bright, varied shapes that are not round: textured orange wherever `inside` holds. */
function drawShape(width: number, height: number, inside: (x: number, y: number) => boolean): Buffer {
  return paint(width, height, inside, [230, 150, 40]);
}

/** Inside test for a rectangle of half-sides (halfWidth, halfHeight) around (cx, cy), turned by `degrees`. */
function tiltedRectangle(cx: number, cy: number, halfWidth: number, halfHeight: number, degrees: number): (x: number, y: number) => boolean {
  const angle = (degrees * Math.PI) / 180;
  const [cos, sin] = [Math.cos(angle), Math.sin(angle)];
  return (x, y) => {
    const [dx, dy] = [x + 0.5 - cx, y + 0.5 - cy];
    return Math.abs(dx * cos + dy * sin) < halfWidth && Math.abs(-dx * sin + dy * cos) < halfHeight;
  };
}

/** A scanned page: white with rows of dark "words". */
function drawPage(width: number, height: number): Buffer {
  const data = Buffer.alloc(width * height * 3, 245);
  for (let y = 30; y < height - 30; y += 1) {
    if (y % 16 >= 9) continue;
    for (let x = 30; x < width - 30; x += 1) if ((x >> 4) % 5 !== 4) data.fill(20, (y * width + x) * 3, (y * width + x) * 3 + 3);
  }
  return data;
}

function encodePng(raw: Buffer, width: number, height: number, channels: 1 | 3 | 4 = 3): Promise<Buffer> {
  return sharp(raw, { raw: { width, height, channels } }).png().toBuffer();
}

async function discPng(options: Parameters<typeof drawDisc>[0]): Promise<Buffer> {
  return encodePng(drawDisc(options), options.width, options.height);
}

function assertNear(actual: number, expected: number, tolerance: number, label: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${label}: ${actual} not within ${tolerance} of ${expected}`);
}

function pixelAt(pixels: Uint8Array, size: number, x: number, y: number): [number, number, number] {
  const base = (y * size + x) * 3;
  return [pixels[base] ?? -1, pixels[base + 1] ?? -1, pixels[base + 2] ?? -1];
}

/** PNG consisting of a valid signature + IHDR (claiming width x height) + an IEND, with no image data. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.alloc(16))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** PNG chunk: length, type, body, CRC over type and body. */
function pngChunk(type: string, body: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const typeAndBody = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndBody));
  return Buffer.concat([length, typeAndBody, crc]);
}

/** A synthetic fundus photograph (vessels, disc, vignetting; nothing real), raw RGB. */
function syntheticPhotograph(width = 480, height = 360): { rgb: Buffer; width: number; height: number } {
  const { pixels } = renderSyntheticFundusPixels({ seed: 7, eye: 'LEFT', grade: 2, maculopathy: false, width, height });
  return { rgb: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), width, height };
}

/** The RGB pixels with a fourth channel from `alphaAt(x, y)`. */
function withAlpha(rgb: Buffer, width: number, height: number, alphaAt: (x: number, y: number) => number): Buffer {
  const rgba = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const i = y * width + x;
      rgb.copy(rgba, i * 4, i * 3, i * 3 + 3);
      rgba[i * 4 + 3] = alphaAt(x, y);
    }
  }
  return rgba;
}

/** Frames joined into one animated/multi-page file of the given format. */
async function multiFrame(format: 'gif' | 'webp' | 'tiff', frames: Buffer[]): Promise<Buffer> {
  return sharp(frames, { join: { animated: true } }).toFormat(format).toBuffer();
}

/** The PNG with an acTL chunk (animated PNG, `frames` frames) right after IHDR; decoders show the still image. */
function asAnimatedPng(png: Buffer, frames: number): Buffer {
  const afterHeader = 8 + 25; // signature + IHDR chunk
  const control = Buffer.alloc(8);
  control.writeUInt32BE(frames, 0);
  return Buffer.concat([png.subarray(0, afterHeader), pngChunk('acTL', control), png.subarray(afterHeader)]);
}

/** An SVG drawing of what a fundus looks like to the disc finder: an orange disc on black. */
const DISC_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="black"/>' +
  '<circle cx="200" cy="150" r="120" fill="#dc6e28"/></svg>';

/**
 * libvips' CMYK profile (the one sharp converts with) with the output curve of its CMYK->Lab table (A2B0, an
 * mft2 lut16) scaled to 80%: a valid profile whose CMYK->sRGB conversion is darker, so a decoder that uses the
 * embedded profile and one that uses a generic CMYK profile give visibly different pixels.
 */
async function darkerCmykProfile(): Promise<Buffer> {
  const tagged = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c86432' } }).withIccProfile('cmyk').jpeg().toBuffer();
  const profile = Buffer.from((await sharp(tagged).metadata()).icc!);
  const tagCount = profile.readUInt32BE(128);
  let lut = -1;
  for (let tag = 0; tag < tagCount; tag += 1) {
    if (profile.toString('latin1', 132 + 12 * tag, 136 + 12 * tag) === 'A2B0') lut = profile.readUInt32BE(136 + 12 * tag);
  }
  assert.equal(profile.toString('latin1', lut, lut + 4), 'mft2', 'the built-in CMYK profile keeps A2B0 as a lut16');
  const [inputs, outputs, grid] = [profile[lut + 8]!, profile[lut + 9]!, profile[lut + 10]!];
  const [inputEntries, outputEntries] = [profile.readUInt16BE(lut + 48), profile.readUInt16BE(lut + 50)];
  const lightnessCurve = lut + 52 + inputs * inputEntries * 2 + grid ** inputs * outputs * 2;
  for (let entry = 0; entry < outputEntries; entry += 1) {
    const at = lightnessCurve + 2 * entry;
    profile.writeUInt16BE(Math.floor(profile.readUInt16BE(at) * 0.8), at);
  }
  profile.fill(0, 84, 100); // profile ID (an MD5 of the old bytes): 0 means "not computed"
  return profile;
}

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

function meanValue(values: Uint8Array): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

describe('preprocessFundusImage geometry', () => {
  it('crops an off-centre disc on black to its bounding square', async () => {
    const input = await discPng({ width: 400, height: 300, centreX: 150, centreY: 160, radius: 100 });
    const result = await preprocessFundusImage(input, { size: 64 });
    assert.deepEqual(result.original, { width: 400, height: 300 });
    assertNear(result.crop.side, 200, 3, 'side');
    assertNear(result.crop.x, 50, 3, 'x');
    assertNear(result.crop.y, 60, 3, 'y');
    assert.equal(result.pixels.length, 64 * 64 * 3);
    assert.equal(result.size, 64);
    assert.ok(pixelAt(result.pixels, 64, 32, 32)[0] > 150, 'centre of the output is the bright disc');
    assert.deepEqual(pixelAt(result.pixels, 64, 0, 0), [0, 0, 0], 'corner outside the disc is black');
  });

  it('centres a disc cut at top and bottom (srahim-like photograph) and pads the square with black', async () => {
    const input = await discPng({ width: 400, height: 240, centreX: 200, centreY: 120, radius: 140 });
    const result = await preprocessFundusImage(input, { size: 70 });
    assertNear(result.crop.side, 280, 3, 'side');
    assertNear(result.crop.x, 60, 3, 'x');
    assertNear(result.crop.y, -20, 3, 'y');
    // The top 5 output rows (20 px of 280 -> 5 px of 70) lie above the image: padded black.
    assert.deepEqual(pixelAt(result.pixels, 70, 35, 1), [0, 0, 0]);
    assert.ok(pixelAt(result.pixels, 70, 35, 35)[0] > 150);
  });

  it('places a disc cut by the top edge only from its visible bottom edge', async () => {
    const input = await discPng({ width: 400, height: 300, centreX: 200, centreY: 100, radius: 120 });
    const result = await preprocessFundusImage(input, { size: 64 });
    assertNear(result.crop.side, 240, 3, 'side');
    assertNear(result.crop.x, 80, 3, 'x');
    assertNear(result.crop.y, -20, 3, 'y');
  });

  it('centres a disc cut by straight camera-mask lines inside the frame on its fitted circle', async () => {
    // Mask rows 45..270 of a circle centred at y = 170: the bbox centre (157.5) is 12.5 px off.
    const input = await discPng({ width: 400, height: 340, centreX: 200, centreY: 170, radius: 130, maskTop: 45, maskBottom: 270 });
    const result = await preprocessFundusImage(input, { size: 64 });
    assertNear(result.crop.side, 260, 4, 'side');
    assertNear(result.crop.x, 70, 3, 'x');
    assertNear(result.crop.y, 40, 3, 'y');
  });

  it('centres a disc cut by the top edge and by a mask line above the bottom edge (EyePACS-like)', async () => {
    // Circle centre y = 120, r = 130: cut at the top by the image, at y = 230 by the mask; black rows below.
    const input = await discPng({ width: 400, height: 300, centreX: 200, centreY: 120, radius: 130, maskBottom: 230 });
    const result = await preprocessFundusImage(input, { size: 64 });
    assertNear(result.crop.side, 260, 4, 'side');
    assertNear(result.crop.x, 70, 3, 'x');
    assertNear(result.crop.y, -10, 3, 'y');
  });

  it('keeps a disc that already fills the square (eyepacs-processed) as the whole image', async () => {
    const input = await discPng({ width: 256, height: 256, centreX: 128, centreY: 128, radius: 128 });
    const result = await preprocessFundusImage(input, { size: 128 });
    assertNear(result.crop.side, 256, 2, 'side');
    assertNear(result.crop.x, 0, 2, 'x');
    assertNear(result.crop.y, 0, 2, 'y');
  });

  it('accepts a disc squashed into an ellipse (eyepacs-processed squashes photographs to a square)', async () => {
    const raw = drawShape(400, 300, (x, y) => ((x + 0.5 - 200) / 190) ** 2 + ((y + 0.5 - 150) / 140) ** 2 < 1);
    const result = await preprocessFundusImage(await encodePng(raw, 400, 300), { size: 32 });
    assert.equal(result.size, 32);
    assertNear(result.crop.side, 380, 6, 'side spans the long axis');
  });

  it('finds a vignetted disc despite salt noise and a caption block in the border', async () => {
    const width = 500;
    const height = 400;
    const raw = drawDisc({ width, height, centreX: 260, centreY: 200, radius: 150, vignette: true });
    for (let i = 0; i < 300; i += 1) {
      const x = (i * 37) % width;
      const y = (i * 91) % 40; // specks in the top band, outside the disc
      raw.fill(255, (y * width + x) * 3, (y * width + x) * 3 + 3);
    }
    for (let y = 370; y < 390; y += 1) raw.fill(230, (y * width + 5) * 3, (y * width + 60) * 3); // "text"
    const result = await preprocessFundusImage(await encodePng(raw, width, height), { size: 64 });
    assertNear(result.crop.side, 300, 4, 'side');
    assertNear(result.crop.x, 110, 4, 'x');
    assertNear(result.crop.y, 50, 4, 'y');
  });

  it('applies EXIF orientation before cropping (coordinates are in the upright image)', async () => {
    // Stored 300x200 with the disc on the left; orientation 6 means "rotate 90 degrees clockwise to view".
    const stored = await sharp(drawDisc({ width: 300, height: 200, centreX: 90, centreY: 100, radius: 80 }), {
      raw: { width: 300, height: 200, channels: 3 },
    })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const result = await preprocessFundusImage(stored, { size: 32 });
    assert.deepEqual(result.original, { width: 200, height: 300 });
    // Upright, the disc is at the top: centre (100, 90).
    assertNear(result.crop.x + result.crop.side / 2, 100, 4, 'centre x');
    assertNear(result.crop.y + result.crop.side / 2, 90, 4, 'centre y');
  });

  it('gives identical pixels for identical input (training and serving see the same bytes)', async () => {
    const input = await discPng({ width: 300, height: 220, centreX: 140, centreY: 110, radius: 100 });
    const first = await preprocessFundusImage(input, { size: 48 });
    const second = await preprocessFundusImage(input, { size: 48 });
    assert.deepEqual(Buffer.from(first.pixels), Buffer.from(second.pixels));
  });
});

describe('preprocessFundusImage colour formats', () => {
  const width = 200;
  const height = 160;
  const disc = { width, height, centreX: 100, centreY: 80, radius: 70 };

  it('expands grayscale to three equal channels', async () => {
    const rgb = drawDisc(disc);
    const grey = Buffer.alloc(width * height);
    for (let i = 0; i < grey.length; i += 1) grey[i] = rgb[i * 3] ?? 0;
    const result = await preprocessFundusImage(await encodePng(grey, width, height, 1), { size: 32 });
    const [r, g, b] = pixelAt(result.pixels, 32, 16, 16);
    assert.ok(r > 100);
    assert.equal(r, g);
    assert.equal(g, b);
    assertNear(result.crop.side, 140, 3, 'side');
  });

  it('reduces a 16-bit PNG to 8-bit values', async () => {
    const png16 = await sharp(drawDisc(disc), { raw: { width, height, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    assert.equal((await sharp(png16).metadata()).depth, 'ushort');
    const result = await preprocessFundusImage(png16, { size: 32 });
    const [r] = pixelAt(result.pixels, 32, 16, 16);
    assert.ok(r > 150 && r <= 255, `red ${r} is an 8-bit value of a bright pixel`);
    assertNear(result.crop.side, 140, 3, 'side');
  });

  it('flattens alpha on black, so a transparent white surround is background', async () => {
    const rgb = drawDisc(disc);
    const rgba = Buffer.alloc(width * height * 4);
    for (let i = 0; i < width * height; i += 1) {
      const inside = (rgb[i * 3] ?? 0) > 0;
      rgba[i * 4] = inside ? (rgb[i * 3] ?? 0) : 255;
      rgba[i * 4 + 1] = inside ? (rgb[i * 3 + 1] ?? 0) : 255;
      rgba[i * 4 + 2] = inside ? (rgb[i * 3 + 2] ?? 0) : 255;
      rgba[i * 4 + 3] = inside ? 255 : 0;
    }
    const result = await preprocessFundusImage(await encodePng(rgba, width, height, 4), { size: 32 });
    assert.equal(result.pixels.length, 32 * 32 * 3);
    assertNear(result.crop.side, 140, 3, 'side');
    assert.deepEqual(pixelAt(result.pixels, 32, 0, 0), [0, 0, 0]);
  });

  it('converts a CMYK JPEG to RGB', async () => {
    const cmyk = await sharp(drawDisc(disc), { raw: { width, height, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer();
    assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
    const result = await preprocessFundusImage(cmyk, { size: 32 });
    const [r, , b] = pixelAt(result.pixels, 32, 16, 16);
    assert.ok(r > b + 50, `orange disc stays red-dominant after CMYK->sRGB (r=${r}, b=${b})`);
    assertNear(result.crop.side, 140, 4, 'side');
  });

  it('converts a CMYK JPEG through its embedded ICC profile, not a generic CMYK one', async () => {
    const { rgb, width: w, height: h } = syntheticPhotograph();
    const srgb = await preprocessFundusImage(await encodePng(rgb, w, h), { size: 64 });
    const folder = await mkdtemp(path.join(os.tmpdir(), 'preprocess-icc-'));
    try {
      const profilePath = path.join(folder, 'darker-cmyk.icc');
      await writeFile(profilePath, await darkerCmykProfile());
      // Same CMYK values either way (the darker profile's sRGB->CMYK table is libvips' own); only the embedded profile differs.
      const generic = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).withIccProfile('cmyk').jpeg({ quality: 95 }).toBuffer();
      const darker = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).withIccProfile(profilePath).jpeg({ quality: 95 }).toBuffer();
      for (const cmyk of [generic, darker]) assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
      const inks = (jpeg: Buffer) => sharp(jpeg, { ignoreIcc: true }).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer();
      assert.deepEqual(await inks(darker), await inks(generic), 'the two files hold the same CMYK values');
      const viaGeneric = await preprocessFundusImage(generic, { size: 64 });
      const viaDarker = await preprocessFundusImage(darker, { size: 64 });
      assert.ok(meanAbsoluteDifference(viaGeneric.pixels, srgb.pixels) < 12, `CMYK round trip close to the sRGB original (${meanAbsoluteDifference(viaGeneric.pixels, srgb.pixels).toFixed(1)})`);
      assert.ok(meanValue(viaDarker.pixels) < meanValue(viaGeneric.pixels) - 5, `the darker embedded profile is used (${meanValue(viaDarker.pixels).toFixed(1)} vs ${meanValue(viaGeneric.pixels).toFixed(1)})`);
      for (const result of [viaGeneric, viaDarker]) {
        assertNear(result.crop.x, srgb.crop.x, 2, 'x');
        assertNear(result.crop.y, srgb.crop.y, 2, 'y');
        assertNear(result.crop.side, srgb.crop.side, 2, 'side');
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('drops a semi-transparent alpha: the same crop and pixels as the opaque original', async () => {
    const { rgb, width: w, height: h } = syntheticPhotograph();
    const opaque = await preprocessFundusImage(await encodePng(rgb, w, h), { size: 64 });
    // Opacity 1-254 varying across the frame (a photograph exported with a translucent layer or vignette mask).
    const translucent = withAlpha(rgb, w, h, (x, y) => 1 + ((x * 7 + y * 3) % 254));
    const result = await preprocessFundusImage(await encodePng(translucent, w, h, 4), { size: 64 });
    assert.deepEqual(result.crop, opaque.crop);
    assert.deepEqual(Buffer.from(result.pixels), Buffer.from(opaque.pixels));
    const fullyOpaque = await preprocessFundusImage(await encodePng(withAlpha(rgb, w, h, () => 255), w, h, 4), { size: 64 });
    assert.deepEqual(Buffer.from(fullyOpaque.pixels), Buffer.from(opaque.pixels), 'an opaque alpha channel changes nothing');
  });

  it('drops alpha from grey + alpha as from RGBA', async () => {
    const { rgb, width: w, height: h } = syntheticPhotograph();
    const grey = Buffer.alloc(w * h);
    const greyAlpha = Buffer.alloc(w * h * 2);
    for (let i = 0; i < w * h; i += 1) {
      grey[i] = rgb[i * 3] ?? 0;
      greyAlpha[i * 2] = grey[i]!;
      greyAlpha[i * 2 + 1] = 60 + (i % 190);
    }
    const opaque = await preprocessFundusImage(await sharp(grey, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer(), { size: 48 });
    const result = await preprocessFundusImage(await sharp(greyAlpha, { raw: { width: w, height: h, channels: 2 } }).png().toBuffer(), { size: 48 });
    assert.deepEqual(result.crop, opaque.crop);
    assert.ok(meanAbsoluteDifference(result.pixels, opaque.pixels) <= 0.5, `grey+alpha ${meanAbsoluteDifference(result.pixels, opaque.pixels)}`);
  });

  it('applies EXIF orientation to an image with alpha', async () => {
    const rgba = withAlpha(drawDisc({ width: 300, height: 200, centreX: 90, centreY: 100, radius: 80 }), 300, 200, () => 128);
    const stored = await sharp(rgba, { raw: { width: 300, height: 200, channels: 4 } }).webp({ lossless: true }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(stored).metadata()).orientation, 6);
    const result = await preprocessFundusImage(stored, { size: 32 });
    assert.deepEqual(result.original, { width: 200, height: 300 });
    assertNear(result.crop.x + result.crop.side / 2, 100, 4, 'centre x');
    assertNear(result.crop.y + result.crop.side / 2, 90, 4, 'centre y');
  });

  it('accepts a single-frame GIF like the PNG it was made from', async () => {
    const png = await discPng(disc);
    const gif = await sharp(png).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 1);
    const [fromPng, fromGif] = await Promise.all([preprocessFundusImage(png, { size: 32 }), preprocessFundusImage(gif, { size: 32 })]);
    assertNear(fromGif.crop.side, fromPng.crop.side, 2, 'side');
    assertNear(fromGif.crop.x, fromPng.crop.x, 2, 'x');
    assertNear(fromGif.crop.y, fromPng.crop.y, 2, 'y');
  });
});

describe('sniffImageFormat', () => {
  it('names raster formats by signature and never mistakes other files for them', async () => {
    const frame = await discPng({ width: 80, height: 80, centreX: 40, centreY: 40, radius: 30 });
    const cases: [string, Buffer, ReturnType<typeof sniffImageFormat>][] = [
      ['jpeg', await sharp(frame).jpeg().toBuffer(), 'jpeg'],
      ['png', frame, 'png'],
      ['tiff', await sharp(frame).tiff().toBuffer(), 'tiff'],
      ['big-endian tiff', Buffer.from([0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8]), 'tiff'],
      ['webp', await sharp(frame).webp().toBuffer(), 'webp'],
      ['gif', await sharp(frame).gif().toBuffer(), 'gif'],
      ['avif', await sharp(frame).avif().toBuffer(), 'heif'],
      ['svg', Buffer.from(DISC_SVG), 'svg'],
      ['svgz', gzipSync(Buffer.from(DISC_SVG)), 'svg'],
      ['pdf', Buffer.from('%PDF-1.7\n'), 'pdf'],
      ['an MP4 (ISO-BMFF, video brand)', Buffer.from('\0\0\0\x18ftypisom\0\0\0\0', 'latin1'), undefined],
      ['HTML', Buffer.from('<!doctype html><html><body>fundus</body></html>'), undefined],
      ['gzipped text', gzipSync(Buffer.from('hello')), undefined],
      ['BMP (sharp has no loader)', Buffer.from('BM\0\0\0\0'), undefined],
    ];
    for (const [name, bytes, expected] of cases) assert.equal(sniffImageFormat(bytes), expected, name);
  });
});

describe('preprocessFundusImage errors', () => {
  const SMALL_DISC = { width: 200, height: 160, centreX: 100, centreY: 80, radius: 70 };
  const cases: { name: string; input: () => Promise<Buffer>; code: PreprocessErrorCode; maxInputPixels?: number }[] = [
    { name: 'zero bytes', input: async () => Buffer.alloc(0), code: 'EMPTY_FILE' },
    { name: 'random bytes', input: async () => randomBytes(4096), code: 'NOT_AN_IMAGE' },
    {
      name: 'a truncated PNG',
      input: async () => (await discPng({ width: 200, height: 160, centreX: 100, centreY: 80, radius: 70 })).subarray(0, 60),
      code: 'NOT_AN_IMAGE',
    },
    {
      name: 'an all-black image',
      input: () => sharp({ create: { width: 300, height: 200, channels: 3, background: '#000' } }).jpeg().toBuffer(),
      code: 'NO_FUNDUS',
    },
    {
      name: 'an all-white image',
      input: () => sharp({ create: { width: 300, height: 200, channels: 3, background: '#fff' } }).png().toBuffer(),
      code: 'NO_FUNDUS',
    },
    {
      name: 'a bright region too small to be a fundus',
      input: () => discPng({ width: 400, height: 300, centreX: 200, centreY: 150, radius: 12 }),
      code: 'NO_FUNDUS',
    },
    // Bright, varied, large enough, but not a fundus photograph: each must be refused, not embedded.
    { name: 'a 2x2 image', input: () => discPng({ width: 2, height: 2, centreX: 1, centreY: 1, radius: 1 }), code: 'TOO_SMALL' },
    { name: 'a 1x1000 strip', input: () => sharp({ create: { width: 1, height: 1000, channels: 3, background: '#c86432' } }).png().toBuffer(), code: 'TOO_SMALL' },
    {
      name: 'random colour noise',
      input: () => encodePng(randomBytes(300 * 300 * 3), 300, 300),
      code: 'NO_FUNDUS',
    },
    { name: 'a white page with lines of dark text', input: () => encodePng(drawPage(400, 300), 400, 300), code: 'NO_FUNDUS' },
    { name: 'an orange bar over the left half', input: () => encodePng(drawShape(400, 300, (x) => x < 200), 400, 300), code: 'NO_FUNDUS' },
    {
      name: 'a bright rectangle on black (a card or a screen)',
      input: () => encodePng(drawShape(400, 300, (x, y) => Math.abs(x - 200) < 120 && Math.abs(y - 150) < 90), 400, 300),
      code: 'NO_FUNDUS',
    },
    // Per side, a tilted rectangle's rim is two straight edges; past ~15 degrees the longer covers under 65% of its height.
    ...[3, 12].map((degrees) => ({
      name: `a bright rectangle tilted by ${degrees} degrees`,
      input: () => encodePng(drawShape(400, 300, tiltedRectangle(200, 150, 130, 80, degrees)), 400, 300),
      code: 'NO_FUNDUS' as const,
    })),
    {
      name: 'a page with text lying tilted by 4 degrees on a dark desk',
      input: async () => {
        const page = tiltedRectangle(200, 150, 120, 110, 4);
        const text = tiltedRectangle(200, 150, 100, 90, 4); // inside the page's margins
        const raw = drawShape(400, 300, page);
        // Rows of dark "words" on the page.
        for (let y = 0; y < 300; y += 1) for (let x = 0; x < 400; x += 1) if (text(x, y) && y % 14 < 6 && (x >> 4) % 4 !== 3) raw.fill(25, (y * 400 + x) * 3, (y * 400 + x) * 3 + 3);
        return encodePng(raw, 400, 300);
      },
      code: 'NO_FUNDUS',
    },
    // Drawings and documents are refused before any decoder sees them, whatever type they were declared as.
    { name: 'an SVG drawing of an orange disc on black', input: async () => Buffer.from(DISC_SVG), code: 'VECTOR_IMAGE' },
    {
      name: 'an SVG with a byte-order mark, an XML declaration and a comment',
      input: async () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`<?xml version="1.0"?>\n<!-- exported -->\n${DISC_SVG}`)]),
      code: 'VECTOR_IMAGE',
    },
    { name: 'a gzipped SVG (svgz)', input: async () => gzipSync(Buffer.from(DISC_SVG)), code: 'VECTOR_IMAGE' },
    { name: 'a PDF', input: async () => Buffer.from('%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n'), code: 'NOT_AN_IMAGE' },
    // One frame of several is not a photograph to search by or store: refused, not silently the first frame.
    {
      name: 'an animated GIF of two fundus frames',
      input: async () => multiFrame('gif', [await discPng(SMALL_DISC), await discPng({ ...SMALL_DISC, centreX: 110 })]),
      code: 'MULTI_FRAME_IMAGE',
    },
    {
      name: 'an animated WebP of two fundus frames',
      input: async () => multiFrame('webp', [await discPng(SMALL_DISC), await discPng({ ...SMALL_DISC, centreX: 110 })]),
      code: 'MULTI_FRAME_IMAGE',
    },
    { name: 'a two-page TIFF', input: async () => multiFrame('tiff', [await discPng(SMALL_DISC), await discPng(SMALL_DISC)]), code: 'MULTI_FRAME_IMAGE' },
    { name: 'an animated PNG (acTL, 2 frames)', input: async () => asAnimatedPng(await discPng(SMALL_DISC), 2), code: 'MULTI_FRAME_IMAGE' },
    { name: 'a 20000x20000 PNG header', input: async () => pngHeaderOnly(20000, 20000), code: 'TOO_MANY_PIXELS' },
    {
      name: 'an image over a small configured cap',
      input: () => discPng({ width: 200, height: 160, centreX: 100, centreY: 80, radius: 70 }),
      code: 'TOO_MANY_PIXELS',
      maxInputPixels: 10_000,
    },
  ];
  for (const testCase of cases) {
    it(`rejects ${testCase.name} with ${testCase.code}`, async () => {
      const input = await testCase.input();
      await assert.rejects(preprocessFundusImage(input, { size: 32, maxInputPixels: testCase.maxInputPixels }), (error) => {
        assert.ok(error instanceof PreprocessError, `expected PreprocessError, got ${String(error)}`);
        assert.equal(error.code, testCase.code, error.message);
        assert.ok(error.message.length > 10, 'message names the reason');
        return true;
      });
    });
  }
});
