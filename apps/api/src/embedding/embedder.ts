/**
 * ONNX embedding model wrapper used by the API, the evaluation CLI and anything else that needs embeddings.
 *
 * - Metadata (model version, input size S, embedding dim D) comes from the ONNX `metadata_props` (read by
 *   onnx-metadata.ts, since onnxruntime-node does not expose them); when the file has none, from a sidecar JSON
 *   next to the model (`<model>.onnx.json` or `<model>.json`; keys as in models/contract.json or the short names
 *   model_version / input_size / embedding_dim, at the top level or under "metadata_props" as export.py writes). Without either, loading fails: guessing S would silently
 *   feed the network wrongly sized images.
 * - Device: 'cpu'; 'cuda' (fails with DEVICE_UNAVAILABLE if the CUDA provider cannot be loaded); 'auto' tries CUDA
 *   when listSupportedBackends() lists it and its provider library is installed, and otherwise, or when the CUDA
 *   session cannot be created, uses CPU. On Linux x64 onnxruntime-node always reports cuda as `bundled: false`
 *   (the install script fetches libonnxruntime_providers_cuda.so separately; this project's .npmrc skips that), so
 *   the check looks for that library beside the native binding instead of trusting the flag; attempting CUDA
 *   without it would print onnxruntime's own error line on every CPU machine.
 * - Input: preprocessFundusImage output with size === S, packed as float32 NCHW, RGB 0-255 (no normalisation
 *   here; the model normalises). Images are run in batches of at most `batchSize`; runs are serialised per
 *   embedder because one session is shared.
 * - Output: embedding Float32Array(D), L2-normalised here (so cosine similarity is a dot product); attention is
 *   passed through as the model produced it, shape (h, w) row-major; `featureMap` (C, h, w), what GeM pools, when
 *   the model has the `feature_map` output (models/src/fundus_cbr/region.py).
 * - Region head: `<model>.region.onnx` beside the model, when present, pools a feature map under a cell mask into
 *   an embedding of the same space (search by region, feature correspondence); without it `supportsRegions` is
 *   false and callers answer MODEL_UNAVAILABLE.
 */
