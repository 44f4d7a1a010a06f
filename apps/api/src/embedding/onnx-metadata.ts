/**
 * Reads an ONNX file's `metadata_props` (ModelProto field 14, repeated StringStringEntryProto {1: key, 2: value}).
 *
 * Why by hand: onnxruntime-node 1.30 exposes only input/output metadata, not the model's custom metadata, and the
 * export writes model version, input size and embedding dimension there. The top-level protobuf fields are
 * walked, skipping the (large) graph by its length prefix, so this costs nothing beyond the file read that session
 * creation needs anyway. Returns an empty map for a file without metadata_props; throws on malformed protobuf.
 */
const METADATA_PROPS_FIELD = 14;

export function readOnnxMetadataProps(model: Uint8Array): Map<string, string> {
  const result = new Map<string, string>();
  forEachField(model, (field, value) => {
    if (field !== METADATA_PROPS_FIELD || !(value instanceof Uint8Array)) return;
    let key = '';
    let text = '';
    forEachField(value, (entryField, entryValue) => {
      if (!(entryValue instanceof Uint8Array)) return;
      if (entryField === 1) key = decoder.decode(entryValue);
      if (entryField === 2) text = decoder.decode(entryValue);
    });
    result.set(key, text);
  });
  return result;
}

const decoder = new TextDecoder();

/** Calls `visit` for each top-level field; length-delimited values are passed as subarrays, others as numbers. */
function forEachField(bytes: Uint8Array, visit: (field: number, value: Uint8Array | number) => void): void {
  let offset = 0;
  const readVarint = (): number => {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 10; i += 1) {
      const byte = bytes[offset];
      if (byte === undefined) throw new Error('ONNX protobuf ends inside a varint');
      offset += 1;
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) return value;
      multiplier *= 128;
    }
    throw new Error('ONNX protobuf has a varint longer than 10 bytes');
  };
  while (offset < bytes.length) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      visit(field, readVarint());
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 2) {
      const length = readVarint();
      if (offset + length > bytes.length) throw new Error('ONNX protobuf field runs past the end of the file');
      visit(field, bytes.subarray(offset, offset + length));
      offset += length;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      throw new Error(`ONNX protobuf has unsupported wire type ${wireType}`);
    }
  }
  if (offset > bytes.length) throw new Error('ONNX protobuf is truncated');
}
