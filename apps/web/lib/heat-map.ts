// Colours for attention heat maps. Pure, so both the server (hit thumbnails) and the browser (the query's
// overlay) use it. Values are scaled to the map's own min..max: the model's raw attention has no fixed range,
// so a map says where the model looked in this photograph, not how strongly compared with another.
import type { AttentionMap } from './similar-cases';

/** Each value scaled to 0..1 within its own map; a flat map is all 0. */
export function normalizeAttention(map: AttentionMap): number[] {
  let low = Infinity;
  let high = -Infinity;
  for (const value of map.values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  const range = high - low;
  return map.values.map((value) => (range > 0 && Number.isFinite(range) ? (value - low) / range : 0));
}

// Stops of a blue -> yellow -> red ramp (low -> high), readable over the fundus's orange.
const STOPS: readonly [number, number, number][] = [
  [49, 54, 149],
  [69, 117, 180],
  [254, 224, 144],
  [244, 109, 67],
  [165, 0, 38],
];

/** An `rgb()` colour for a 0..1 value (clamped). */
export function heatColour(level: number): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(level) ? level : 0));
  const position = clamped * (STOPS.length - 1);
  const index = Math.min(STOPS.length - 2, Math.floor(position));
  const fraction = position - index;
  const [from, to] = [STOPS[index]!, STOPS[index + 1]!];
  const channel = (c: number) => Math.round(from[c]! + (to[c]! - from[c]!) * fraction);
  return `rgb(${channel(0)}, ${channel(1)}, ${channel(2)})`;
}

/** True when the map's values fill its grid (anything else is drawn as "no heat map"). */
export function isDrawableAttention(map: AttentionMap | null | undefined): map is AttentionMap {
  return !!map && map.width > 0 && map.height > 0 && map.values.length === map.width * map.height;
}
