// Prints the code-first schema as SDL; `npm run schema:emit` writes schema.graphql, and a test fails when the
// committed file differs from what the code emits.
import fs from 'node:fs';
import path from 'node:path';
import { printSchema } from 'graphql';
import { repositoryRoot } from '../config.js';
import { buildApiSchema } from '../graphql/schema.js';

export async function emitSchema(): Promise<string> {
  return `# Generated from the type-graphql code by \`npm run schema:emit\`; do not edit by hand.\n\n${printSchema(await buildApiSchema())}\n`;
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const target = path.join(repositoryRoot, 'schema.graphql');
  fs.writeFileSync(target, await emitSchema());
  process.stdout.write(`wrote ${target}\n`);
}
