import 'reflect-metadata';
import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { TreatmentType } from '../common/enums.js';

export enum SuggestionStatus {
  SUGGESTED = 'SUGGESTED',
  ABSTAINED = 'ABSTAINED',
  UNCALIBRATED = 'UNCALIBRATED',
  NO_NEIGHBOURS = 'NO_NEIGHBOURS',
}
registerEnumType(SuggestionStatus, {
  name: 'SuggestionStatus',
  description: 'SUGGESTED: a calibrated grade. ABSTAINED: the neighbours disagree too much (see reason). UNCALIBRATED: no calibration for this model version (a plain vote, no probabilities; see reason). NO_NEIGHBOURS: no graded case to vote.',
});

@ObjectType()
export class GradeProbability {
  @Field(() => Int) grade!: number;
  @Field(() => Float, { description: 'Calibrated on validation patients (models/fundus-cbr.reuse.json).' }) probability!: number;
}

@ObjectType()
export class GradeVote {
  @Field(() => Int) grade!: number;
  @Field(() => Float, { description: "This grade's share of the (weighted) vote, 0-1." }) share!: number;
  @Field(() => Int, { description: 'How many of the voting neighbours have this grade.' }) neighbours!: number;
}

@ObjectType()
export class GradeCount {
  @Field(() => Int) grade!: number;
  @Field(() => String) gradeName!: string;
  @Field(() => Int) count!: number;
}

@ObjectType()
export class TreatmentCount {
  @Field(() => TreatmentType) type!: TreatmentType;
  @Field(() => Int, { description: 'Hits whose eye received this treatment after the hit’s visit.' }) hits!: number;
}

@ObjectType()
export class WorseningWindow {
  @Field(() => Int) years!: number;
  @Field(() => Int, { description: 'Hits with a later graded photograph of the same eye within the window.' }) followedUp!: number;
  @Field(() => Int, { description: 'Of those, hits graded worse than at the hit’s visit at a later visit within the window.' }) worsened!: number;
}

@ObjectType({ description: 'What happened to the similar patients (the hits shown) after the hit’s visit.' })
export class SimilarPatientOutcomes {
  @Field(() => Int) hits!: number;
  @Field(() => Int, { description: 'Hits of undated visits: no 1- or 2-year window counts from them.' }) undatedHits!: number;
  @Field(() => Int, { description: 'Hits whose eye received any treatment after the visit.' }) treatedAfter!: number;
  @Field(() => [TreatmentCount]) treatments!: TreatmentCount[];
  @Field(() => [WorseningWindow], { description: 'Within 1 and 2 years of the hit’s visit.' }) worsening!: WorseningWindow[];
}

@ObjectType({ description: 'The CBR reuse step: a DR grade suggested from the nearest graded cases, calibrated on validation patients, and what happened to similar patients. Decision support, not a diagnosis.' })
export class GradeSuggestion {
  @Field(() => ID, { description: 'Pass to reviseCase as suggestionId: the clinician’s decision is compared with this suggestion.' }) id!: string;
  @Field(() => SuggestionStatus) status!: SuggestionStatus;
  @Field(() => Int, { nullable: true, description: 'Null when abstaining or without neighbours.' }) suggestedGrade!: number | null;
  @Field(() => String, { nullable: true }) suggestedGradeName!: string | null;
  @Field(() => Float, { nullable: true, description: 'Calibrated probability of the likeliest reading.' }) confidence!: number | null;
  @Field(() => String, { nullable: true, description: 'Why it abstained or is uncalibrated.' }) reason!: string | null;
  @Field(() => [GradeProbability], { nullable: true, description: 'Per ICDR grade 0-4; null when uncalibrated.' }) gradeProbabilities!: GradeProbability[] | null;
  @Field(() => Float, { nullable: true, description: 'P(grade >= 2), referable DR; null when uncalibrated.' }) referableProbability!: number | null;
  @Field(() => Boolean, { nullable: true, description: 'Whether referableProbability reaches the referral threshold chosen on validation patients.' }) referable!: boolean | null;
  @Field(() => Int, { description: 'How many graded neighbours voted.' }) voters!: number;
  @Field(() => [GradeVote]) vote!: GradeVote[];
  @Field(() => String, { description: 'The vote rule, in words.' }) rule!: string;
  @Field(() => String, { nullable: true, description: 'The model version the calibration was fitted for; null when uncalibrated.' }) calibrationModelVersion!: string | null;
  @Field(() => [GradeCount], { description: 'Reference grades among the hits shown.' }) hitGrades!: GradeCount[];
  @Field(() => Int) ungradedHits!: number;
  @Field(() => SimilarPatientOutcomes) outcomes!: SimilarPatientOutcomes;
}
