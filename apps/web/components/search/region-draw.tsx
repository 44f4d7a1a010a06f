'use client';
// Search by region: drag a rectangle on the model's crop of the query; it fills the search form's region inputs
// (left, top, width, height in % of the crop, the keyboard alternative) and "Search this region" submits it.
import { useRef, useState, type PointerEvent } from 'react';

type Box = { x: number; y: number; width: number; height: number };
const FIELDS = { x: 'regionX', y: 'regionY', width: 'regionWidth', height: 'regionHeight' } as const;
const round = (value: number) => Math.round(value * 10) / 10;

export function RegionDraw({ src, formId, initial }: { src: string; formId: string; initial: Box | null }) {
  const frame = useRef<HTMLDivElement>(null);
  const start = useRef<{ x: number; y: number } | null>(null);
  const [box, setBox] = useState<Box | null>(initial);
  const at = (event: PointerEvent) => {
    const rect = frame.current!.getBoundingClientRect();
    return { x: Math.min(100, Math.max(0, ((event.clientX - rect.left) / rect.width) * 100)), y: Math.min(100, Math.max(0, ((event.clientY - rect.top) / rect.height) * 100)) };
  };
  const spanTo = (point: { x: number; y: number }): Box => {
    const from = start.current!;
    return { x: round(Math.min(from.x, point.x)), y: round(Math.min(from.y, point.y)), width: round(Math.abs(point.x - from.x)), height: round(Math.abs(point.y - from.y)) };
  };
  const fill = (drawn: Box) => {
    for (const key of Object.keys(FIELDS) as (keyof Box)[]) {
      const input = document.getElementById(FIELDS[key]) as HTMLInputElement | null;
      if (input) input.value = String(drawn[key]);
    }
  };
  return (
    <figure className="region-draw">
      <figcaption>
        <strong>Search by region</strong>
        <span className="hint"> Drag a rectangle on the crop, or type it in the search form&apos;s region fields.</span>
      </figcaption>
      <div
        ref={frame}
        className="region-frame"
        data-testid="region-frame"
        onPointerDown={(event) => {
          event.preventDefault();
          frame.current!.setPointerCapture(event.pointerId);
          start.current = at(event);
          setBox(null);
        }}
        onPointerMove={(event) => {
          if (start.current) setBox(spanTo(at(event)));
        }}
        onPointerUp={(event) => {
          if (!start.current) return;
          const drawn = spanTo(at(event));
          start.current = null;
          setBox(drawn);
          fill(drawn);
        }}
      >
        {/* The same crop as above; decorative here, the rectangle's figures are in the form. */}
        <img src={src} alt="" draggable={false} />
        {box && (
          <span
            className="region-box"
            data-testid="region-box"
            style={{ left: `${box.x}%`, top: `${box.y}%`, width: `${box.width}%`, height: `${box.height}%` }}
          />
        )}
      </div>
      <p className="hint" aria-live="polite">
        {box ? `Region: left ${box.x}%, top ${box.y}%, width ${box.width}%, height ${box.height}%.` : 'No region: the whole photograph.'}
      </p>
      <button type="button" disabled={!box || box.width === 0 || box.height === 0} onClick={() => (document.getElementById(formId) as HTMLFormElement | null)?.requestSubmit()}>
        Search this region
      </button>
    </figure>
  );
}
