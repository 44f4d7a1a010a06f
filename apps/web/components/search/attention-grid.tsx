import { heatColour, isDrawableAttention, normalizeAttention } from '../../lib/heat-map';
import type { AttentionMap } from '../../lib/similar-cases';

/**
 * A heat map as a grid of coloured cells in a square SVG (the model's input is square). `opacity` below 1 lets
 * a photograph underneath show through.
 */
export function AttentionGrid({ map, label, size, opacity = 1 }: { map: AttentionMap | null; label: string; size?: number; opacity?: number }) {
  if (!isDrawableAttention(map)) return <span className="hint">No heat map</span>;
  const levels = normalizeAttention(map);
  return (
    <svg
      className="attention-grid"
      role="img"
      aria-label={label}
      viewBox={`0 0 ${map.width} ${map.height}`}
      preserveAspectRatio="none"
      width={size}
      height={size}
      data-cells={levels.length}
    >
      <g opacity={opacity}>
        {levels.map((level, index) => (
          <rect
            key={index}
            x={index % map.width}
            y={Math.floor(index / map.width)}
            width={1.02}
            height={1.02}
            fill={heatColour(level)}
            data-value={map.values[index]}
          />
        ))}
      </g>
    </svg>
  );
}
