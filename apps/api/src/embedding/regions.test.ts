import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeCorrespondence, findRegionProblem, fundusShareByCell, regionCellMask, singleCellMasks } from './regions.js';

describe('findRegionProblem', () => {
  const cases: [string, { x: number; y: number; width: number; height: number }, string | null][] = [
    ['the whole crop', { x: 0, y: 0, width: 1, height: 1 }, null],
    ['a small rectangle inside', { x: 0.2, y: 0.3, width: 0.1, height: 0.05 }, null],
    ['zero width', { x: 0.2, y: 0.3, width: 0, height: 0.2 }, 'REGION_EMPTY'],
    ['negative height', { x: 0.2, y: 0.3, width: 0.2, height: -0.1 }, 'REGION_EMPTY'],
    ['left of the crop', { x: -0.1, y: 0.3, width: 0.2, height: 0.2 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
    ['past the right edge', { x: 0.9, y: 0.3, width: 0.2, height: 0.2 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
    ['past the bottom edge', { x: 0.1, y: 0.95, width: 0.2, height: 0.1 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
    ['pixels instead of fractions', { x: 10, y: 20, width: 100, height: 100 }, 'REGION_OUTSIDE_PHOTOGRAPH'],
    ['not a number', { x: Number.NaN, y: 0, width: 0.5, height: 0.5 }, 'REGION_NOT_FINITE'],
  ];
  for (const [name, region, problem] of cases) it(`${name}: ${problem ?? 'accepted'}`, () => assert.equal(findRegionProblem(region), problem));
});

describe('regionCellMask', () => {
  it('weights each cell by the share of it the rectangle covers', () => {
    // 2 x 2 grid; the rectangle covers the top-left cell whole and half of the top-right one.
    const mask = regionCellMask({ x: 0, y: 0, width: 0.75, height: 0.5 }, 2, 2);
    assert.deepEqual(Array.from(mask), [1, 0.5, 0, 0]);
  });

  it('selects the one cell a rectangle smaller than a cell lies in, with its share', () => {
    const mask = regionCellMask({ x: 0.55, y: 0.8, width: 0.1, height: 0.1 }, 4, 4);
    const nonZero = [...mask.entries()].filter(([, value]) => value > 0);
    assert.equal(nonZero.length, 1);
    assert.equal(nonZero[0]![0], 3 * 4 + 2);
    assert.ok(Math.abs(nonZero[0]![1] - 0.16) < 1e-6); // (0.1 * 4) * (0.1 * 4)
  });

  it('gives every cell 1 for the whole crop, so the region head returns the whole-image embedding', () => {
    assert.ok(Array.from(regionCellMask({ x: 0, y: 0, width: 1, height: 1 }, 8, 8)).every((value) => Math.abs(value - 1) < 1e-6));
  });
});

describe('fundusShareByCell', () => {
  it('counts pixels brighter than the model mask threshold per cell', () => {
    const size = 4;
    const pixels = new Uint8Array(size * size * 3);
    // Left half bright, right half black; one bright pixel in the top-right cell.
    for (let y = 0; y < size; y += 1) for (let x = 0; x < 2; x += 1) pixels.fill(100, (y * size + x) * 3, (y * size + x) * 3 + 3);
    pixels.fill(100, (0 * size + 3) * 3, (0 * size + 3) * 3 + 3);
    assert.deepEqual(Array.from(fundusShareByCell(pixels, size, 2, 2)), [1, 0.25, 1, 0]);
  });
});

describe('computeCorrespondence', () => {
  const unit = (...values: number[]) => {
    const norm = Math.hypot(...values);
    return Float32Array.from(values.map((value) => value / norm));
  };
  it('finds mutual nearest cells, ignores cells outside the fundus and rescales maps over the fundus', () => {
    // 1 x 3 grids. Query cells: A, B, padding. Hit cells: B', A', padding (padding identical on both sides).
    const a = unit(1, 0, 0);
    const b = unit(0, 1, 0);
    const padding = unit(0, 0, 1);
    const result = computeCorrespondence({
      height: 1,
      width: 3,
      queryCells: [a, b, padding],
      hitCells: [unit(0.1, 1, 0), unit(1, 0.5, 0), padding],
      queryFundus: Float32Array.from([1, 1, 0]),
      hitFundus: Float32Array.from([1, 1, 0]),
    });
    assert.deepEqual(result.matches.map((match) => [match.queryCell, match.hitCell]), [[1, 0], [0, 1]]);
    assert.ok(Math.abs(result.matches[0]!.similarity - 1 / Math.hypot(0.1, 1)) < 1e-6);
    // query cell 1 matches best (0.995), cell 0 worst (0.894): rescaled to 1 and 0; padding stays 0.
    assert.deepEqual(Array.from(result.queryMap), [0, 1, 0]);
    assert.deepEqual(Array.from(result.hitMap), [1, 0, 0]);
  });

  it('makes one one-hot mask per cell', () => {
    const masks = singleCellMasks(2, 3);
    assert.equal(masks.length, 6);
    masks.forEach((mask, index) => assert.deepEqual(Array.from(mask), Array.from({ length: 6 }, (_, cell) => (cell === index ? 1 : 0))));
  });
});
