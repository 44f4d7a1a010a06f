// GraphQL object types of a case: one fundus photograph in the context of its patient's records.
// Services return plain objects of these shapes; the classes only declare the schema.
import 'reflect-metadata';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { LocalDateResolver } from 'graphql-scalars';
import { AntiVegfAgent, DiabetesType, Eye, GradeSource, ImageQuality, Laterality, Sex, TreatmentType } from '../common/enums.js';
import { PageInfo } from '../common/pagination.js';

@ObjectType({ description: 'Where a patient came from; synthetic cohorts are marked.' })
export class Dataset {
  @Field(() => String) name!: string;
  @Field(() => Boolean) isSynthetic!: boolean;
}

@ObjectType()
export class Hba1cReading {
  @Field(() => LocalDateResolver) date!: string;
  @Field(() => Float, { description: 'Percent (NGSP/DCCT units).' }) percent!: number;
}

@ObjectType()
export class ExternalLink {
  @Field(() => String) system!: string;
  @Field(() => String) identifier!: string;
}

@ObjectType()
export class Patient {
  @Field(() => ID) id!: string;
  @Field(() => String, { description: 'Medical record number, unique within mrnSystem.' }) mrn!: string;
  @Field(() => String) mrnSystem!: string;
  @Field(() => Int, { nullable: true }) birthYear!: number | null;
  @Field(() => Sex) sex!: Sex;
  @Field(() => DiabetesType) diabetesType!: DiabetesType;
  @Field(() => Int, { nullable: true }) diabetesDiagnosisYear!: number | null;
  @Field(() => Dataset) dataset!: Dataset;
  @Field(() => Boolean, { description: 'True for generated demo or test patients; never real people.' }) isSynthetic!: boolean;
  @Field(() => [Hba1cReading]) hba1cReadings!: Hba1cReading[];
  @Field(() => [ExternalLink]) externalLinks!: ExternalLink[];
}

@ObjectType()
export class Visit {
  @Field(() => ID) id!: string;
  @Field(() => LocalDateResolver) date!: string;
}

@ObjectType({ description: 'A colour fundus photograph of one eye.' })
export class FundusImage {
  @Field(() => ID) id!: string;
  @Field(() => Eye) eye!: Eye;
  @Field(() => Int) width!: number;
  @Field(() => Int) height!: number;
  @Field(() => ImageQuality) quality!: ImageQuality;
  @Field(() => String, { description: 'SHA-256 of the stored bytes.' }) contentHash!: string;
}

@ObjectType({ description: 'A DR grading on the ICDR scale.' })
export class Grading {
  @Field(() => ID) id!: string;
  @Field(() => Int, { description: 'ICDR 0 none, 1 mild NPDR, 2 moderate NPDR, 3 severe NPDR, 4 proliferative DR.' }) drGrade!: number;
  @Field(() => String) drGradeName!: string;
  @Field(() => Boolean, { nullable: true }) maculopathy!: boolean | null;
  @Field(() => Int, { nullable: true, description: 'Risk of macular oedema 0-2 where the source grades it.' }) macularEdemaRisk!: number | null;
  @Field(() => GradeSource) source!: GradeSource;
  @Field(() => String, { nullable: true }) grader!: string | null;
  @Field(() => String, { nullable: true, description: 'Original scale when not ICDR, e.g. messidor-0-3.' }) originalScale!: string | null;
  @Field(() => String, { nullable: true }) originalValue!: string | null;
  @Field(() => LocalDateResolver) date!: string;
}

@ObjectType()
export class Diagnosis {
  @Field(() => ID) id!: string;
  @Field(() => String, { description: 'ICD-10-CM code, e.g. E11.3411.' }) code!: string;
  @Field(() => String) text!: string;
  @Field(() => Laterality) eye!: Laterality;
  @Field(() => LocalDateResolver) date!: string;
}

