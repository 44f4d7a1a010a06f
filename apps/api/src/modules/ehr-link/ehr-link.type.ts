import 'reflect-metadata';
import { Field, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { LocalDateResolver } from 'graphql-scalars';
import { Case, Patient } from '../case/case.type.js';
import { DiabetesType, Sex } from '../common/enums.js';

@InputType({ description: 'A FHIR Identifier: system (an absolute URI: the MRN namespace, urn:dicom:uid, the EHR) and value.' })
export class IdentifierInput {
  @Field(() => String, { description: 'FHIR Identifier.system, e.g. urn:oid:2.16.840.1.113883.3.123 or urn:dicom:uid.' }) system!: string;
  @Field(() => String, { description: 'FHIR Identifier.value: letters, digits and . _ : / + -, at most 128 characters.' }) value!: string;
}

@InputType()
export class DemographicsInput {
  @Field(() => Int, { nullable: true }) birthYear?: number | null;
  @Field(() => Sex, { nullable: true }) sex?: Sex | null;
  @Field(() => DiabetesType, { nullable: true }) diabetesType?: DiabetesType | null;
  @Field(() => Int, { nullable: true }) diabetesDiagnosisYear?: number | null;
}

export enum UpsertStatus {
  CREATED = 'CREATED',
  UPDATED = 'UPDATED',
  UNCHANGED = 'UNCHANGED',
}
registerEnumType(UpsertStatus, { name: 'UpsertStatus', description: 'UNCHANGED: the stored record already said this; nothing was written.' });

export enum LinkStatus {
  LINKED = 'LINKED',
  UNCHANGED = 'UNCHANGED',
}
registerEnumType(LinkStatus, { name: 'LinkStatus', description: 'UNCHANGED: this identifier already pointed to this case; nothing was written.' });

@ObjectType()
export class UpsertPatientResult {
  @Field(() => UpsertStatus) status!: UpsertStatus;
  @Field(() => Patient) patient!: Patient;
}

@ObjectType()
export class LinkCaseResult {
  @Field(() => LinkStatus) status!: LinkStatus;
  @Field(() => Case) case!: Case;
}

@InputType({ description: 'A DR grading of a stored photograph. Becomes the reference grade unless a later-dated grading exists.' })
export class RecordGradingInput {
  @Field(() => String) caseId!: string;
  @Field(() => Int, { description: 'ICDR 0-4.' }) drGrade!: number;
  @Field(() => Boolean, { nullable: true }) maculopathy?: boolean | null;
  @Field(() => Int, { nullable: true, description: 'Risk of macular oedema 0-2.' }) macularEdemaRisk?: number | null;
  @Field(() => String, { nullable: true, description: 'Who graded (a name or the EHR user id).' }) grader?: string | null;
  @Field(() => LocalDateResolver, { nullable: true, description: 'Defaults to today; never in the future nor before the visit.' }) gradedOn?: string | null;
}
