// The CBR "reuse" step of a search: a suggested DR grade from the nearest graded neighbours (the fitted vote
// rule and calibration of models/fundus-cbr.reuse.json), the grade distribution among the hits shown, and what
// happened to those similar patients afterwards (treatments, worsening within 1 and 2 years). Every suggestion
// shown is logged (suggestion_log) so the clinician's revision can be compared with it (model monitoring).
//
// The vote always runs over the plain neighbourhood the calibration was fitted on: all graded cases of other
// patients, no filter. similarCases finds those voters in its own scan when the suggestion is selected (a deeper
// LIMIT, or one statement ranking the distances twice under a filter: similar-images.ts
// searchSimilarImagesWithVoters); a second search here is only the fallback (too few graded among them).
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { TreatmentType } from '../../generated/prisma/enums.js';
import { EVERY_GRADE_FILTERS, searchSimilarImages } from '../../search/similar-images.js';
import { UNDATED_VISIT_DATE } from '../common/clinical-dates.js';
import { ICDR_GRADE_NAMES } from '../common/enums.js';
import type { Case } from '../case/case.type.js';
import { PLAIN_VOTE_RULE, calibrateVote, decideGrade, referableProbability, voteOfNeighbours, type Neighbour, type VoteRule } from './grade-suggestion.js';
import type { LoadedReuseCalibration } from './reuse-calibration.js';
import type { ReuseSearchContext, SimilarCases } from './similar-case.service.js';

export type SuggestionStatus = 'SUGGESTED' | 'ABSTAINED' | 'UNCALIBRATED' | 'NO_NEIGHBOURS';

export type GradeCount = { grade: number; gradeName: string; count: number };

export type OutcomeWindow = {
  years: number;
  /** Hits with a later graded photograph of the same eye within the window. */
  followedUp: number;
  /** Of those, hits whose eye was graded worse than the hit at a later visit within the window. */
  worsened: number;
};

export type SimilarPatientOutcomes = {
  hits: number;
  /** Hits of undated visits (labels without dates): no window can be counted from them. */
  undatedHits: number;
  /** Hits whose eye received any treatment after the hit's visit. */
  treatedAfter: number;
  treatments: { type: TreatmentType; hits: number }[];
  worsening: OutcomeWindow[];
};

export type GradeSuggestion = {
  id: string;
  status: SuggestionStatus;
  suggestedGrade: number | null;
  suggestedGradeName: string | null;
  /** Calibrated probability of the suggested grade; null when uncalibrated. */
  confidence: number | null;
  reason: string | null;
  gradeProbabilities: { grade: number; probability: number }[] | null;
  referableProbability: number | null;
  /** Whether P(grade >= 2) reaches the validation-chosen referral threshold; null when uncalibrated. */
  referable: boolean | null;
  voters: number;
  vote: { grade: number; share: number; neighbours: number }[];
  rule: string;
  calibrationModelVersion: string | null;
  hitGrades: GradeCount[];
  ungradedHits: number;
  outcomes: SimilarPatientOutcomes;
};

const WINDOW_YEARS = [1, 2] as const;

function describeRule(rule: VoteRule): string {
  const weighting = rule.weighting === 'softmax' ? `softmax(cosine / ${rule.softmaxTemperature})` : rule.weighting === 'similarity' ? 'cosine-weighted' : 'one vote each';
  return `${rule.neighbours} nearest graded cases of other patients, ${weighting}, ${rule.decision === 'median' ? 'median grade of the distribution' : 'most probable grade'}`;
}

/** The first `count` graded neighbours of the plain neighbourhood (a second search when the hits are not it). */
async function findVoters(prisma: PrismaClient, context: ReuseSearchContext, count: number): Promise<Neighbour[]> {
  if (context.voters && context.voters.length >= count) return context.voters.slice(0, count);
  const graded = context.searchHits.filter((hit) => hit.grade !== null);
  if (context.isPlainNeighbourhood && graded.length >= count) return graded.slice(0, count);
  const hits = await searchSimilarImages(prisma, {
    modelVersion: context.modelVersion,
    query: context.query,
    k: count,
    // Every ICDR grade: leaves out the ungraded, who cannot vote.
    filters: EVERY_GRADE_FILTERS,
    excludePatientId: context.queryPatientId,
  });
  return hits;
}

const addYears = (isoDate: string, years: number) => `${String(Number(isoDate.slice(0, 4)) + years).padStart(4, '0')}${isoDate.slice(4)}`;

