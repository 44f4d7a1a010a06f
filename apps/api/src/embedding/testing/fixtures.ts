/**
 * Test helpers shared by embedding and evaluation tests: paths of the committed tiny ONNX models
 * (made by make-tiny-model.py) and synthetic images. Never real data.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { PreprocessedImage } from '../preprocess.js';

/** Repository root, from apps/api/dist/embedding/testing/. */
export const REPOSITORY_ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../..');
export const TINY_MODEL = path.join(REPOSITORY_ROOT, 'test/fixtures/models/tiny-fundus-cbr.onnx');
export const TINY_MODEL_WITH_SIDECAR = path.join(REPOSITORY_ROOT, 'test/fixtures/models/tiny-fundus-cbr-sidecar.onnx');
/** With the contract's feature_map output (8 x 8 grid) and its region head beside it (`.region.onnx`). */
export const TINY_REGION_MODEL = path.join(REPOSITORY_ROOT, 'test/fixtures/models/tiny-fundus-cbr-regions.onnx');
export const TINY_MODEL_INPUT_SIZE = 64;

/** Deterministic pseudo-random image (seeded LCG), already "preprocessed" to size x size. */
export function makeSyntheticPreprocessedImage(seed: number, size = TINY_MODEL_INPUT_SIZE): PreprocessedImage {
  const pixels = new Uint8Array(size * size * 3);
  let state = (seed * 2654435761) >>> 0;
  for (let i = 0; i < pixels.length; i += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    pixels[i] = state >>> 24;
  }
  return {
    pixels,
    size,
    original: { width: size, height: size },
    crop: { x: 0, y: 0, side: size },
    fundusFound: true,
    fundusAreaFraction: 1,
  };
}

/** PNG of a bright orange disc with some texture on black, `width` x `height`, disc hue varied by `tint`. */
export async function makeSyntheticFundusPng(options: { width: number; height: number; tint: number }): Promise<Buffer> {
  const { width, height, tint } = options;
  const data = Buffer.alloc(width * height * 3);
  const radius = Math.min(width, height) * 0.45;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (Math.hypot(x - width / 2, y - height / 2) > radius) continue;
      const base = (y * width + x) * 3;
      data[base] = 200;
      data[base + 1] = Math.round(60 + 60 * tint + 20 * Math.sin(x / 5));
      data[base + 2] = Math.round(30 + 20 * Math.cos(y / (3 + tint)));
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export const CLI_DIRECTORY = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../cli');

export interface SyntheticImage {
  name: string;
  patientId: string;
  eye: 'L' | 'R';
  grade: number;
  /** 'fundus' draws a disc (tint = grade / 4); the others write a bad file of that kind. */
  kind: 'fundus' | 'empty' | 'garbage' | 'black';
}

/** Writes `<directory>/labels.csv` + `<directory>/images/<name>` for the given images. */
export async function writeSyntheticSet(directory: string, images: readonly SyntheticImage[]): Promise<void> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  await mkdir(path.join(directory, 'images'), { recursive: true });
  for (const [index, image] of images.entries()) {
    let bytes: Buffer;
    if (image.kind === 'fundus') bytes = await makeSyntheticFundusPng({ width: 160 + index * 8, height: 120 + index * 4, tint: image.grade / 4 });
    else if (image.kind === 'empty') bytes = Buffer.alloc(0);
    else if (image.kind === 'garbage') bytes = Buffer.from('definitely not an image'.repeat(20));
    else bytes = await sharp({ create: { width: 120, height: 90, channels: 3, background: '#000' } }).png().toBuffer();
    await writeFile(path.join(directory, 'images', image.name), bytes);
  }
  const rows = images.map((image) => `images/${image.name},${image.patientId},${image.eye},${image.grade}`);
  await writeFile(path.join(directory, 'labels.csv'), `image,patient_id,eye,grade\n${rows.join('\n')}\n`);
}