@ObjectType()
export class Treatment {
  @Field(() => ID) id!: string;
  @Field(() => TreatmentType) type!: TreatmentType;
  @Field(() => AntiVegfAgent, { nullable: true }) agent!: AntiVegfAgent | null;
  @Field(() => Laterality) eye!: Laterality;
  @Field(() => LocalDateResolver) date!: string;
  @Field(() => String, { nullable: true }) notes!: string | null;
}

@ObjectType({ description: 'A grading of a later photograph of the same eye: how the eye went on.' })
export class FollowUpGrading {
  @Field(() => ID, { description: 'The later photograph (its case id).' }) imageId!: string;
  @Field(() => LocalDateResolver, { description: 'Visit date of the later photograph.' }) visitDate!: string;
  @Field(() => LocalDateResolver, { description: 'When it was graded.' }) date!: string;
  @Field(() => Int, { description: 'ICDR 0 none, 1 mild NPDR, 2 moderate NPDR, 3 severe NPDR, 4 proliferative DR.' }) drGrade!: number;
  @Field(() => String) drGradeName!: string;
  @Field(() => Boolean, { nullable: true }) maculopathy!: boolean | null;
  @Field(() => GradeSource, { description: 'Who graded; MODEL_SUGGESTION gradings are model output, not a reference.' }) source!: GradeSource;
}

@ObjectType({
  description:
    "What happened after the case's visit (\"how did it go\"): records dated after the visit date, for the same eye (or both/unspecified eyes). " +
    'Records dated on or before the visit are the case\'s own diagnoses and treatments, never repeated here. ' +
    'An undated case (visit date 1900-01-01, the placeholder of labels without dates) counts every dated record as later.',
})
export class CaseFollowUp {
  @Field(() => [FollowUpGrading], { description: 'Gradings of later photographs of the same eye, by visit date, oldest first.' }) gradings!: FollowUpGrading[];
  @Field(() => [Diagnosis], { description: 'Diagnoses of this eye (or both/unspecified eyes) dated after the visit, oldest first.' }) diagnoses!: Diagnosis[];
  @Field(() => [Treatment], { description: 'Treatments of this eye (or both/unspecified eyes) dated after the visit, oldest first.' }) treatments!: Treatment[];
}

@ObjectType({ description: 'A fundus photograph with its patient, visit, gradings, the diagnoses and treatments of that eye known at the visit, and what followed.' })
export class Case {
  @Field(() => ID, { description: 'The id of the photograph.' }) id!: string;
  @Field(() => Boolean) isSynthetic!: boolean;
  @Field(() => FundusImage) image!: FundusImage;
  @Field(() => Patient) patient!: Patient;
  @Field(() => Visit) visit!: Visit;
  @Field(() => Int, { nullable: true, description: 'Age in whole years at the visit, from the birth year (±1 year); null when the birth year or the visit date (undated labels) is unknown.' }) ageAtVisit!: number | null;
  @Field(() => Grading, { nullable: true, description: 'The reference grading: the latest one not made by a model.' }) referenceGrading!: Grading | null;
  @Field(() => [Grading], { description: 'Every grading of this photograph, oldest first.' }) gradings!: Grading[];
  @Field(() => [Diagnosis], { description: "The patient's diagnoses for this eye (or both/unspecified eyes) dated on or before the visit date, oldest first: what was known when the photograph was taken. Later ones are in followUp." })
  diagnoses!: Diagnosis[];
  @Field(() => [Treatment], { description: "The patient's treatments of this eye (or both/unspecified eyes) dated on or before the visit date, oldest first. Later ones are in followUp." })
  treatments!: Treatment[];
  @Field(() => CaseFollowUp, { description: 'What happened after this visit: later gradings of this eye, later diagnoses and treatments.' }) followUp!: CaseFollowUp;
}

@ObjectType()
export class CaseConnection {
  @Field(() => [Case]) nodes!: Case[];
  @Field(() => PageInfo) pageInfo!: PageInfo;
}
