import 'reflect-metadata';
import { Field, Float, ID, InputType, Int, ObjectType } from 'type-graphql';

import { Case } from '../case/case.type.js';

@InputType()
export class RevisedDiagnosisInput {
  @Field(() => String, { description: 'ICD-10-CM, e.g. E11.3291.' }) icd10Code!: string;
  @Field(() => String) text!: string;
}

@InputType({ description: 'The clinician’s reading of a searched photograph: confirms or corrects the suggestion.' })
export class ReviseCaseInput {
  @Field(() => ID) caseId!: string;
  @Field(() => Int, { description: 'ICDR 0-4.' }) drGrade!: number;
  @Field(() => Boolean, { nullable: true }) maculopathy?: boolean | null;
  @Field(() => RevisedDiagnosisInput, { nullable: true, description: 'Recorded for the photograph’s eye at its visit.' }) diagnosis?: RevisedDiagnosisInput | null;
  @Field(() => ID, { nullable: true, description: 'The GradeSuggestion.id that was shown; default: the latest suggestion for this photograph.' }) suggestionId?: string | null;
}

@ObjectType()
export class RevisedSuggestion {
  @Field(() => ID) id!: string;
  @Field(() => String) status!: string;
  @Field(() => Int, { nullable: true }) suggestedGrade!: number | null;
  @Field(() => Boolean, { nullable: true, description: 'Null when nothing was suggested (abstained).' }) agrees!: boolean | null;
}

@ObjectType()
export class ReviseCaseResult {
  @Field(() => Case, { description: 'The case with its new reference grading.' }) case!: Case;
  @Field(() => ID) gradingId!: string;
  @Field(() => RevisedSuggestion, { nullable: true, description: 'The suggestion this revision was compared with; null when none was shown for the photograph.' }) suggestion!: RevisedSuggestion | null;
}

@ObjectType()
export class AgreementPeriod {
  @Field(() => String, { description: 'YYYY-MM of the revisions, or "all".' }) period!: string;
  @Field(() => Int) revised!: number;
  @Field(() => Int, { description: 'Revisions of a suggested grade (abstentions have none to compare).' }) compared!: number;
  @Field(() => Int) agreed!: number;
  @Field(() => Float, { nullable: true }) agreementRate!: number | null;
  @Field(() => Int) abstained!: number;
  @Field(() => [[Int]], { description: '5 × 5: confusion[suggested grade][clinician grade].' }) confusion!: number[][];
}

@ObjectType({ description: 'Agreement of clinicians with the grade suggestions they were shown.' })
export class SuggestionMonitoring {
  @Field(() => AgreementPeriod) overall!: AgreementPeriod;
  @Field(() => [AgreementPeriod], { description: 'By month of the revision, oldest first.' }) months!: AgreementPeriod[];
}

