// GraphQL types of researcher cohort statistics: aggregates only, under disclosure control. No field carries a
// patient identifier, a birth date, an exact date or a photograph.
import 'reflect-metadata';
import { Field, Float, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { LocalDateResolver } from 'graphql-scalars';
import { DiabetesType, Eye, Sex, TreatmentType } from '../common/enums.js';

export enum AgeBand {
  UNDER_40 = 'UNDER_40',
  FROM_40_TO_49 = 'FROM_40_TO_49',
  FROM_50_TO_59 = 'FROM_50_TO_59',
  FROM_60_TO_69 = 'FROM_60_TO_69',
  FROM_70_TO_79 = 'FROM_70_TO_79',
  AT_LEAST_80 = 'AT_LEAST_80',
}
registerEnumType(AgeBand, { name: 'AgeBand', description: 'Age at the baseline visit, in whole years from the birth year.' });

export enum Hba1cBand {
  UNDER_7 = 'UNDER_7',
  FROM_7_TO_8 = 'FROM_7_TO_8',
  FROM_8_TO_9 = 'FROM_8_TO_9',
  AT_LEAST_9 = 'AT_LEAST_9',
}
registerEnumType(Hba1cBand, { name: 'Hba1cBand', description: 'HbA1c (%) at baseline: the latest reading on or before the first visit, else the first within 180 days after.' });

export enum GradeTiming {
  BASELINE = 'BASELINE',
  ANY_VISIT = 'ANY_VISIT',
}
registerEnumType(GradeTiming, { name: 'GradeTiming' });

export enum WorseningEvent {
  ONE_STEP = 'ONE_STEP',
  REFERABLE = 'REFERABLE',
  PDR = 'PDR',
}
registerEnumType(WorseningEvent, {
  name: 'WorseningEvent',
  description: 'ONE_STEP: a later visit graded at least one ICDR step above baseline (eyes below PDR); REFERABLE: grade 2 or more (eyes below 2 at baseline); PDR: grade 4 (eyes below 4).',
});

export enum SurvivalStratum {
  BASELINE_GRADE = 'BASELINE_GRADE',
  HBA1C_BAND = 'HBA1C_BAND',
  TREATMENT = 'TREATMENT',
}
registerEnumType(SurvivalStratum, { name: 'SurvivalStratum', description: 'TREATMENT: eyes that received any treatment other than observation, against those that did not.' });

@InputType({ description: 'Which eyes form the cohort. Leave a field out to include all; dates are filters only.' })
export class CohortFilterInput {
  @Field(() => [Int], { nullable: true, description: 'ICDR grades 0-4 of the eye (see gradeAt).' }) drGrades?: number[] | null;
  @Field(() => GradeTiming, { nullable: true, description: 'BASELINE (default): the first graded visit in range; ANY_VISIT: any.' }) gradeAt?: GradeTiming | null;
  @Field(() => Eye, { nullable: true }) eye?: Eye | null;
  @Field(() => [Sex], { nullable: true }) sexes?: Sex[] | null;
  @Field(() => [AgeBand], { nullable: true }) ageBands?: AgeBand[] | null;
  @Field(() => [DiabetesType], { nullable: true }) diabetesTypes?: DiabetesType[] | null;
  @Field(() => Int, { nullable: true, description: 'Years since diabetes diagnosis at baseline, at least.' }) diabetesDurationMinYears?: number | null;
  @Field(() => Int, { nullable: true, description: 'Years since diabetes diagnosis at baseline, at most.' }) diabetesDurationMaxYears?: number | null;
  @Field(() => [Hba1cBand], { nullable: true }) hba1cBands?: Hba1cBand[] | null;
  @Field(() => [TreatmentType], { nullable: true, description: 'Eyes that received at least one of these.' }) treatments?: TreatmentType[] | null;
  @Field(() => [String], { nullable: true }) datasets?: string[] | null;
  @Field(() => LocalDateResolver, { nullable: true, description: 'Only visits on or after this date count.' }) visitsFrom?: string | null;
  @Field(() => LocalDateResolver, { nullable: true, description: 'Only visits on or before this date count.' }) visitsTo?: string | null;
}

@ObjectType({ description: 'A count table under disclosure control: a null cell is suppressed (1 to k-1, or suppressed so that one cannot be recovered from the margins).' })
export class CountTable {
  @Field(() => String) name!: string;
  @Field(() => String, { description: 'What the rows are (age band, sex, baseline grade, ...).' }) rowTitle!: string;
  @Field(() => String) columnTitle!: string;
  @Field(() => [String]) rows!: string[];
  @Field(() => [String]) columns!: string[];
  @Field(() => [[Int]], { nullable: 'itemsAndList', description: 'rows × columns; null = suppressed.' }) cells!: (number | null)[][];
  @Field(() => [Int], { nullable: 'items' }) rowTotals!: (number | null)[];
  @Field(() => [Int], { nullable: 'items' }) columnTotals!: (number | null)[];
  @Field(() => Int, { nullable: true }) total!: number | null;
  @Field(() => Int, { description: 'How many cells are suppressed.' }) suppressedCells!: number;
  @Field(() => String, { description: 'The same table as CSV (suppressed cells written as "suppressed").' }) csv!: string;
}

@ObjectType()
export class GroupSummary {
  @Field(() => String) group!: string;
  @Field(() => Int, { nullable: true, description: 'Null when under k (withheld).' }) n!: number | null;
  @Field(() => Float, { nullable: true }) median!: number | null;
  @Field(() => Float, { nullable: true }) lowerQuartile!: number | null;
  @Field(() => Float, { nullable: true }) upperQuartile!: number | null;
  @Field(() => Boolean) withheld!: boolean;
}

@ObjectType()
export class TreatmentStatistics {
  @Field(() => CountTable, { description: 'Per treatment type: patients treated and treatments given.' }) counts!: CountTable;
  @Field(() => GroupSummary, { description: 'Anti-VEGF injections per patient per year of follow-up, among injected patients followed a year or more.' })
  injectionsPerPatientYear!: GroupSummary;
}

@ObjectType()
export class SurvivalStep {
  @Field(() => Float, { description: 'Years since the eye’s first eligible visit.' }) time!: number;
  @Field(() => Float) survival!: number;
  @Field(() => Float, { nullable: true, description: 'Log-log 95% interval (Greenwood).' }) lower!: number | null;
  @Field(() => Float, { nullable: true }) upper!: number | null;
  @Field(() => Float, { nullable: true, description: 'Greenwood standard error of the survival.' }) standardError!: number | null;
}

@ObjectType()
export class AtRiskCount {
  @Field(() => Float) time!: number;
  @Field(() => String, { description: 'Eyes at risk, or "<k" under the disclosure threshold.' }) atRisk!: string;
}

@ObjectType()
export class SurvivalCurve {
  @Field(() => String) stratum!: string;
  @Field(() => Boolean, { description: 'True when the stratum has fewer than k eyes: no curve is shown.' }) withheld!: boolean;
  @Field(() => Int, { nullable: true }) eyes!: number | null;
  @Field(() => Int, { nullable: true }) events!: number | null;
  @Field(() => [SurvivalStep]) steps!: SurvivalStep[];
  @Field(() => [Float], { description: 'Times of censoring, for censor marks (coarsened like the steps).' }) censorTimes!: number[];
  @Field(() => [AtRiskCount], { description: 'Numbers at risk at each yearly mark.' }) numbersAtRisk!: AtRiskCount[];
  @Field(() => Float, { nullable: true, description: 'Where the curve stops because fewer than k eyes remain at risk.' }) truncatedAt!: number | null;
  @Field(() => Float, { nullable: true }) medianYears!: number | null;
}

@ObjectType()
export class LogRankTest {
  @Field(() => Float) chiSquare!: number;
  @Field(() => Int) degreesOfFreedom!: number;
  @Field(() => Float) pValue!: number;
  @Field(() => [String], { description: 'The strata compared (withheld strata are left out).' }) strata!: string[];
}

@ObjectType()
export class TimeToWorsening {
  @Field(() => WorseningEvent) event!: WorseningEvent;
  @Field(() => SurvivalStratum, { nullable: true }) stratifiedBy!: SurvivalStratum | null;
  @Field(() => [SurvivalCurve]) curves!: SurvivalCurve[];
  @Field(() => LogRankTest, { nullable: true, description: 'Across the strata shown; null without strata or with fewer than two shown.' }) logRank!: LogRankTest | null;
  @Field(() => Int, { description: 'Eyes left out for having no dated visit (datasets without dates).' }) undatedEyesExcluded!: number;
}

@ObjectType({ description: 'Aggregates of a cohort of eyes, under disclosure control (k = minimumCellSize).' })
export class CohortStatistics {
  @Field(() => Int) minimumCellSize!: number;
  @Field(() => Int) patients!: number;
  @Field(() => Int) eyes!: number;
  @Field(() => [CountTable], { description: 'Grade distributions: per eye and per patient (worse eye), at baseline and latest visit, by age band, sex and diabetes type.' })
  gradeDistributions!: CountTable[];
  @Field(() => CountTable, { description: 'Eyes by baseline grade (rows) and latest grade (columns).' }) transitionMatrix!: CountTable;
  @Field(() => TreatmentStatistics) treatments!: TreatmentStatistics;
  @Field(() => [GroupSummary], { description: 'Baseline HbA1c (%) by the worse eye’s baseline grade.' }) hba1cByGrade!: GroupSummary[];
  @Field(() => TimeToWorsening, { nullable: true, description: 'Present when timeToWorsening was asked for in the query arguments.' }) timeToWorsening!: TimeToWorsening | null;
}
