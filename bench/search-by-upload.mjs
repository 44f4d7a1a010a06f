// Benchmark: similar-case search by upload at N stored cases (default 10 000), end to end through the real HTTP
// API: POST /uploads (decode, preprocessing, ONNX embedding) + similarCases (exact pgvector search, case joins).
// Target (issue 4): p95 <= 150 ms on the 2-core development machine.
//
//   npm run build && npm run bench:search-by-upload -- [--cases 10000] [--requests 60] [--model models/fundus-cbr.onnx]
//
// Uses a fresh embedded PGlite database, or a scratch copy of DATABASE_URL's database (bench/scratch-database.mjs). The cases are synthetic rows
// with random unit embeddings written in bulk by SQL: the search cost depends on the row count and dimension, not
// on what the vectors mean. The query photographs are 1024x768 synthetic fundus JPEGs made here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { api, option, root } from './cli.mjs';
import { createScratchEnvironment } from './scratch-database.mjs';
import { seedSyntheticCases } from './seed-cases.mjs';

const caseCount = Number(option('cases', 10_000));
const requestCount = Number(option('requests', 60));
const defaultModel = fs.existsSync(path.join(root, 'models/fundus-cbr.onnx')) ? path.join(root, 'models/fundus-cbr.onnx') : path.join(root, 'test/fixtures/models/tiny-fundus-cbr.onnx');
const modelPath = option('model', defaultModel);

const [{ loadConfig }, { openDatabase }, { createServer }, { createLogger }, { Embedder }] = await Promise.all([
  api('config.js'), api('db/database.js'), api('server.js'), api('logger.js'), api('embedding/embedder.js'),
]);

const scratchDatabase = await createScratchEnvironment();
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-bench-keys-'));
const config = loadConfig({ ...process.env, ...scratchDatabase.env, SEED_DEMO_COHORT: 'false', LOG_LEVEL: 'warn', AUTH_LOCAL_ISSUER: 'true', AUTH_LOCAL_KEY_DIR: keyDir, RATE_LIMIT_PER_MINUTE: '1000000' });
const db = await openDatabase(config);
const embedder = await Embedder.load({ modelPath, device: 'cpu' });
const version = embedder.metadata.modelVersion;

const started = performance.now();
await seedSyntheticCases(db, { caseCount, modelVersion: version, dimension: embedder.metadata.embeddingDim });
const seeded = performance.now() - started;

const server = await createServer(config, { database: db, logger: createLogger('warn'), embedder });
const running = await server.listen(0, '127.0.0.1');
const base = running.url.replace(/\/graphql$/, '');
const { DEMO_USERS } = await api('auth/local-issuer.js');
const authorization = `Bearer ${await server.localIssuer.sign(DEMO_USERS.find((user) => user.role === 'clinician'))}`;

async function syntheticJpeg(seed) {
  const width = 1024, height = 768, pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) {
    const r = Math.hypot(x - width / 2, y - height / 2);
    if (r > 360) continue;
    const i = (y * width + x) * 3, shade = 1 - r / 500;
    pixels[i] = 190 * shade + (seed % 7); pixels[i + 1] = 90 * shade; pixels[i + 2] = 40 * shade;
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}
const images = await Promise.all([0, 1, 2, 3].map(syntheticJpeg));
const query = 'query S($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank similarity case { id patient { mrn } referenceGrading { drGrade } treatments { type } } } } }';

async function searchOnce(image, filters) {
  const t0 = performance.now();
  const upload = await fetch(`${base}/uploads`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization }, body: image });
  const { uploadToken } = await upload.json();
  const response = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ query, variables: { input: { uploadToken, k: 10, filters } } }) });
  const body = await response.json();
  if (body.errors || body.data.similarCases.hits.length !== 10) throw new Error(JSON.stringify(body.errors ?? body).slice(0, 300));
  return performance.now() - t0;
}

for (let warm = 0; warm < 5; warm += 1) await searchOnce(images[warm % images.length], null);
const timings = { 'no filter': [], 'grade 4 only': [] };
for (let index = 0; index < requestCount; index += 1) {
  const name = index % 2 === 0 ? 'no filter' : 'grade 4 only';
  timings[name].push(await searchOnce(images[index % images.length], name === 'no filter' ? null : { drGrades: [4] }));
}
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)];
const report = {
  cases: caseCount,
  database: db.kind,
  model: path.relative(root, modelPath),
  modelInputSize: embedder.metadata.inputSize,
  executionProvider: embedder.executionProvider,
  seedSeconds: Number((seeded / 1000).toFixed(1)),
  requestsPerScenario: requestCount / 2,
  milliseconds: Object.fromEntries(Object.entries(timings).map(([name, values]) => [name, { p50: Number(percentile(values, 50).toFixed(1)), p95: Number(percentile(values, 95).toFixed(1)), max: Number(Math.max(...values).toFixed(1)) }])),
  targetP95Ms: 150,
};
console.log(JSON.stringify(report, null, 2));
await new Promise((resolve) => server.httpServer.close(resolve));
await running.close();
await scratchDatabase.drop();
