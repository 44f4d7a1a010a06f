import 'reflect-metadata';
import { Field, ID, InputType, Int } from 'type-graphql';
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

  @Field(() => Boolean, {
    defaultValue: false,
    description:
      'Rank every matching case (the exact top-k) instead of the approximate index search. For evaluation: at a million cases it takes hundreds of milliseconds where the default takes a few.',
  })
  exact!: boolean;
}
