import 'reflect-metadata';
import { Field, Float, ID, InputType, Int } from 'type-graphql';
import { Eye, Sex, TreatmentType } from '../common/enums.js';

@InputType({ description: 'Which cases may be returned. Every field narrows the result; omitted fields do not filter.' })
export class CaseFiltersInput {
  @Field(() => [Int], { nullable: true, description: 'Reference ICDR grades (0-4) the hits must have.' })
  drGrades?: number[] | null;

  @Field(() => Eye, { nullable: true })
  eye?: Eye | null;

  @Field(() => Sex, { nullable: true })
  sex?: Sex | null;

  @Field(() => Int, { nullable: true, description: 'Minimum age in years at the visit (inclusive).' })
  ageMin?: number | null;

  @Field(() => Int, { nullable: true, description: 'Maximum age in years at the visit (inclusive).' })
  ageMax?: number | null;

  @Field(() => [TreatmentType], { nullable: true, description: "Hits' eyes must have received at least one of these treatments." })
  treatmentTypes?: TreatmentType[] | null;
}

@InputType({ description: 'A rectangle on the query photograph, in fractions (0-1) of the square crop the model sees (GET /photographs/<id>?size=crop; the frame of every heat map), top-left origin.' })
export class RegionInput {
  @Field(() => Float) x!: number;
  @Field(() => Float) y!: number;
  @Field(() => Float) width!: number;
  @Field(() => Float) height!: number;
}

@InputType()
export class SimilarCasesInput {
  @Field(() => ID, { nullable: true, description: 'A stored photograph to search with (give this or uploadToken).' })
  imageId?: string | null;

  @Field(() => String, { nullable: true, description: 'A new photograph, from POST /uploads (give this or imageId).' })
  uploadToken?: string | null;

  @Field(() => Int, { defaultValue: 10, description: 'How many hits, 1-100.' })
  k!: number;

  @Field(() => CaseFiltersInput, { nullable: true })
  filters?: CaseFiltersInput | null;

  @Field(() => Boolean, { defaultValue: true, description: "Leave out the query patient's own photographs (both eyes, all visits)." })
  excludeSamePatient!: boolean;

  @Field(() => RegionInput, { nullable: true, description: 'Search by this region of the query photograph (a descriptor pooled from the model feature map under it) instead of the whole photograph.' })
  region?: RegionInput | null;

  @Field(() => Boolean, {
    defaultValue: false,
    description:
      'Rank every matching case (the exact top-k) instead of the approximate index search. For evaluation: at a million cases it takes hundreds of milliseconds where the default takes a few.',
  })
  exact!: boolean;
}
