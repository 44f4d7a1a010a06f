'use client';
// The uploaded photograph's heat map over its preview, with a toggle and an opacity slider. The API does not
// serve the cropped photograph, so the grid lies over the photograph as uploaded, fitted square (cover):
// close to the model's fundus crop for a centred fundus, not exact.
import { useEffect, useId, useState } from 'react';
import type { AttentionMap } from '../../lib/similar-cases';
import { readUploadPreview } from '../../lib/upload-preview';
import { AttentionGrid } from './attention-grid';

export function QueryHeatMap({ uploadToken, attention }: { uploadToken: string; attention: AttentionMap | null }) {
  const id = useId();
  const [preview, setPreview] = useState<string | null>(null);
  const [shown, setShown] = useState(true);
  const [opacity, setOpacity] = useState(50);
  useEffect(() => setPreview(readUploadPreview(uploadToken)), [uploadToken]);

  return (
    <figure className="query-heat-map" aria-labelledby={`${id}-caption`}>
      <div className="heat-map-frame" data-testid="query-overlay">
        {preview ? (
          // A data: URL from this tab's storage; next/image has nothing to optimise.
          <img src={preview} alt="The uploaded photograph" />
        ) : (
          <div className="heat-map-no-preview">Photograph preview not available in this tab</div>
        )}
        {shown && (
          <div className="heat-map-layer" data-testid="query-heat-map">
            <AttentionGrid map={attention} label="Heat map of the uploaded photograph" opacity={opacity / 100} />
          </div>
        )}
      </div>
      <figcaption id={`${id}-caption`} className="hint">
        Where the model looked: heat map over the photograph as uploaded, cropped square by the model (red: most
        attention).
      </figcaption>
      <div className="heat-map-controls">
        <label className="checkbox">
          <input type="checkbox" checked={shown} onChange={(event) => setShown(event.currentTarget.checked)} />
          <span>Show heat map</span>
        </label>
        <label htmlFor={`${id}-opacity`}>Heat-map opacity</label>
        <input
          id={`${id}-opacity`}
          type="range"
          min={0}
          max={100}
          step={5}
          value={opacity}
          disabled={!shown}
          onChange={(event) => setOpacity(Number(event.currentTarget.value))}
          aria-valuetext={`${opacity}%`}
        />
        <output htmlFor={`${id}-opacity`}>{opacity}%</output>
      </div>
    </figure>
  );
}
