import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Embedder, EmbedderError, isCudaProviderInstalled, type EmbedderErrorCode } from './embedder.js';
import { PreprocessError } from './preprocess.js';
import {
  makeSyntheticFundusPng,
  makeSyntheticPreprocessedImage,
  TINY_MODEL,
  TINY_MODEL_INPUT_SIZE,
  TINY_MODEL_WITH_SIDECAR,
  TINY_REGION_MODEL,
} from './testing/fixtures.js';

function l2Norm(vector: Float32Array): number {
  return Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
}

function maxAbsoluteDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - (b[i] ?? Number.NaN))), 0);
}

async function assertRejectsWithCode(promise: Promise<unknown>, code: EmbedderErrorCode, messagePart?: string): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof EmbedderError, `expected EmbedderError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (messagePart) assert.ok(error.message.includes(messagePart), `"${error.message}" should mention ${messagePart}`);
    return true;
  });
}

describe('Embedder with the tiny contract model', () => {
  let embedder: Embedder;
  before(async () => {
    embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu', batchSize: 2 });
  });
  after(async () => {
    await embedder.release();
  });

  it('reads input size, dimension and version from the ONNX metadata', () => {
    assert.deepEqual(embedder.metadata, { modelVersion: 'tiny-test-1', inputSize: 64, embeddingDim: 128, source: 'onnx-metadata' });
    assert.equal(embedder.executionProvider, 'cpu');
  });

  it('returns one L2-normalised 128-d embedding and a 16x16 attention map per image', async () => {
    const images = [1, 2, 3].map((seed) => makeSyntheticPreprocessedImage(seed));
    const results = await embedder.embed(images);
    assert.equal(results.length, 3);
    for (const result of results) {
      assert.equal(result.embedding.length, 128);
      assert.ok(Math.abs(l2Norm(result.embedding) - 1) < 1e-5, `norm ${l2Norm(result.embedding)}`);
      assert.equal(result.attention.width, 16);
      assert.equal(result.attention.height, 16);
      assert.equal(result.attention.values.length, 256);
      const attentionSum = result.attention.values.reduce((sum, value) => sum + value, 0);
      assert.ok(Math.abs(attentionSum - 1) < 1e-4, `the tiny model's softmax attention sums to 1, got ${attentionSum}`);
    }
    assert.ok(maxAbsoluteDifference(results[0]!.embedding, results[1]!.embedding) > 1e-3, 'different images, different embeddings');
  });

  it('gives the same embedding for an image in a batch of 5 (batch size 2) as alone', async () => {
    const images = [11, 12, 13, 14, 15].map((seed) => makeSyntheticPreprocessedImage(seed));
    const batched = await embedder.embed(images);
    for (const [index, image] of images.entries()) {
      const [single] = await embedder.embed([image]);
      assert.ok(single);
      assert.ok(maxAbsoluteDifference(single.embedding, batched[index]!.embedding) < 1e-5);
      assert.ok(maxAbsoluteDifference(single.attention.values, batched[index]!.attention.values) < 1e-6);
    }
  });

  it('returns an empty list for no images', async () => {
    assert.deepEqual(await embedder.embed([]), []);
  });

  it('refuses images of the wrong size', async () => {
    await assertRejectsWithCode(embedder.embed([makeSyntheticPreprocessedImage(1, 32)]), 'INPUT_SIZE_MISMATCH', '64x64');
  });

  it('embeds one uploaded image buffer like embedFiles does, and rejects a bad one with its PreprocessError code', async () => {
    const png = await makeSyntheticFundusPng({ width: 140, height: 100, tint: 0.3 });
    const single = await embedder.embedImage(png);
    assert.equal(single.embedding.length, 128);
    assert.deepEqual(single.preprocessed.original, { width: 140, height: 100 });
    const directory = await mkdtemp(path.join(tmpdir(), 'embed-image-'));
    try {
      await writeFile(path.join(directory, 'a.png'), png);
      const [fromFile] = await embedder.embedFiles([path.join(directory, 'a.png')]);
      assert.ok(fromFile?.ok);
      assert.ok(maxAbsoluteDifference(fromFile.result.embedding, single.embedding) < 1e-6);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
    await assert.rejects(embedder.embedImage(Buffer.alloc(0)), (error) => error instanceof PreprocessError && error.code === 'EMPTY_FILE');
  });

  it('embeds files and reports unreadable or bad ones without stopping', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'embed-files-'));
    try {
      const good = path.join(directory, 'good.png');
      const other = path.join(directory, 'other.png');
      const empty = path.join(directory, 'empty.jpg');
      await writeFile(good, await makeSyntheticFundusPng({ width: 120, height: 90, tint: 0 }));
      await writeFile(other, await makeSyntheticFundusPng({ width: 100, height: 100, tint: 1 }));
      await writeFile(empty, Buffer.alloc(0));
      const missing = path.join(directory, 'missing.png');
      const results = await embedder.embedFiles([good, empty, missing, other]);
      assert.deepEqual(
        results.map((result) => [path.basename(result.file), result.ok ? 'ok' : result.error.code]),
        [
          ['good.png', 'ok'],
          ['empty.jpg', 'EMPTY_FILE'],
          ['missing.png', 'READ_FAILED'],
          ['other.png', 'ok'],
        ],
      );
      const first = results[0];
      assert.ok(first?.ok);
      assert.deepEqual(first.preprocessed.original, { width: 120, height: 90 });
      assert.ok(Math.abs(l2Norm(first.result.embedding) - 1) < 1e-5);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('Embedder with the tiny region model (feature_map output and region head)', () => {
  let embedder: Embedder;
  before(async () => {
    embedder = await Embedder.load({ modelPath: TINY_REGION_MODEL, device: 'cpu', batchSize: 2 });
  });
  after(async () => {
    await embedder.release();
  });

  it('loads the region head beside it, under a model version of its own', async () => {
    assert.deepEqual(embedder.metadata, { modelVersion: 'tiny-test-regions-1', inputSize: 64, embeddingDim: 128, source: 'onnx-metadata' });
    assert.equal(embedder.supportsRegions, true);
    const plain = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
    try {
      assert.equal(plain.supportsRegions, false, 'the plain tiny model has neither output nor head');
      assert.notEqual(plain.metadata.modelVersion, embedder.metadata.modelVersion);
    } finally {
      await plain.release();
    }
  });

  it('returns the 16-channel 8x8 feature map GeM pools, with the fundus share of each cell', async () => {
    const embedded = await embedder.embedImage(await makeSyntheticFundusPng({ width: 160, height: 120, tint: 0.4 }));
    assert.ok(embedded.featureMap);
    assert.deepEqual([embedded.featureMap.channels, embedded.featureMap.height, embedded.featureMap.width], [16, 8, 8]);
    assert.equal(embedded.featureMap.values.length, 16 * 64);
    assert.ok(embedded.featureMap.values.every((value) => value > 0), 'ReLU + 0.05: every cell above GeM clamp');
    assert.deepEqual([embedded.attention.width, embedded.attention.height], [8, 8]);
    assert.equal(embedded.fundusShare?.length, 64);
    assert.ok(embedded.fundusShare!.some((share) => share > 0.9) && embedded.fundusShare!.some((share) => share < 0.1), 'disc cells and surround cells');
  });

  it('pools a mask of ones into the whole-image embedding; a region gives another unit vector; the mask weights are relative', async () => {
    const [image] = await embedder.embed([makeSyntheticPreprocessedImage(21)]);
    assert.ok(image?.featureMap);
    const ones = new Float32Array(64).fill(1);
    const half = new Float32Array(64).map((_, cell) => (cell % 8 < 4 ? 1 : 0));
    const [whole, region, scaled] = await embedder.embedRegions(image.featureMap, [ones, half, half.map((weight) => weight * 0.25)]);
    assert.ok(maxAbsoluteDifference(whole!, image.embedding) < 1e-5, 'the region head of the whole grid is the model');
    assert.ok(Math.abs(l2Norm(region!) - 1) < 1e-5);
    assert.ok(maxAbsoluteDifference(region!, whole!) > 1e-3, 'half the grid is not the whole photograph');
    assert.ok(maxAbsoluteDifference(region!, scaled!) < 1e-5, 'GeM over the mask divides by its sum');
  });
});

describe('Embedder.load', () => {
  it('falls back to the sidecar JSON when the ONNX file has no metadata, with identical outputs', async () => {
    const withMetadata = await Embedder.load({ modelPath: TINY_MODEL, device: 'cpu' });
    const withSidecar = await Embedder.load({ modelPath: TINY_MODEL_WITH_SIDECAR, device: 'cpu' });
    try {
      assert.equal(withSidecar.metadata.source, 'sidecar');
      assert.equal(withSidecar.metadata.inputSize, TINY_MODEL_INPUT_SIZE);
      const image = makeSyntheticPreprocessedImage(7);
      const [a] = await withMetadata.embed([image]);
      const [b] = await withSidecar.embed([image]);
      assert.ok(a && b);
      assert.ok(maxAbsoluteDifference(a.embedding, b.embedding) < 1e-6);
    } finally {
      await withMetadata.release();
      await withSidecar.release();
    }
  });

  it('on auto, uses CPU when the CUDA provider is not installed (CUDA or a logged fallback when it is) and says which', async () => {
    const lines: string[] = [];
    const embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'auto', logger: { info: (line) => lines.push(line), warn: (line) => lines.push(line) } });
    try {
      if (!isCudaProviderInstalled()) {
        assert.equal(embedder.executionProvider, 'cpu');
      } else if (embedder.executionProvider === 'cpu') {
        assert.ok(lines.some((line) => /CUDA execution provider unavailable/.test(line)), lines.join('\n'));
      }
      assert.ok(lines.some((line) => line.includes(`loaded from ${TINY_MODEL} on ${embedder.executionProvider}`)), lines.join('\n'));
      const [result] = await embedder.embed([makeSyntheticPreprocessedImage(3)]);
      assert.equal(result?.embedding.length, 128);
    } finally {
      await embedder.release();
    }
  });

  it('refuses device cuda with DEVICE_UNAVAILABLE when the CUDA provider is not installed (never a silent CPU)', async () => {
    let embedder: Embedder | undefined;
    try {
      embedder = await Embedder.load({ modelPath: TINY_MODEL, device: 'cuda' });
    } catch (error) {
      assert.ok(error instanceof EmbedderError && error.code === 'DEVICE_UNAVAILABLE', String(error));
      return;
    }
    try {
      // Only reachable where the provider is installed and a GPU answers.
      assert.ok(isCudaProviderInstalled(), 'cuda was demanded, the provider is not installed, and load still succeeded');
      assert.equal(embedder.executionProvider, 'cuda');
    } finally {
      await embedder.release();
    }
  });

  it('fails clearly for a missing file, a non-ONNX file, a model without metadata and a sidecar contradicting the model', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'embedder-load-'));
    try {
      const missing = path.join(directory, 'nope.onnx');
      await assertRejectsWithCode(Embedder.load({ modelPath: missing, device: 'cpu' }), 'MODEL_NOT_FOUND', missing);

      const garbage = path.join(directory, 'garbage.onnx');
      await writeFile(garbage, 'this is not a model');
      await assertRejectsWithCode(Embedder.load({ modelPath: garbage, device: 'cpu' }), 'MODEL_INVALID', garbage);

      const bare = path.join(directory, 'bare.onnx');
      await copyFile(TINY_MODEL_WITH_SIDECAR, bare);
      await assertRejectsWithCode(Embedder.load({ modelPath: bare, device: 'cpu' }), 'MODEL_METADATA_MISSING', 'fundus_cbr.input_size');

      // The export's sidecar format: <model>.onnx.json with the keys under "metadata_props".
      await writeFile(
        `${bare}.json`,
        JSON.stringify({ metadata_props: { 'fundus_cbr.model_version': 'nested-1', 'fundus_cbr.input_size': '64', 'fundus_cbr.embedding_dim': '128' } }),
      );
      const nested = await Embedder.load({ modelPath: bare, device: 'cpu' });
      assert.deepEqual(nested.metadata, { modelVersion: 'nested-1', inputSize: 64, embeddingDim: 128, source: 'sidecar' });
      await nested.release();

      await writeFile(`${bare}.json`, JSON.stringify({ metadata_props: { 'fundus_cbr.input_size': '32' } }));
      await assertRejectsWithCode(Embedder.load({ modelPath: bare, device: 'cpu' }), 'MODEL_INVALID', 'disagrees with input size 32');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