/** Grade distribution among the hits shown and how their eyes went on (follow-up records after each hit's visit). */
export function summariseHits(cases: readonly Case[]): { hitGrades: GradeCount[]; ungradedHits: number; outcomes: SimilarPatientOutcomes } {
  const counts = new Array<number>(5).fill(0);
  let ungraded = 0;
  let undated = 0;
  let treatedAfter = 0;
  const treatmentHits = new Map<TreatmentType, number>();
  const windows = WINDOW_YEARS.map((years) => ({ years, followedUp: 0, worsened: 0 }));
  for (const hit of cases) {
    const grade = hit.referenceGrading?.drGrade ?? null;
    if (grade === null) ungraded += 1;
    else counts[grade]! += 1;
    const types = new Set(hit.followUp.treatments.map((treatment) => treatment.type));
    if (types.size > 0) treatedAfter += 1;
    for (const type of types) treatmentHits.set(type, (treatmentHits.get(type) ?? 0) + 1);
    if (hit.visit.date === UNDATED_VISIT_DATE) {
      undated += 1;
      continue;
    }
    const later = hit.followUp.gradings.filter((grading) => grading.source !== 'MODEL_SUGGESTION');
    for (const window of windows) {
      const inWindow = later.filter((grading) => grading.visitDate <= addYears(hit.visit.date, window.years));
      if (inWindow.length === 0 || grade === null) continue;
      window.followedUp += 1;
      if (inWindow.some((grading) => grading.drGrade > grade)) window.worsened += 1;
    }
  }
  return {
    hitGrades: counts.map((count, grade) => ({ grade, gradeName: ICDR_GRADE_NAMES[grade] ?? 'Unknown', count })),
    ungradedHits: ungraded,
    outcomes: {
      hits: cases.length,
      undatedHits: undated,
      treatedAfter,
      treatments: [...treatmentHits].map(([type, hits]) => ({ type, hits })).sort((a, b) => b.hits - a.hits || a.type.localeCompare(b.type)),
      worsening: windows,
    },
  };
}

/** How many neighbours the vote will need: the search finds them in its own scan (similarCases' voteDepth). */
export function voteDepthFor(reuse: LoadedReuseCalibration): number {
  return Math.max(reuse.calibration?.rule.neighbours ?? 0, PLAIN_VOTE_RULE.neighbours);
}

/** The suggestion for a search's query, logged as shown to `subject`. */
export async function suggestGrade({
  prisma,
  search,
  reuse,
  subject,
}: {
  prisma: PrismaClient;
  search: Pick<SimilarCases, 'hits' | 'reuseContext'>;
  reuse: LoadedReuseCalibration;
  subject: string;
}): Promise<GradeSuggestion> {
  const context = search.reuseContext;
  const fitted = reuse.calibration;
  const usable = fitted !== null && fitted.modelVersion === context.modelVersion;
  const uncalibratedReason = usable
    ? null
    : fitted === null
      ? `Uncalibrated: ${reuse.problem}`
      : `Uncalibrated: the reuse calibration (${fitted.source}) was fitted for model ${fitted.modelVersion}, but this search compares embeddings of model ${context.modelVersion}; refit it with \`npm run fit-reuse\``;
  const rule = usable ? fitted.rule : PLAIN_VOTE_RULE;
  const voters = await findVoters(prisma, context, rule.neighbours);
  const vote = voteOfNeighbours(voters, rule);

  let status: SuggestionStatus;
  let suggestedGrade: number | null = null;
  let probabilities: number[] | null = null;
  let confidence: number | null = null;
  let reason: string | null = uncalibratedReason;
  if (vote.voters === 0) {
    status = 'NO_NEIGHBOURS';
    reason = 'No graded case of another patient is embedded with this model: nothing to suggest from';
  } else if (!usable) {
    status = 'UNCALIBRATED';
    suggestedGrade = decideGrade(vote.shares, rule.decision);
  } else {
    probabilities = calibrateVote(vote.shares, fitted.calibration);
    const grade = decideGrade(probabilities, rule.decision);
    confidence = probabilities[grade]!;
    if (confidence < fitted.minimumConfidence) {
      status = 'ABSTAINED';
      reason = `The neighbours disagree too much: the likeliest reading, grade ${grade}, has probability ${confidence.toFixed(2)}, under the ${fitted.minimumConfidence.toFixed(2)} chosen on validation patients`;
    } else {
      status = 'SUGGESTED';
      suggestedGrade = grade;
    }
  }
  const referable = probabilities ? referableProbability(probabilities) : null;
  const row = await prisma.suggestionLog.create({
    data: {
      subject,
      modelVersion: context.modelVersion,
      calibrationModelVersion: usable ? fitted.modelVersion : null,
      imageId: context.queryImageId,
      uploadContentHash: context.uploadContentHash,
      status,
      suggestedGrade,
      probabilities: probabilities ?? [],
      referableProbability: referable,
      voters: vote.voters,
    },
    select: { id: true },
  });
  return {
    id: row.id,
    status,
    suggestedGrade,
    suggestedGradeName: suggestedGrade === null ? null : (ICDR_GRADE_NAMES[suggestedGrade] ?? null),
    confidence,
    reason,
    gradeProbabilities: probabilities?.map((probability, grade) => ({ grade, probability })) ?? null,
    referableProbability: referable,
    referable: referable === null || !usable ? null : referable >= fitted.referableThreshold,
    voters: vote.voters,
    vote: vote.shares.map((share, grade) => ({ grade, share, neighbours: vote.counts[grade]! })),
    rule: describeRule(rule),
    calibrationModelVersion: usable ? fitted.modelVersion : null,
    ...summariseHits(search.hits.map((hit) => hit.case)),
  };
}
