'use client';
// Query and one hit side by side, each as the model's crop with its own heat map; one toggle and one opacity
// for both, so the two are always seen the same way.
import type { AttentionMap } from '../../lib/similar-cases';
import { CropWithHeatMap, HeatMapControls, useHeatMapSettings } from './crop-heat-map';

export interface ComparedPhotograph {
  src: string;
  title: string;
  alt: string;
  attention: AttentionMap | null;
  details: string[];
}

export function CompareView({ query, hit }: { query: ComparedPhotograph; hit: ComparedPhotograph }) {
  const settings = useHeatMapSettings();
  return (
    <div className="compare-view">
      <div className="compare-pair">
        {[query, hit].map((side, index) => (
          <figure key={index} className="compare-side" data-testid={index === 0 ? 'compare-query' : 'compare-hit'}>
            <figcaption>
              <strong>{side.title}</strong>
            </figcaption>
            <CropWithHeatMap
              src={side.src}
              alt={side.alt}
              attention={side.attention}
              heatMapLabel={`Heat map of ${side.title.toLowerCase()}`}
              shown={settings.shown}
              opacity={settings.opacity}
            />
            <ul className="plain compare-details">
              {side.details.map((line) => (
                <li key={line}>{line}</li>
              ))}
              {!side.attention && <li>No heat map for this photograph.</li>}
            </ul>
          </figure>
        ))}
      </div>
      <HeatMapControls {...settings} />
    </div>
  );
}
