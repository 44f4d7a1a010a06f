import 'reflect-metadata';
import { Field, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { LocalDateResolver } from 'graphql-scalars';
import { AntiVegfAgent, DiabetesType, Eye, Laterality, Sex, TreatmentType } from '../common/enums.js';
import { Case } from '../case/case.type.js';
import { IdentifierInput } from '../ehr-link/ehr-link.type.js';

@InputType()
export class IngestPatientInput {
  @Field(() => String) mrn!: string;
  @Field(() => String, { description: 'Identifier system of the MRN (FHIR Identifier.system), e.g. urn:oid:... of the hospital.' }) mrnSystem!: string;
  @Field(() => Int, { nullable: true }) birthYear?: number | null;
  @Field(() => Sex, { nullable: true }) sex?: Sex | null;
  @Field(() => DiabetesType, { nullable: true }) diabetesType?: DiabetesType | null;
}

@InputType()
export class IngestGradingInput {
  @Field(() => Int, { description: 'ICDR 0-4.' }) drGrade!: number;
  @Field(() => Boolean, { nullable: true }) maculopathy?: boolean | null;
  @Field(() => Int, { nullable: true }) macularEdemaRisk?: number | null;
  @Field(() => String, { nullable: true }) grader?: string | null;
}

@InputType()
export class IngestDiagnosisInput {
  @Field(() => String) icd10Code!: string;
  @Field(() => String) text!: string;
  @Field(() => Laterality) eye!: Laterality;
  @Field(() => LocalDateResolver) date!: string;
}

@InputType()
export class IngestTreatmentInput {
  @Field(() => TreatmentType) type!: TreatmentType;
  @Field(() => AntiVegfAgent, { nullable: true }) agent?: AntiVegfAgent | null;
  @Field(() => Laterality) eye!: Laterality;
  @Field(() => LocalDateResolver) date!: string;
  @Field(() => String, { nullable: true }) notes?: string | null;
}

@InputType({ description: 'Save an uploaded photograph as a case (the CBR "retain" step).' })
export class IngestCaseInput {
  @Field(() => String, { description: 'The photograph, from POST /uploads.' }) uploadToken!: string;
  @Field(() => String, { defaultValue: 'clinic', description: 'Dataset the patient belongs to.' }) dataset!: string;
  @Field(() => IngestPatientInput) patient!: IngestPatientInput;
  @Field(() => LocalDateResolver) visitDate!: string;
  @Field(() => Eye) eye!: Eye;
  @Field(() => IngestGradingInput, { nullable: true }) grading?: IngestGradingInput | null;
  @Field(() => [IngestDiagnosisInput], { defaultValue: [] }) diagnoses!: IngestDiagnosisInput[];
  @Field(() => [IngestTreatmentInput], { defaultValue: [] }) treatments!: IngestTreatmentInput[];
  @Field(() => [IdentifierInput], {
    defaultValue: [],
    description: "The photograph's identifiers elsewhere, linked in the same transaction: Study Instance UID (system urn:dicom:uid), accession number, the EHR's own id. One already pointing to another case is CONFLICT.",
  })
  studyIdentifiers!: IdentifierInput[];
}

export enum IngestStatus {
  ADDED = 'ADDED',
  DUPLICATE = 'DUPLICATE',
}
registerEnumType(IngestStatus, { name: 'IngestStatus', description: 'DUPLICATE: the same photograph (content hash) was already stored for this patient and eye; nothing was written. Stored for another patient or eye, the mutation fails with CONFLICT (extensions.caseId: the stored case).' });

@ObjectType()
export class IngestCaseResult {
  @Field(() => IngestStatus) status!: IngestStatus;
  @Field(() => Case) case!: Case;
}