import { existsSync, readdirSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { MODEL_CONTRACT } from './contract.js';
import { readOnnxMetadataProps } from './onnx-metadata.js';
import { fundusShareByCell } from './regions.js';
import { DEFAULT_MAX_INPUT_PIXELS, PreprocessError, preprocessFundusImage, type PreprocessedImage, type PreprocessErrorCode } from './preprocess.js';

const { InferenceSession, Tensor, listSupportedBackends } = ort;
type Session = ort.InferenceSession;

export type Device = 'auto' | 'cpu' | 'cuda';
export type ExecutionProvider = 'cuda' | 'cpu';

export type EmbedderErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_INVALID'
  | 'MODEL_METADATA_MISSING'
  | 'DEVICE_UNAVAILABLE'
  | 'INPUT_SIZE_MISMATCH'
  | 'INVALID_OUTPUT';

export class EmbedderError extends Error {
  override readonly name = 'EmbedderError';
  constructor(
    readonly code: EmbedderErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EmbedderLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface ModelMetadata {
  modelVersion: string;
  /** Side S of the square input, pixels. */
  inputSize: number;
  /** Embedding dimension D. */
  embeddingDim: number;
  source: 'onnx-metadata' | 'sidecar';
}

export interface Embedding {
  /** L2-normalised, length D. */
  embedding: Float32Array;
  /** Row-major (height, width), as output by the model. */
  attention: { width: number; height: number; values: Float32Array };
  /** (channels, height, width) row-major: the map GeM pools; absent for models without the `feature_map` output. */
  featureMap?: FeatureMap;
}

export interface FeatureMap {
  channels: number;
  height: number;
  width: number;
  values: Float32Array;
}

export type FileEmbedding =
  | { file: string; ok: true; result: Embedding; preprocessed: Omit<PreprocessedImage, 'pixels'> }
  | { file: string; ok: false; error: { code: PreprocessErrorCode | 'READ_FAILED'; message: string } };

export interface EmbedderLoadOptions {
  modelPath: string;
  device?: Device;
  /** Images per session.run; memory is batchSize * 3 * S * S * 4 bytes for the input alone. */
  batchSize?: number;
  logger?: EmbedderLogger;
}

export class Embedder {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly session: Session,
    readonly metadata: ModelMetadata,
    readonly executionProvider: ExecutionProvider,
    readonly batchSize: number,
    readonly modelPath: string,
    private readonly regionSession: Session | null = null,
  ) {}

  static async load(options: EmbedderLoadOptions): Promise<Embedder> {
    const { modelPath } = options;
    const device = options.device ?? 'auto';
    const batchSize = options.batchSize ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);

    let model: Buffer;
    try {
      model = await readFile(modelPath);
    } catch (error) {
      throw new EmbedderError('MODEL_NOT_FOUND', `Cannot read the model file ${modelPath}: ${(error as Error).message}`, { cause: error });
    }
    const metadata = await readModelMetadata(modelPath, model);
    const { session, executionProvider } = await createSession(model, modelPath, device, options.logger);
    checkSessionAgainstContract(session, metadata, modelPath);
    const regionSession = await loadRegionHead(modelPath, session);
    options.logger?.info(
      `embedding model ${metadata.modelVersion} loaded from ${modelPath} on ${executionProvider} ` +
        `(input ${metadata.inputSize}px, ${metadata.embeddingDim}-d, metadata from ${metadata.source}, region head ${regionSession ? 'loaded' : 'absent'})`,
    );
    return new Embedder(session, metadata, executionProvider, batchSize, modelPath, regionSession);
  }

  /** Whether this model can pool regions (feature_map output and a region head beside it). */
  get supportsRegions(): boolean {
    return this.regionSession !== null;
  }

  /**
   * Embeddings of one feature map pooled under each mask (height x width cell weights, row-major, not all zero),
   * L2-normalised, in the space of the whole-image embeddings. Batched: one run per `batchSize * 4` masks.
   */
  async embedRegions(featureMap: FeatureMap, masks: readonly Float32Array[]): Promise<Float32Array[]> {
    const head = this.regionSession;
    if (!head) throw new EmbedderError('INVALID_OUTPUT', `${this.modelPath} has no region head (${regionHeadPath(this.modelPath)}).`);
    const cells = featureMap.height * featureMap.width;
    const results: Float32Array[] = [];
    const chunk = this.batchSize * 4;
    for (let start = 0; start < masks.length; start += chunk) {
      const batch = masks.slice(start, start + chunk);
      const maps = new Float32Array(batch.length * featureMap.values.length);
      const weights = new Float32Array(batch.length * cells);
      batch.forEach((mask, index) => {
        if (mask.length !== cells) throw new RangeError(`mask has ${mask.length} cells, the feature map ${cells}`);
        maps.set(featureMap.values, index * featureMap.values.length);
        weights.set(mask, index * cells);
      });
      const outputs = await this.serialise(() =>
        head.run({
          [MODEL_CONTRACT.regionHead.featureMapInput]: new Tensor('float32', maps, [batch.length, featureMap.channels, featureMap.height, featureMap.width]),
          [MODEL_CONTRACT.regionHead.maskInput]: new Tensor('float32', weights, [batch.length, 1, featureMap.height, featureMap.width]),
        }),
      );
      const embedding = outputs[MODEL_CONTRACT.regionHead.embeddingOutput];
      if (!embedding) throw new EmbedderError('INVALID_OUTPUT', 'The region head returned no embedding.');
      const dim = this.metadata.embeddingDim;
      const data = embedding.data as Float32Array;
      batch.forEach((_, index) => results.push(normaliseL2(data.slice(index * dim, (index + 1) * dim))));
    }
    return results;
  }

  get inputSize(): number {
    return this.metadata.inputSize;
  }

  /** Embeds preprocessed images (size must equal the model's input size), in order. */
  async embed(images: readonly PreprocessedImage[]): Promise<Embedding[]> {
    for (const image of images) {
      if (image.size !== this.metadata.inputSize || image.pixels.length !== image.size * image.size * 3) {
        throw new EmbedderError(
          'INPUT_SIZE_MISMATCH',
          `The model expects ${this.metadata.inputSize}x${this.metadata.inputSize} RGB input, got size ${image.size} with ${image.pixels.length} values.`,
        );
      }
    }
    const results: Embedding[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const batch = images.slice(start, start + this.batchSize);
      results.push(...(await this.serialise(() => this.runBatch(batch))));
    }
    return results;
  }

  /**
   * One uploaded image end to end: preprocessing at the model's input size, then embedding. Throws
   * PreprocessError (a PreprocessErrorCode: NOT_AN_IMAGE, VECTOR_IMAGE, NO_FUNDUS, ...) for input a user can fix.
   */
  async embedImage(input: Buffer, options: { maxInputPixels?: number } = {}): Promise<Embedding & { preprocessed: Omit<PreprocessedImage, 'pixels'>; fundusShare?: Float32Array }> {
    const image = await preprocessFundusImage(input, { size: this.metadata.inputSize, maxInputPixels: options.maxInputPixels });
    const [result] = await this.embed([image]);
    if (!result) throw new Error('embed returned no result for one image');
    const { pixels, ...preprocessed } = image;
    // Which feature cells are photograph, for feature correspondence (regions.ts); only models with a feature map.
    const fundusShare = result.featureMap ? fundusShareByCell(pixels, image.size, result.featureMap.height, result.featureMap.width) : undefined;
    return { ...result, preprocessed, ...(fundusShare ? { fundusShare } : {}) };
  }

  /**
   * Reads, preprocesses and embeds files; a file that cannot be read or preprocessed gets `ok: false` with the
   * reason and the others go on. Works in chunks of batchSize so memory does not grow with the number of files.
   */
  async embedFiles(
    files: readonly string[],
    options: { maxInputPixels?: number; concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<FileEmbedding[]> {
    const results: FileEmbedding[] = [];
    const concurrency = options.concurrency ?? 2;
    for (let start = 0; start < files.length; start += this.batchSize) {
      const chunk = files.slice(start, start + this.batchSize);
      const prepared: (PreprocessedImage | FileEmbedding)[] = new Array(chunk.length);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, chunk.length) }, async () => {
          while (next < chunk.length) {
            const index = next;
            next += 1;
            prepared[index] = await this.prepareFile(chunk[index] ?? '', options.maxInputPixels);
          }
        }),
      );
      const images = prepared.filter((item): item is PreprocessedImage => 'pixels' in item);
      const embeddings = await this.embed(images);
      let embeddingIndex = 0;
      prepared.forEach((item, index) => {
        if ('pixels' in item) {
          const { pixels: _pixels, ...geometry } = item;
          const result = embeddings[embeddingIndex++];
          if (!result) throw new Error('embedding count does not match image count');
          results.push({ file: chunk[index] ?? '', ok: true, result, preprocessed: geometry });
        } else {
          results.push(item);
        }
      });
      options.onProgress?.(Math.min(start + chunk.length, files.length), files.length);
    }
    return results;
  }

  async release(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.session.release();
    await this.regionSession?.release();
  }

  private async prepareFile(file: string, maxInputPixels: number | undefined): Promise<PreprocessedImage | FileEmbedding> {
    let input: Buffer;
    try {
      input = await readFile(file);
    } catch (error) {
      return { file, ok: false, error: { code: 'READ_FAILED', message: (error as Error).message } };
    }
    try {
      return await preprocessFundusImage(input, { size: this.metadata.inputSize, maxInputPixels: maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS });
    } catch (error) {
      if (error instanceof PreprocessError) return { file, ok: false, error: { code: error.code, message: error.message } };
      throw error;
    }
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runBatch(batch: readonly PreprocessedImage[]): Promise<Embedding[]> {
    const size = this.metadata.inputSize;
    const plane = size * size;
    // HWC uint8 -> NCHW float32, values unchanged (0-255).
    const input = new Float32Array(batch.length * 3 * plane);
    batch.forEach((image, b) => {
      const offset = b * 3 * plane;
      const { pixels } = image;
      for (let i = 0; i < plane; i += 1) {
        input[offset + i] = pixels[i * 3] ?? 0;
        input[offset + plane + i] = pixels[i * 3 + 1] ?? 0;
        input[offset + 2 * plane + i] = pixels[i * 3 + 2] ?? 0;
      }
    });
    const feeds = { [MODEL_CONTRACT.inputName]: new Tensor('float32', input, [batch.length, 3, size, size]) };
    const outputs = await this.session.run(feeds);
    const embedding = outputs[MODEL_CONTRACT.embeddingOutput];
    const attention = outputs[MODEL_CONTRACT.attentionOutput];
    if (!embedding || !attention) throw new EmbedderError('INVALID_OUTPUT', 'The model did not return both embedding and attention.');
    const dim = this.metadata.embeddingDim;
    if (embedding.dims.length !== 2 || embedding.dims[0] !== batch.length || embedding.dims[1] !== dim) {
      throw new EmbedderError('INVALID_OUTPUT', `embedding has shape [${embedding.dims.join(', ')}], expected [${batch.length}, ${dim}].`);
    }
    if (attention.dims.length !== 3 || attention.dims[0] !== batch.length) {
      throw new EmbedderError('INVALID_OUTPUT', `attention has shape [${attention.dims.join(', ')}], expected [${batch.length}, h, w].`);
    }
    const height = attention.dims[1] ?? 0;
    const width = attention.dims[2] ?? 0;
    const embeddingData = embedding.data as Float32Array;
    const attentionData = attention.data as Float32Array;
    const featureMap = outputs[MODEL_CONTRACT.featureMapOutput];
    const [, channels = 0, mapHeight = 0, mapWidth = 0] = featureMap?.dims ?? [];
    const mapSize = channels * mapHeight * mapWidth;
    return batch.map((_, b) => ({
      embedding: normaliseL2(embeddingData.slice(b * dim, (b + 1) * dim)),
      attention: { width, height, values: attentionData.slice(b * width * height, (b + 1) * width * height) },
      ...(featureMap && featureMap.dims.length === 4
        ? { featureMap: { channels, height: mapHeight, width: mapWidth, values: (featureMap.data as Float32Array).slice(b * mapSize, (b + 1) * mapSize) } }
        : {}),
    }));
  }
}

