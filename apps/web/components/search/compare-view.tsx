'use client';
// Query and one hit side by side, each as the model's crop with its own heat map; one toggle and one opacity
// for both, so the two are always seen the same way. With an explanation (the API's explainSimilarity), the
// maps can instead show which regions of the two correspond.
import { useId, useState } from 'react';
import type { AttentionMap } from '../../lib/similar-cases';
import { CropWithHeatMap, HeatMapControls, useHeatMapSettings } from './crop-heat-map';

export interface ComparedPhotograph {
  src: string;
  title: string;
  alt: string;
  attention: AttentionMap | null;
  details: string[];
}

/** Paired correspondence maps for query and hit, or why there are none (an error code from the API). */
export type CompareExplanation = { queryMap: AttentionMap; hitMap: AttentionMap; matches: number } | { code: string; message: string };

export function CompareView({ query, hit, explanation }: { query: ComparedPhotograph; hit: ComparedPhotograph; explanation: CompareExplanation | null }) {
  const settings = useHeatMapSettings();
  const [mode, setMode] = useState<'attention' | 'correspondence'>('attention');
  const id = useId();
  const maps = explanation && 'queryMap' in explanation ? explanation : null;
  const sides = mode === 'correspondence' && maps ? [{ ...query, attention: maps.queryMap }, { ...hit, attention: maps.hitMap }] : [query, hit];
  const mapName = mode === 'correspondence' && maps ? 'Correspondence map' : 'Heat map';
  return (
    <div className="compare-view">
      {explanation && (
        <fieldset className="compare-mode">
          <legend>The maps show</legend>
          <label className="checkbox">
            <input type="radio" name={`${id}-mode`} checked={mode === 'attention'} onChange={() => setMode('attention')} />
            <span>Where the model looked (attention)</span>
          </label>
          <label className="checkbox">
            <input type="radio" name={`${id}-mode`} checked={mode === 'correspondence'} disabled={!maps} onChange={() => setMode('correspondence')} aria-describedby={`${id}-mode-hint`} />
            <span>Which regions correspond</span>
          </label>
          <p id={`${id}-mode-hint`} className="hint" data-testid="explanation-hint">
            {maps
              ? `Per region, how well its best match in the other photograph corresponds (red: closely); ${maps.matches} strongest mutual matches found.`
              : `No correspondence maps: ${'message' in explanation ? explanation.message : ''} (error code ${'code' in explanation ? explanation.code : ''}).`}
          </p>
        </fieldset>
      )}
      <div className="compare-pair">
        {sides.map((side, index) => (
          <figure key={index} className="compare-side" data-testid={index === 0 ? 'compare-query' : 'compare-hit'}>
            <figcaption>
              <strong>{side.title}</strong>
            </figcaption>
            <CropWithHeatMap
              src={side.src}
              alt={side.alt}
              attention={side.attention}
              heatMapLabel={`${mapName} of ${side.title.toLowerCase()}`}
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
