import 'reflect-metadata';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { Case } from '../case/case.type.js';

@ObjectType()
export class SimilarCaseHit {
  @Field(() => Int, { description: '1 for the most similar.' }) rank!: number;
  @Field(() => Float, { description: 'Cosine similarity of the two embeddings, -1 to 1.' }) similarity!: number;
  @Field(() => Case) case!: Case;
}

@ObjectType()
export class SimilarCasesResult {
  @Field(() => Case) query!: Case;
  @Field(() => String, { description: 'The embedding model version both query and hits were compared with.' }) modelVersion!: string;
  @Field(() => [SimilarCaseHit]) hits!: SimilarCaseHit[];
}