/** In place; throws INVALID_OUTPUT for a zero or non-finite vector (it would match everything or nothing). */
export function normaliseL2(vector: Float32Array): Float32Array {
  let sumOfSquares = 0;
  for (const value of vector) sumOfSquares += value * value;
  const norm = Math.sqrt(sumOfSquares);
  if (!Number.isFinite(norm) || norm === 0) {
    throw new EmbedderError('INVALID_OUTPUT', `The model returned an embedding with norm ${norm}; cannot normalise.`);
  }
  for (let i = 0; i < vector.length; i += 1) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

async function readModelMetadata(modelPath: string, model: Uint8Array): Promise<ModelMetadata> {
  let props: Map<string, string>;
  try {
    props = readOnnxMetadataProps(model);
  } catch (error) {
    throw new EmbedderError('MODEL_INVALID', `${modelPath} is not a valid ONNX model: ${(error as Error).message}`, { cause: error });
  }
  const keys = MODEL_CONTRACT.metadataKeys;
  if (props.has(keys.inputSize)) return parseMetadata(Object.fromEntries(props), modelPath, 'onnx-metadata');

  const candidates = [`${modelPath}.json`, modelPath.replace(/\.onnx$/i, '.json')];
  for (const sidecar of candidates) {
    if (sidecar === modelPath || !(await fileExists(sidecar))) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(sidecar, 'utf8'));
    } catch (error) {
      throw new EmbedderError('MODEL_METADATA_MISSING', `The sidecar ${sidecar} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
    if (typeof parsed !== 'object' || parsed === null) throw new EmbedderError('MODEL_METADATA_MISSING', `The sidecar ${sidecar} is not a JSON object.`);
    // models/src/fundus_cbr/export.py nests the keys under "metadata_props"; flat files are accepted too.
    const record = parsed as Record<string, unknown>;
    const nested = record['metadata_props'];
    return parseMetadata(typeof nested === 'object' && nested !== null ? (nested as Record<string, unknown>) : record, sidecar, 'sidecar');
  }
  throw new EmbedderError(
    'MODEL_METADATA_MISSING',
    `${modelPath} has no ${keys.inputSize} metadata and no sidecar (${candidates.join(' or ')}); re-export the model with its metadata.`,
  );
}

function parseMetadata(record: Record<string, unknown>, source: string, kind: ModelMetadata['source']): ModelMetadata {
  const keys = MODEL_CONTRACT.metadataKeys;
  const pick = (long: string, short: string): unknown => record[long] ?? record[short];
  const inputSize = Number(pick(keys.inputSize, 'input_size'));
  const embeddingDim = Number(pick(keys.embeddingDim, 'embedding_dim') ?? MODEL_CONTRACT.embeddingDim);
  const modelVersion = String(pick(keys.modelVersion, 'model_version') ?? 'unknown');
  if (!Number.isInteger(inputSize) || inputSize < 8) {
    throw new EmbedderError('MODEL_METADATA_MISSING', `${source}: input size "${String(pick(keys.inputSize, 'input_size'))}" is not a usable integer.`);
  }
  if (!Number.isInteger(embeddingDim) || embeddingDim < 1) {
    throw new EmbedderError('MODEL_METADATA_MISSING', `${source}: embedding dim "${String(pick(keys.embeddingDim, 'embedding_dim'))}" is not a positive integer.`);
  }
  return { modelVersion, inputSize, embeddingDim, source: kind };
}

/**
 * onnxruntime's intra-op worker threads spin-wait after every run by default, to pick up the next parallel section
 * sooner. In this process the main thread does JavaScript between runs (preprocessing, database writes, PGlite),
 * so on the 2-core machine a spinning worker burnt the second core that libvips and the main thread needed:
 * ingestion used 103-117 ms of CPU per image with spinning and 71-77 ms without, while a back-to-back inference
 * takes 10-11 ms either way (bench/README.md).
 */
const CPU_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

async function createSession(
  model: Uint8Array,
  modelPath: string,
  device: Device,
  logger: EmbedderLogger | undefined,
): Promise<{ session: Session; executionProvider: ExecutionProvider }> {
  if (device === 'cuda' || (device === 'auto' && isCudaProviderInstalled())) {
    try {
      const session = await InferenceSession.create(model, { executionProviders: ['cuda'] });
      return { session, executionProvider: 'cuda' };
    } catch (error) {
      if (device === 'cuda') {
        throw new EmbedderError('DEVICE_UNAVAILABLE', `The CUDA execution provider could not be used: ${(error as Error).message}`, { cause: error });
      }
      logger?.info(`CUDA execution provider unavailable (${(error as Error).message.split('\n')[0]}); using CPU`);
    }
  }
  try {
    return { session: await InferenceSession.create(model, CPU_SESSION_OPTIONS), executionProvider: 'cpu' };
  } catch (error) {
    throw new EmbedderError('MODEL_INVALID', `onnxruntime could not load ${modelPath}: ${(error as Error).message}`, { cause: error });
  }
}

/** models/fundus-cbr.onnx -> models/fundus-cbr.region.onnx (models/src/fundus_cbr/region.py writes it). */
export function regionHeadPath(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '') + MODEL_CONTRACT.regionHead.fileSuffix;
}

/** The region head, when it is beside the model and the model has the feature_map output; null otherwise. */
async function loadRegionHead(modelPath: string, session: Session): Promise<Session | null> {
  const headPath = regionHeadPath(modelPath);
  if (!session.outputNames.includes(MODEL_CONTRACT.featureMapOutput) || !(await fileExists(headPath))) return null;
  try {
    return await InferenceSession.create(await readFile(headPath), CPU_SESSION_OPTIONS);
  } catch (error) {
    throw new EmbedderError('MODEL_INVALID', `onnxruntime could not load the region head ${headPath}: ${(error as Error).message}`, { cause: error });
  }
}

/** Fails at load, not at the first request, when the file does not follow models/contract.json. */
function checkSessionAgainstContract(session: Session, metadata: ModelMetadata, modelPath: string): void {
  const missing = [MODEL_CONTRACT.inputName, MODEL_CONTRACT.embeddingOutput, MODEL_CONTRACT.attentionOutput].filter(
    (name) => !session.inputNames.includes(name) && !session.outputNames.includes(name),
  );
  if (missing.length > 0) {
    throw new EmbedderError(
      'MODEL_INVALID',
      `${modelPath} lacks ${missing.join(', ')} (inputs: ${session.inputNames.join(', ')}; outputs: ${session.outputNames.join(', ')}).`,
    );
  }
  const input = session.inputMetadata.find((item) => item.name === MODEL_CONTRACT.inputName);
  if (input && input.isTensor) {
    const [, channels, height, width] = input.shape;
    const conflicts =
      (typeof channels === 'number' && channels !== 3) ||
      (typeof height === 'number' && height !== metadata.inputSize) ||
      (typeof width === 'number' && width !== metadata.inputSize);
    if (conflicts) {
      throw new EmbedderError('MODEL_INVALID', `${modelPath}: input shape [${input.shape.join(', ')}] disagrees with input size ${metadata.inputSize}.`);
    }
  }
}

/** Whether onnxruntime-node was installed with its CUDA provider library (npm's default here skips it: .npmrc). */
export function isCudaProviderInstalled(): boolean {
  if (!listSupportedBackends().some((backend) => backend.name === 'cuda')) return false;
  try {
    const packageRoot = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const bindingRoot = path.join(packageRoot, 'bin');
    return readdirSync(bindingRoot).some((napi) =>
      existsSync(path.join(bindingRoot, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so')),
    );
  } catch {
    return false;
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
