'use client';
// The query photograph as the model saw it (its crop) with its attention heat map: toggle and opacity.
import type { AttentionMap } from '../../lib/similar-cases';
import { CropWithHeatMap, HeatMapControls, useHeatMapSettings } from './crop-heat-map';

export function QueryHeatMap({ src, attention, byUpload }: { src: string; attention: AttentionMap | null; byUpload: boolean }) {
  const settings = useHeatMapSettings();
  const subject = byUpload ? 'the uploaded photograph' : 'the query photograph';
  return (
    <figure className="query-heat-map" aria-label={`The model's crop of ${subject}`}>
      <CropWithHeatMap
        src={src}
        alt={`The model's crop of ${subject}`}
        attention={attention}
        heatMapLabel={`Heat map of ${subject}`}
        shown={settings.shown}
        opacity={settings.opacity}
        testId="query-overlay"
      />
      <figcaption className="hint">
        {attention
          ? 'Where the model looked: its attention over the square it saw (red: most attention).'
          : 'This photograph has no heat map (its embedding was not made by the model).'}
      </figcaption>
      <HeatMapControls {...settings} disabled={!attention} />
    </figure>
  );
}
