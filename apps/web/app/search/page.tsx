import type { Metadata } from 'next';
import { AccessRefused } from '../../components/access-refused';
import { PAGES, mayUsePage } from '../../lib/access';
import { DR_GRADES, describeDrGrade } from '../../lib/grades';
import { NONE, formatDate, formatEnum, formatLaterality, formatTreatmentType } from '../../lib/labels';
import { AttentionGrid } from '../../components/search/attention-grid';
import { PhotoPicker } from '../../components/search/photo-picker';
import { QueryHeatMap } from '../../components/search/query-heat-map';
import { CompareView, type CompareExplanation } from '../../components/search/compare-view';
import { explainSimilarity } from '../../lib/explain-similarity';
import { SaveCaseForm } from '../../components/search/save-case-form';
import { config } from '../../lib/config';
import { FacetCounts } from '../../components/search/facet-counts';
import { SuggestionPanel } from '../../components/search/suggestion-panel';
import { ReviseCaseForm } from '../../components/search/revise-case-form';
import { RegionDraw } from '../../components/search/region-draw';
import { photographPath, uploadCropPath } from '../../lib/photograph-paths';
import '../../components/search/search.css';
import {
  AGE_MAX,
  AGE_MIN,
  K_MAX,
  K_MIN,
  SEXES,
  TREATMENT_TYPES,
  countFacets,
  parseSearchForm,
  summariseGradeCourse,
  summariseTreatments,
  searchSimilarCases,
  refineSimilarCases,
  MARK_PREFIX,
  type SearchFormValues,
  type SearchOutcome,
  type SimilarCaseHit,
} from '../../lib/similar-cases';
import { pagePath, requireSession } from '../../lib/session';
import { casePath } from '../../lib/case';

export const metadata: Metadata = { title: 'Similar-case search' };

type SearchPageProps = { searchParams: Promise<Record<string, string | string[] | undefined>> };

export default async function SearchPage({ searchParams }: SearchPageProps) {
  const params = await searchParams;
  const returnTo = pagePath(PAGES.search.href, params);
  const session = await requireSession(returnTo);
  if (!mayUsePage(session.user.role, 'search')) {
    return (
      <>
        <h1>Similar-case search</h1>
        <AccessRefused session={session} page={PAGES.search} />
      </>
    );
  }

  const form = parseSearchForm(params);
  // Marks on a search in the address (the Refine form): that search refined and re-run; reloading it records the
  // same marks on the same search again, which replaces them (nothing is counted twice).
  const outcome = form.feedback ? await refineSimilarCases(form.feedback, { returnTo }) : form.input ? await searchSimilarCases(form.input, { returnTo }) : null;
  if (outcome && !outcome.ok && outcome.code === 'FORBIDDEN') {
    return (
      <>
        <h1>Similar-case search</h1>
        <AccessRefused session={session} page={PAGES.search} apiMessage={outcome.message} />
      </>
    );
  }

  return (
    <>
      <h1>Similar-case search</h1>
      <SearchForm values={form.values} />
      {form.problems.length > 0 && (
        <div className="alert" role="alert">
          <p className="alert-title">The search was not run</p>
          <ul>
            {form.problems.map((problem) => (
              <li key={problem}>{problem}</li>
            ))}
          </ul>
        </div>
      )}
      {outcome && <SearchResults outcome={outcome} values={form.values} params={params} returnTo={returnTo} explanation={await explainCompared(outcome, form.values, returnTo)} />}
      {form.input?.uploadToken && outcome?.ok && (
        <SaveCaseForm uploadToken={form.input.uploadToken} returnTo={returnTo} mrnSystem={config.mrnSystem} today={new Date().toISOString().slice(0, 10)} />
      )}
    </>
  );
}

/** The compared hit's correspondence maps (explainSimilarity), when a hit of this result is compared. */
async function explainCompared(outcome: SearchOutcome, values: SearchFormValues, returnTo: string): Promise<CompareExplanation | null> {
  if (!outcome.ok || !values.compare || !outcome.result.hits.some((hit) => hit.case.id === values.compare)) return null;
  const query = values.upload ? { uploadToken: values.upload } : { imageId: values.imageId };
  const explained = await explainSimilarity({ ...query, caseId: values.compare }, returnTo);
  if (!explained.ok) return { code: explained.code, message: explained.message };
  const { queryMap, hitMap, matches } = explained.explanation;
  return { queryMap, hitMap, matches: matches.length };
}

