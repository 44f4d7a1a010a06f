// Runs an exported model in onnxruntime-node, the runtime the TypeScript embedder uses.
//   node models/scripts/onnx_node.mjs run <model.onnx> <input.f32> <B,C,H,W> <out-dir>
//     reads raw little-endian float32, writes <out-dir>/<output-name>.f32 and <out-dir>/outputs.json (dims)
//   node models/scripts/onnx_node.mjs run <model.onnx> <input.f32> <shape> <out-dir> <input2.f32> <shape2> ...
//     the same for a model with several inputs, fed in the order of session.inputNames (the region head)
//   node models/scripts/onnx_node.mjs bench <model.onnx> <size> <iterations> <threads>
//     prints JSON {ms_per_image_median, ms_per_image_mean} for batch 1 after a warm-up
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

const [mode, modelPath, ...rest] = process.argv.slice(2);

async function openSession(threads) {
  return ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

async function run() {
  const [inputPath, shapeText, outDir, ...more] = rest;
  const pairs = [[inputPath, shapeText]];
  for (let index = 0; index + 1 < more.length; index += 2) pairs.push([more[index], more[index + 1]]);
  const session = await openSession(1);
  const feeds = {};
  pairs.forEach(([file, shape], index) => {
    const buffer = fs.readFileSync(file);
    const data = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
    feeds[session.inputNames[index]] = new ort.Tensor('float32', data, shape.split(',').map(Number));
  });
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  const summary = {};
  for (const name of session.outputNames) {
    const tensor = results[name];
    fs.writeFileSync(path.join(outDir, `${name}.f32`), Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    summary[name] = tensor.dims;
  }
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(summary));
}

async function bench() {
  const [sizeText, iterationsText, threadsText] = rest;
  const size = Number(sizeText);
  const iterations = Number(iterationsText);
  const session = await openSession(Number(threadsText ?? 1));
  const input = new Float32Array(3 * size * size);
  for (let i = 0; i < input.length; i += 1) input[i] = (i * 7919) % 256;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, size, size]) };
  for (let i = 0; i < 5; i += 1) await session.run(feeds);
  const times = [];
  for (let i = 0; i < iterations; i += 1) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  process.stdout.write(JSON.stringify({ ms_per_image_median: times[Math.floor(times.length / 2)], ms_per_image_mean: mean }) + '\n');
}

if (mode === 'run') await run();
else if (mode === 'bench') await bench();
else {
  process.stderr.write('usage: onnx_node.mjs run|bench ...\n');
  process.exit(2);
}
