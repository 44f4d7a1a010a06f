import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MODEL_CONTRACT } from './contract.js';
import { readOnnxMetadataProps } from './onnx-metadata.js';
import { REPOSITORY_ROOT, TINY_MODEL, TINY_MODEL_WITH_SIDECAR } from './testing/fixtures.js';

describe('model contract', () => {
  it('matches models/contract.json', async () => {
    const contract = JSON.parse(await readFile(path.join(REPOSITORY_ROOT, 'models/contract.json'), 'utf8'));
    assert.deepEqual(
      {
        inputName: contract.input_name,
        embeddingOutput: contract.embedding_output,
        attentionOutput: contract.attention_output,
        featureMapOutput: contract.feature_map_output,
        regionHead: {
          fileSuffix: contract.region_head.file_suffix,
          featureMapInput: contract.region_head.feature_map_input,
          maskInput: contract.region_head.mask_input,
          embeddingOutput: contract.region_head.embedding_output,
        },
        embeddingDim: contract.embedding_dim,
        metadataKeys: {
          modelVersion: contract.metadata_keys.model_version,
          inputSize: contract.metadata_keys.input_size,
          embeddingDim: contract.metadata_keys.embedding_dim,
        },
      },
      MODEL_CONTRACT,
    );
    assert.equal(contract.input_layout, 'NCHW');
    assert.equal(contract.input_dtype, 'float32');
  });
});

describe('readOnnxMetadataProps', () => {
  it('reads the metadata the export wrote', async () => {
    const props = readOnnxMetadataProps(await readFile(TINY_MODEL));
    assert.deepEqual(Object.fromEntries(props), {
      'fundus_cbr.model_version': 'tiny-test-1',
      'fundus_cbr.input_size': '64',
      'fundus_cbr.embedding_dim': '128',
    });
  });

  it('returns nothing for a model without metadata', async () => {
    assert.equal(readOnnxMetadataProps(await readFile(TINY_MODEL_WITH_SIDECAR)).size, 0);
  });

  it('throws on a truncated file', async () => {
    const model = await readFile(TINY_MODEL);
    assert.throws(() => readOnnxMetadataProps(model.subarray(0, model.length - 50)), /ONNX protobuf/);
  });
});
