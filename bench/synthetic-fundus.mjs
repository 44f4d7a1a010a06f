// Times renderSyntheticFundus at 1024x768 and writes a contact sheet (grades 0-4 x both eyes) to /tmp.
// Run after `npx tsc -p apps/api`: node bench/synthetic-fundus.mjs [outputPng]
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
const require = createRequire(new URL('../apps/api/package.json', import.meta.url));
const sharp = require('sharp');
const { renderSyntheticFundus, renderSyntheticFundusPixels } = await import('../apps/api/dist/fixtures/synthetic-fundus.js');

const output = process.argv[2] ?? '/tmp/synthetic-fundus-sheet.png';
const timings = { pixels: [], jpeg: [] };
for (let n = 0; n < 12; n += 1) {
  const options = { seed: 1000 + n, eye: n % 2 ? 'LEFT' : 'RIGHT', grade: n % 5, maculopathy: n % 3 === 0 };
  let start = performance.now();
  renderSyntheticFundusPixels(options);
  timings.pixels.push(performance.now() - start);
  start = performance.now();
  await renderSyntheticFundus(options);
  timings.jpeg.push(performance.now() - start);
}
const median = (values) => values.slice(2).sort((a, b) => a - b)[Math.floor((values.length - 2) / 2)];
process.stdout.write(`1024x768 median ms (first 2 runs dropped): pixels ${median(timings.pixels).toFixed(1)}, pixels+jpeg ${median(timings.jpeg).toFixed(1)}\n`);

const tileWidth = 512;
const tileHeight = 384;
const tiles = [];
for (let grade = 0; grade <= 4; grade += 1) {
  for (const [column, eye] of ['RIGHT', 'LEFT'].entries()) {
    const jpeg = await renderSyntheticFundus({ seed: 42 + grade, eye, grade, maculopathy: grade >= 2 && column === 1 });
    tiles.push({ input: await sharp(jpeg).resize(tileWidth, tileHeight).toBuffer(), left: column * tileWidth, top: grade * tileHeight });
  }
}
await sharp({ create: { width: 2 * tileWidth, height: 5 * tileHeight, channels: 3, background: '#000' } }).composite(tiles).png().toFile(output);
process.stdout.write(`contact sheet: ${output} (rows grade 0-4; left column RIGHT eye, right column LEFT eye with maculopathy from grade 2)\n`);