const SEARCH_FORM_ID = 'similar-case-search';

function SearchForm({ values }: { values: SearchFormValues }) {
  const byUpload = values.upload !== '';
  return (
    <form id={SEARCH_FORM_ID} className="search-form" method="get" action="/search" aria-label="Similar-case search">
      <fieldset className="query-choice field-wide">
        <legend>Search with</legend>
        <PhotoPicker formId={SEARCH_FORM_ID} />
        {byUpload ? (
          <div className="field" data-testid="upload-in-use">
            <input type="hidden" name="upload" value={values.upload} />
            <p>
              The uploaded photograph (kept 10 minutes). Change the filters and search again, or{' '}
              <a href="/search">search by an image id</a> instead.
            </p>
          </div>
        ) : (
          <div className="field">
            <label htmlFor="imageId">Image id</label>
            <input
              id="imageId"
              name="imageId"
              type="text"
              required
              autoComplete="off"
              spellCheck={false}
              defaultValue={values.imageId}
              aria-describedby="imageId-hint"
            />
            <p id="imageId-hint" className="hint">
              Or a stored fundus photograph to find similar cases for.
            </p>
          </div>
        )}
      </fieldset>
      <div className="field field-narrow">
        <label htmlFor="k">Number of cases</label>
        <input
          id="k"
          name="k"
          type="number"
          inputMode="numeric"
          min={K_MIN}
          max={K_MAX}
          step={1}
          required
          defaultValue={values.k}
          aria-describedby="k-hint"
        />
        <p id="k-hint" className="hint">
          {K_MIN}–{K_MAX}
        </p>
      </div>
      <div className="field field-narrow">
        <label htmlFor="eye">Eye</label>
        <select id="eye" name="eye" defaultValue={values.eye}>
          <option value="">Either eye</option>
          <option value="LEFT">Left</option>
          <option value="RIGHT">Right</option>
        </select>
      </div>
      <div className="field field-narrow">
        <label htmlFor="sex">Sex</label>
        <select id="sex" name="sex" defaultValue={values.sex}>
          <option value="">Any</option>
          {SEXES.map((sex) => (
            <option key={sex} value={sex}>
              {formatEnum(sex)}
            </option>
          ))}
        </select>
      </div>
      <div className="field field-narrow">
        <label htmlFor="ageMin">Youngest age</label>
        <input id="ageMin" name="ageMin" type="number" inputMode="numeric" min={AGE_MIN} max={AGE_MAX} step={1} defaultValue={values.ageMin} aria-describedby="age-hint" />
      </div>
      <div className="field field-narrow">
        <label htmlFor="ageMax">Oldest age</label>
        <input id="ageMax" name="ageMax" type="number" inputMode="numeric" min={AGE_MIN} max={AGE_MAX} step={1} defaultValue={values.ageMax} aria-describedby="age-hint" />
        <p id="age-hint" className="hint">
          Years at the visit, inclusive
        </p>
      </div>
      <fieldset className="grades">
        <legend>DR grade (ICDR)</legend>
        <p className="hint">None selected: all grades.</p>
        {DR_GRADES.map(({ grade, name }) => (
          <label key={grade} className="checkbox">
            <input type="checkbox" name="grade" value={grade} defaultChecked={values.grades.includes(grade)} />
            <span>
              {grade} – {name}
            </span>
          </label>
        ))}
      </fieldset>
      <fieldset className="grades">
        <legend>Treatment of the eye</legend>
        <p className="hint">None selected: any. Several: at least one of them.</p>
        {TREATMENT_TYPES.map((type) => (
          <label key={type} className="checkbox">
            <input type="checkbox" name="treatment" value={type} defaultChecked={values.treatments.includes(type)} />
            <span>{formatTreatmentType(type)}</span>
          </label>
        ))}
      </fieldset>
      <fieldset className="grades region-fields">
        <legend>Search by region (optional)</legend>
        <p className="hint" id="region-hint">
          A rectangle on the model&apos;s crop of the query, in % of its side: draw it on the query&apos;s crop shown with the results, or
          type it. Empty: the whole photograph.
        </p>
        {(
          [
            ['regionX', 'x', 'Left'],
            ['regionY', 'y', 'Top'],
            ['regionWidth', 'width', 'Width'],
            ['regionHeight', 'height', 'Height'],
          ] as const
        ).map(([name, key, label]) => (
          <div key={name} className="field field-narrow">
            <label htmlFor={name}>{label} (%)</label>
            <input id={name} name={name} type="number" inputMode="decimal" min={0} max={100} step="any" defaultValue={values.region[key]} aria-describedby="region-hint" />
          </div>
        ))}
      </fieldset>
      <div className="actions">
        <button type="submit">Search</button>
      </div>
    </form>
  );
}

