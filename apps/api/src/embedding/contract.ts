/**
 * The ONNX interface shared with the PyTorch export, mirrored from models/contract.json (the source of truth;
 * contract.test.ts fails when the two drift). Kept as TypeScript constants because that JSON lives outside this
 * package's rootDir.
 *
 * input  `image`      (B, 3, S, S) float32, RGB 0-255 straight from preprocessFundusImage; the model normalises
 * output `embedding`  (B, D) float32, D = 128; the wrapper L2-normalises it again (cheap, and makes cosine = dot)
 * output `attention`  (B, h, w) float32, spatial attention over the image, h and w model-specific
 * output `feature_map` (B, C, h, w) float32, what GeM pools (optional: region search and explanation need it)
 * region head `<model>.region.onnx`: feature_map + region_mask (B, 1, h, w) -> embedding (B, D) (optional)
 */
export const MODEL_CONTRACT = {
  inputName: 'image',
  embeddingOutput: 'embedding',
  attentionOutput: 'attention',
  featureMapOutput: 'feature_map',
  regionHead: { fileSuffix: '.region.onnx', featureMapInput: 'feature_map', maskInput: 'region_mask', embeddingOutput: 'embedding' },
  embeddingDim: 128,
  metadataKeys: {
    modelVersion: 'fundus_cbr.model_version',
    inputSize: 'fundus_cbr.input_size',
    embeddingDim: 'fundus_cbr.embedding_dim',
  },
} as const;
