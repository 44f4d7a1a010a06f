'use client';
// The model's crop of a photograph (the 512 px square it embedded) with its attention heat map laid over it,
// and the controls that show, hide and fade the heat map. The crop and the map cover the same square, so the
// grid lies exactly where the model looked.
import { useEffect, useId, useRef, useState } from 'react';
import type { AttentionMap } from '../../lib/similar-cases';
import { AttentionGrid } from './attention-grid';

export function CropWithHeatMap({
  src,
  alt,
  attention,
  heatMapLabel,
  shown,
  opacity,
  testId,
}: {
  src: string;
  alt: string;
  attention: AttentionMap | null;
  heatMapLabel: string;
  shown: boolean;
  /** 0..100 */
  opacity: number;
  testId?: string;
}) {
  const [failed, setFailed] = useState(false);
  const image = useRef<HTMLImageElement>(null);
  // The server-rendered <img> may fail before React hydrates and attaches onError (a slow page, a fast refusal):
  // an image that is complete with no pixels has failed, whenever that was.
  useEffect(() => {
    const element = image.current;
    if (element && element.complete && element.naturalWidth === 0) setFailed(true);
  }, [src]);
  return (
    <div className="heat-map-frame" data-testid={testId}>
      {failed ? (
        <div className="heat-map-no-preview" role="status">
          The photograph could not be loaded
        </div>
      ) : (
        // Served by this site from the API as the signed-in user; next/image would cache it, which it must not.
        <img ref={image} src={src} alt={alt} width={512} height={512} onError={() => setFailed(true)} />
      )}
      {shown && attention && (
        <div className="heat-map-layer">
          <AttentionGrid map={attention} label={heatMapLabel} opacity={opacity / 100} />
        </div>
      )}
    </div>
  );
}

export function HeatMapControls({
  shown,
  opacity,
  onShownChange,
  onOpacityChange,
  disabled = false,
}: {
  shown: boolean;
  opacity: number;
  onShownChange: (shown: boolean) => void;
  onOpacityChange: (opacity: number) => void;
  disabled?: boolean;
}) {
  const id = useId();
  return (
    <div className="heat-map-controls">
      <label className="checkbox">
        <input type="checkbox" checked={shown} disabled={disabled} onChange={(event) => onShownChange(event.currentTarget.checked)} />
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
        disabled={disabled || !shown}
        onChange={(event) => onOpacityChange(Number(event.currentTarget.value))}
        aria-valuetext={`${opacity}%`}
      />
      <output htmlFor={`${id}-opacity`}>{opacity}%</output>
    </div>
  );
}

export function useHeatMapSettings() {
  const [shown, setShown] = useState(true);
  const [opacity, setOpacity] = useState(50);
  return { shown, opacity, onShownChange: setShown, onOpacityChange: setOpacity };
}