type SearchParams = Record<string, string | string[] | undefined>;

/** This search's address with `compare` set to one hit (or removed), so the compare view is a plain link. */
function comparePath(params: SearchParams, caseId: string | null): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (name === 'compare') continue;
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) query.append(name, item);
  }
  if (caseId) query.set('compare', caseId);
  return `/search?${query}${caseId ? '#compare' : '#results-heading'}`;
}

/** The region the search ran with, in % of the crop, for the drawing; null without one. */
function regionBox(values: SearchFormValues): { x: number; y: number; width: number; height: number } | null {
  const { x, y, width, height } = values.region;
  if ([x, y, width, height].some((text) => text === '')) return null;
  return { x: Number(x), y: Number(y), width: Number(width), height: Number(height) };
}

const REFINE_FORM_ID = 'refine-search';

/**
 * The Refine form: the search's own parameters (not its marks, searchId or comparison) and this result's
 * searchId; the relevance radios in the hits table belong to it through their form attribute.
 */
function RefineForm({ params, searchId, refinement }: { params: SearchParams; searchId: string; refinement: { recorded: number } | null }) {
  const kept: [string, string][] = [];
  for (const [name, value] of Object.entries(params)) {
    if (name === 'compare' || name === 'search' || name.startsWith(MARK_PREFIX)) continue;
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) kept.push([name, item]);
  }
  return (
    <form id={REFINE_FORM_ID} className="refine" method="get" action="/search#results-heading" aria-label="Refine the search with your relevance marks">
      {kept.map(([name, value], index) => (
        <input key={`${name}-${index}`} type="hidden" name={name} value={value} />
      ))}
      <input type="hidden" name="search" value={searchId} />
      <button type="submit">Refine</button>
      <p className="hint">
        Mark hits relevant or not relevant in the table, then Refine: the query moves towards the relevant hits and
        away from the others, and the search runs again with the same filters.
        {refinement && <> This is a refined search ({refinement.recorded} mark{refinement.recorded === 1 ? '' : 's'} recorded); mark its hits to refine again.</>}
      </p>
    </form>
  );
}

