import 'reflect-metadata';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { Case } from '../case/case.type.js';

@ObjectType({ description: "A model's attention heat map over the preprocessed (cropped, square) photograph, row-major." })
export class AttentionMap {
  @Field(() => Int) width!: number;
  @Field(() => Int) height!: number;
  @Field(() => [Float], { description: 'width × height values, row by row from the top-left.' }) values!: number[];
}

@ObjectType()
export class SimilarCaseHit {
  @Field(() => Int, { description: '1 for the most similar.' }) rank!: number;
  @Field(() => Float, { description: 'Cosine similarity of the two embeddings, -1 to 1.' }) similarity!: number;
  @Field(() => Case) case!: Case;
  @Field(() => AttentionMap, { nullable: true, description: 'Computed when the case was embedded; null for fixture embeddings.' }) attention!: AttentionMap | null;
}

@ObjectType()
export class SimilarCasesResult {
  @Field(() => Case, { nullable: true, description: 'The stored query case: the searched case, or the stored case with the uploaded bytes (a photograph already saved); null for an upload not on file.' }) query!: Case | null;
  @Field(() => AttentionMap, { nullable: true }) queryAttention!: AttentionMap | null;
  @Field(() => String, { description: 'The embedding model version both query and hits were compared with.' }) modelVersion!: string;
  @Field(() => [SimilarCaseHit]) hits!: SimilarCaseHit[];
  @Field(() => ID, { description: 'This search as recorded: relevance feedback (submitRelevanceFeedback) names it. A search is recorded (its query vector, filters and hits) when this field is selected; one that does not select it is not (it is audited either way).' }) searchId!: string;
}
