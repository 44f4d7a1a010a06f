// The web's GraphQL types are generated from schema.graphql (apps/web/codegen.mjs), never written by hand: the
// committed lib/generated/graphql.ts must be exactly what graphql-codegen makes from the committed schema and the
// web's documents. The same generation over a changed schema must come out different (or fail), so this check
// can catch drift at all.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './browser.mjs';

const WEB_DIR = path.join(REPO_ROOT, 'apps/web');
const OUTPUT = 'lib/generated/graphql.ts';
const { generate } = await import('@graphql-codegen/cli');
const { default: config } = await import(path.join(WEB_DIR, 'codegen.mjs'));

/** What codegen writes for OUTPUT from `schema`, in memory (nothing is written). */
async function generateTypes(schema) {
  const cwd = process.cwd();
  process.chdir(WEB_DIR);
  try {
    const files = await generate({ ...config, schema, silent: true, errorsOnly: true }, false);
    return files.find((file) => path.relative(WEB_DIR, path.resolve(WEB_DIR, file.filename)) === OUTPUT)?.content;
  } finally {
    process.chdir(cwd);
  }
}

test('lib/generated/graphql.ts is what graphql-codegen makes from schema.graphql (run `npm run codegen -w apps/web`)', { timeout: 120_000 }, async () => {
  const generated = await generateTypes(path.join(REPO_ROOT, 'schema.graphql'));
  assert.ok(generated, 'codegen produced the output file');
  assert.equal(readFileSync(path.join(WEB_DIR, OUTPUT), 'utf8'), generated, 'the committed types drifted from schema.graphql: run `npm run codegen -w apps/web` and commit');
});

test('the check catches drift: a schema change gives other types, and a field a document asks for that is gone fails', { timeout: 120_000 }, async (t) => {
  const schema = readFileSync(path.join(REPO_ROOT, 'schema.graphql'), 'utf8');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fundus-codegen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const committed = readFileSync(path.join(WEB_DIR, OUTPUT), 'utf8');

  // A hit's similarity becomes nullable: the document is still valid, its type is not the same.
  const loosened = path.join(dir, 'loosened.graphql');
  const hitSimilarity = /(type SimilarCaseHit \{[\s\S]*?)similarity: Float!/;
  assert.match(schema, hitSimilarity);
  writeFileSync(loosened, schema.replace(hitSimilarity, '$1similarity: Float'));
  const changed = await generateTypes(loosened);
  assert.ok(changed, 'codegen produced the output file');
  assert.notEqual(changed, committed);
  assert.match(changed, /similarity: number \| null/);

  // modelVersion removed from SimilarCasesResult: the search document asks for it.
  const removed = path.join(dir, 'removed.graphql');
  writeFileSync(removed, schema.replace(/(type SimilarCasesResult \{[\s\S]*?)\n\s*"""The embedding model version[^"]*"""\n\s*modelVersion: String!/, '$1'));
  assert.notEqual(readFileSync(removed, 'utf8'), schema, 'the test removed the field');
  await assert.rejects(generateTypes(removed), /modelVersion/);
});