function SearchResults({
  outcome,
  values,
  params,
  returnTo,
  explanation,
}: {
  outcome: SearchOutcome;
  values: SearchFormValues;
  params: SearchParams;
  returnTo: string;
  explanation: CompareExplanation | null;
}) {
  const uploadToken = values.upload || null;
  if (!outcome.ok) {
    const expired = uploadToken && outcome.code === 'NOT_FOUND';
    return (
      <div className="alert" role="alert" data-error-code={outcome.code}>
        <p className="alert-title">{values.marks.length > 0 ? 'The search was not refined' : 'The search failed'}</p>
        <p>{expired ? 'The uploaded photograph has expired (it is kept for 10 minutes): choose it again to search with it.' : outcome.message}</p>
        {uploadToken && !expired && <p>An uploaded photograph is kept for 10 minutes: choose it again to search with it.</p>}
        <p className="alert-code">
          Error code: <code>{outcome.code}</code>
        </p>
      </div>
    );
  }

  const { hits, modelVersion, queryAttention, query, suggestion, searchId } = outcome.result;
  const { refinement } = outcome;
  // Fixture embeddings have no heat maps; the column shows only when some hit has one.
  const showsAttention = hits.some((hit) => hit.attention !== null);
  const querySrc = uploadToken ? uploadCropPath(uploadToken) : photographPath(values.imageId, 'crop');
  const compared = values.compare ? (hits.find((hit) => hit.case.id === values.compare) ?? null) : null;
  return (
    <section aria-labelledby="results-heading" className="results">
      <h2 id="results-heading">
        {hits.length === 0 ? 'No similar cases' : `${hits.length} similar case${hits.length === 1 ? '' : 's'}`}
        {refinement && ', refined'}
      </h2>
      {refinement && (
        <p className="notice" role="status" data-testid="refined">
          Refined with your {refinement.recorded} relevance mark{refinement.recorded === 1 ? '' : 's'}. <a href={comparePath(Object.fromEntries(Object.entries(params).filter(([name]) => name !== 'search' && !name.startsWith(MARK_PREFIX))), null)}>Back to the unrefined search</a>
        </p>
      )}
      <p className="hint">Model version {modelVersion}</p>
      {uploadToken && query && (
        <div className="notice" role="status" data-testid="stored-query">
          This photograph is already stored: <a href={casePath(query.id)}>case <code>{query.id}</code></a> (patient{' '}
          <code>{query.patient.mrn}</code>, {formatEnum(query.image.eye).toLowerCase()} eye, {formatDate(query.visit.date)}). It is
          never its own hit; the patient&apos;s other photographs are left out too.
        </div>
      )}
      <div className="query-panel">
        <QueryHeatMap src={querySrc} attention={queryAttention} byUpload={uploadToken !== null} />
        <RegionDraw src={querySrc} formId={SEARCH_FORM_ID} initial={regionBox(values)} />
        {hits.length > 0 && <FacetCounts facets={countFacets(hits)} />}
      </div>
      <div className="cbr-panel">
        <SuggestionPanel suggestion={suggestion} />
        {query && (
          <ReviseCaseForm
            caseId={query.id}
            suggestionId={suggestion.id}
            suggestedGrade={suggestion.status === 'ABSTAINED' ? null : suggestion.suggestedGrade}
            current={query.referenceGrading}
            returnTo={returnTo}
          />
        )}
      </div>
      {values.compare && (
        <section aria-labelledby="compare-heading" className="compare" id="compare">
          <h2 id="compare-heading">Compare with case {compared ? compared.rank : ''}</h2>
          {compared ? (
            <>
              <CompareView
                explanation={explanation}
                query={{
                  src: querySrc,
                  title: 'Query photograph',
                  alt: uploadToken ? "The model's crop of the uploaded photograph" : "The model's crop of the query photograph",
                  attention: queryAttention,
                  details: [uploadToken ? 'Uploaded' : `Case ${values.imageId}`],
                }}
                hit={{
                  src: photographPath(compared.case.id, 'crop'),
                  title: `Hit ${compared.rank}`,
                  alt: `The model's crop of case ${compared.case.id}`,
                  attention: compared.attention,
                  details: [
                    `Similarity ${compared.similarity.toFixed(3)}`,
                    compared.case.referenceGrading ? `DR grade ${describeDrGrade(compared.case.referenceGrading.drGrade)}` : 'Not graded',
                    `${formatEnum(compared.case.image.eye)} eye, patient ${compared.case.patient.mrn}`,
                  ],
                }}
              />
              <p>
                <a href={casePath(compared.case.id)}>Open the case timeline</a> ·{' '}
                <a href={comparePath(params, null)}>Close the comparison</a>
              </p>
            </>
          ) : (
            <p className="alert" role="alert">
              Case <code>{values.compare}</code> is not among these hits: choose Compare on one of them.
            </p>
          )}
        </section>
      )}
      {hits.length > 0 && <RefineForm params={params} searchId={searchId} refinement={refinement} />}
      {hits.length === 0 ? (
        <p>No earlier case matched these filters. Widen the DR grades or eye, or raise the number of cases.</p>
      ) : (
        <div className="table-scroll">
          <table className="hits">
            <caption className="visually-hidden">Similar cases, most similar first</caption>
            <thead>
              <tr>
                <th scope="col">Rank</th>
                <th scope="col">
                  Photograph<span className="visually-hidden">{showsAttention && ' and heat map'}</span>
                </th>
                <th scope="col">Similarity</th>
                <th scope="col">Case</th>
                <th scope="col">Patient</th>
                <th scope="col">Eye</th>
                <th scope="col">DR grade</th>
                <th scope="col">Diagnoses</th>
                <th scope="col">Treatments</th>
                <th scope="col">What happened next</th>
              </tr>
            </thead>
            <tbody>
              {hits.map((hit) => (
                <HitRow key={hit.case.id} hit={hit} showsAttention={showsAttention} compareHref={comparePath(params, hit.case.id)} compared={hit.case.id === values.compare} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function HitRow({ hit, showsAttention, compareHref, compared }: { hit: SimilarCaseHit; showsAttention: boolean; compareHref: string; compared: boolean }) {
  const { case: similarCase } = hit;
  const grading = similarCase.referenceGrading;
  return (
    <tr aria-current={compared ? 'true' : undefined}>
      <td className="numeric">{hit.rank}</td>
      <td className="hit-photograph">
        <div className="hit-images">
          <span className="hit-thumbnail">
            {/* Thumbnails come through this site from the API as the signed-in user. */}
            <img src={photographPath(similarCase.id, 'thumbnail')} alt={`Photograph of case ${hit.rank}`} width={96} height={72} loading="lazy" />
          </span>
          {showsAttention && (
            <span className="hit-attention">
              <AttentionGrid map={hit.attention} label={`Heat map of case ${hit.rank}`} size={48} />
            </span>
          )}
        </div>
      </td>
      <td className="numeric">{hit.similarity.toFixed(3)}</td>
      <td className="hit-case">
        <a href={casePath(similarCase.id)}>
          <code>{similarCase.id}</code>
        </a>
        {similarCase.isSynthetic && (
          <>
            {' '}
            <span className="badge" title="Generated test data, not a patient">
              synthetic
            </span>
          </>
        )}
        <br />
        <a href={compareHref} className="compare-link" aria-label={`Compare case ${hit.rank} with the query`}>
          Compare
        </a>
        <fieldset className="relevance">
          <legend className="visually-hidden">Is case {hit.rank} relevant?</legend>
          {(
            [
              ['relevant', 'Relevant'],
              ['irrelevant', 'Not relevant'],
              ['', 'Unmarked'],
            ] as const
          ).map(([value, label]) => (
            <label key={value} className="checkbox">
              <input type="radio" form={REFINE_FORM_ID} name={`${MARK_PREFIX}${similarCase.id}`} value={value} defaultChecked={value === ''} />
              <span>{label}</span>
            </label>
          ))}
        </fieldset>
      </td>
      <td>
        <code className="nowrap">{similarCase.patient.mrn}</code>
        <br />
        {formatEnum(similarCase.patient.sex)}, {similarCase.patient.birthYear ? `born ${similarCase.patient.birthYear}` : 'birth year unknown'}
      </td>
      <td>{formatEnum(similarCase.image.eye)}</td>
      <td>{grading ? describeDrGrade(grading.drGrade) : 'Not graded'}</td>
      <td>
        {similarCase.diagnoses.length === 0 ? (
          NONE
        ) : (
          <ul className="plain">
            {[...new Map(similarCase.diagnoses.map((diagnosis) => [diagnosis.code, diagnosis])).values()].map((diagnosis) => (
              <li key={diagnosis.code}>
                <code title={diagnosis.text}>{diagnosis.code}</code>
                <span className="visually-hidden">: {diagnosis.text}</span>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td>
        <TreatmentList treatments={similarCase.treatments} />
      </td>
      <td>
        <FollowUp followUp={similarCase.followUp} />
      </td>
    </tr>
  );
}

function TreatmentList({ treatments }: { treatments: readonly { type: string; agent?: string | null; eye?: string | null; date: string }[] }) {
  if (treatments.length === 0) return <>{NONE}</>;
  return (
    <ul className="plain">
      {summariseTreatments(treatments).map((group) => (
        <li key={group.key}>
          {formatTreatmentType(group.type)}
          {group.agent && ` (${formatEnum(group.agent).toLowerCase()})`}
          {group.count > 1 ? ` ×${group.count}, ` : ', '}
          <span className="nowrap">{formatDate(group.first)}</span>
          {group.count > 1 && (
            <>
              {' to '}
              <span className="nowrap">{formatDate(group.last)}</span>
            </>
          )}
          {formatLaterality(group.eye) && `, ${formatLaterality(group.eye)}`}
        </li>
      ))}
    </ul>
  );
}

function FollowUp({ followUp }: { followUp: SimilarCaseHit['case']['followUp'] }) {
  if (followUp.gradings.length === 0 && followUp.treatments.length === 0) return <>{NONE}</>;
  const course = summariseGradeCourse(followUp.gradings);
  return (
    <div className="follow-up">
      {course.length > 0 && (
        <p>
          Grade{' '}
          {course.map((change, index) => (
            <span key={change.visitDate} className="nowrap">
              {index > 0 && ' → '}
              {change.drGrade} ({formatDate(change.visitDate).slice(0, 7)})
            </span>
          ))}
        </p>
      )}
      <TreatmentList treatments={followUp.treatments} />
    </div>
  );
}
