// Check, not a timing: the grade suggestion the API makes is the one `npm run fit-reuse` measured. Loads the TRAIN
// patients' embeddings (the case base) into a fresh PGlite database as cases, then searches with every TEST
// photograph's embedding as an upload through the product's search (findSimilarCases, pgvector) and suggestion
// (suggestGrade) with the committed calibration, and compares status and grade with the pure functions run on
// an in-memory exact search, as fit-reuse does. Prints the agreement and accuracy of both.
//
//   node bench/reuse-crosscheck.mjs --embeddings dump.jsonl --labels-dir <split dir> [--sets srahim,eyepacs-raw]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, option, root } from './cli.mjs';

const embeddingsFile = option('embeddings');
const labelsDir = option('labels-dir');
const sets = option('sets', 'srahim,eyepacs-raw').split(',');
const [{ openDatabase }, { createUploadStore }, { findSimilarCases }, { suggestGrade }, { loadReuseCalibration }, grade, { readLabelsCsv }] = await Promise.all([
  api('db/database.js'), api('modules/upload/upload.store.js'), api('modules/similar-case/similar-case.service.js'), api('modules/similar-case/suggest-grade.service.js'),
  api('modules/similar-case/reuse-calibration.js'), api('modules/similar-case/grade-suggestion.js'), api('embedding/dataset.js'),
]);
const reuse = loadReuseCalibration(path.join(root, 'models/fundus-cbr.reuse.json'));
const { modelVersion, rule, calibration, minimumConfidence } = reuse.calibration;

const dump = new Map(fs.readFileSync(embeddingsFile, 'utf8').split('\n').filter(Boolean).map((line) => { const row = JSON.parse(line); return [row.image, row]; }));
const split = async (name) => (await Promise.all(sets.map((set) => readLabelsCsv(path.join(labelsDir, `${name}-${set}.csv`))))).flat().map((label) => dump.get(label.image)).filter(Boolean);
const [caseBase, test] = [await split('train'), await split('test')];

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fundus-crosscheck-'));
const db = await openDatabase({ database: { kind: 'pglite', dataDir }, migrationsDir: path.join(root, 'prisma/migrations') });
const literal = (value) => `'${String(value).replace(/'/g, "''")}'`;
const statements = ["INSERT INTO dataset (id, name, is_synthetic) VALUES ('00000000-0000-4000-8000-000000000001', 'crosscheck', false)"];
const patients = [...new Set(caseBase.map((item) => item.patient_id))];
patients.forEach((patient, index) => {
  statements.push(`INSERT INTO patient (id, dataset_id, mrn, mrn_system) VALUES (md5('p${index}')::uuid, '00000000-0000-4000-8000-000000000001', ${literal(patient)}, 'urn:crosscheck')`);
  statements.push(`INSERT INTO visit (id, patient_id, visit_date) VALUES (md5('v${index}')::uuid, md5('p${index}')::uuid, DATE '2020-01-01')`);
});
caseBase.forEach((item, index) => {
  const patient = patients.indexOf(item.patient_id);
  const hash = `encode(sha256(${literal(item.image)}::bytea), 'hex')`;
  statements.push(`INSERT INTO image_blob (sha256, mime_type, byte_size, bytes) VALUES (${hash}, 'image/jpeg', 1, '\\x00'::bytea)`);
  statements.push(`INSERT INTO fundus_image (id, visit_id, patient_id, eye, content_hash, width, height, dr_grade) VALUES (md5('i${index}')::uuid, md5('v${patient}')::uuid, md5('p${patient}')::uuid, '${index % 2 ? 'LEFT' : 'RIGHT'}', ${hash}, 1, 1, ${item.grade})`);
  statements.push(`INSERT INTO grading (image_id, dr_grade, source, graded_on) VALUES (md5('i${index}')::uuid, ${item.grade}, 'DATASET_LABEL', DATE '2020-01-01')`);
  statements.push(`INSERT INTO image_embedding (image_id, model_version, embedding) VALUES (md5('i${index}')::uuid, ${literal(modelVersion)}, '[${item.embedding.join(',')}]')`);
});
await db.sql.exec(statements.join(';\n'));

const uploads = createUploadStore({ ttlMs: 3_600_000 });
let agree = 0, apiCorrect = 0, memoryCorrect = 0, answered = 0;
const disagreements = [];
for (const item of test) {
  const upload = uploads.put({ bytes: Buffer.alloc(0), contentHash: 'f'.repeat(64), mimeType: 'image/jpeg', width: 1, height: 1, modelVersion, embedding: Float32Array.from(item.embedding), attention: { width: 1, height: 1, values: new Float32Array(1) } });
  const search = await findSimilarCases({ prisma: db.prisma, uploads, uploadToken: upload.token, k: 10, filters: null, excludeSamePatient: true, modelVersion, voteDepth: rule.neighbours });
  const suggestion = await suggestGrade({ prisma: db.prisma, search, reuse, subject: 'crosscheck' });
  const neighbours = caseBase
    .map((other) => ({ grade: other.grade, similarity: other.embedding.reduce((sum, value, i) => sum + value * item.embedding[i], 0) }))
    .sort((a, b) => b.similarity - a.similarity);
  const probabilities = grade.calibrateVote(grade.voteOfNeighbours(neighbours, rule).shares, calibration);
  const expected = grade.decideGrade(probabilities, rule.decision);
  const expectedStatus = probabilities[expected] < minimumConfidence ? 'ABSTAINED' : 'SUGGESTED';
  // An abstention still carries its probabilities: the grade it would have suggested is their decision.
  const apiGrade = suggestion.suggestedGrade ?? grade.decideGrade(suggestion.gradeProbabilities.map((p) => p.probability), rule.decision);
  if (apiGrade === expected && suggestion.status === expectedStatus) agree += 1;
  else disagreements.push({ image: item.image, api: [suggestion.status, apiGrade], memory: [expectedStatus, expected] });
  if (apiGrade === item.grade) apiCorrect += 1;
  if (expected === item.grade) memoryCorrect += 1;
  if (suggestion.status === 'SUGGESTED') answered += 1;
}
console.log(JSON.stringify({ modelVersion, caseBase: caseBase.length, test: test.length, sameStatusAndGrade: agree, apiAccuracy: apiCorrect / test.length, inMemoryAccuracy: memoryCorrect / test.length, apiCoverage: answered / test.length, disagreements: disagreements.slice(0, 10) }, null, 2));
await db.close();
fs.rmSync(dataDir, { recursive: true, force: true });
