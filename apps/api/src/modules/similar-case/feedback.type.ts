import 'reflect-metadata';
import { DateTimeISOResolver } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { AttentionMap, SimilarCasesResult } from './similar-case.type.js';

@InputType({ description: "A clinician's judgement of one hit of a search." })
export class RelevanceMarkInput {
  @Field(() => ID, { description: 'A hit of the search (its case id).' }) caseId!: string;
  @Field(() => Boolean) relevant!: boolean;
}

@InputType()
export class RelevanceFeedbackInput {
  @Field(() => ID, { description: 'The searchId a similarCases result (or an earlier refinement) returned.' }) searchId!: string;
  @Field(() => [RelevanceMarkInput], { description: '1-100 marks, one per hit; each must be a hit of that search.' }) marks!: RelevanceMarkInput[];
}

@ObjectType()
export class RelevanceFeedbackResult {
  @Field(() => Int, { description: 'Marks stored (a second mark on the same hit of the same search replaces the first).' }) recorded!: number;
  @Field(() => ID, { description: 'The search the marks were given on.' }) markedSearchId!: string;
  @Field(() => SimilarCasesResult, { description: 'The search re-run with the refined query (Rocchio), same filters and k; its searchId takes further marks.' })
  refined!: SimilarCasesResult;
}

export enum FeedbackExportFormat {
  CSV = 'CSV',
  JSON = 'JSON',
}
registerEnumType(FeedbackExportFormat, { name: 'FeedbackExportFormat' });

@ObjectType({ description: 'Relevance marks as training pairs for the next model.' })
export class RelevanceFeedbackExport {
  @Field(() => FeedbackExportFormat) format!: FeedbackExportFormat;
  @Field(() => Int) rows!: number;
  @Field(() => String, { description: 'CSV (header row first) or a JSON array; columns: search_id, query_image_id, query_content_hash, hit_image_id, hit_content_hash, hit_rank, relevant, subject, role, model_version, marked_at, search_region.' })
  content!: string;
}

@InputType()
export class RelevanceFeedbackExportInput {
  @Field(() => FeedbackExportFormat, { defaultValue: FeedbackExportFormat.CSV }) format!: FeedbackExportFormat;
  @Field(() => DateTimeISOResolver, { nullable: true, description: 'Marks made at or after this time.' }) from?: Date | null;
  @Field(() => DateTimeISOResolver, { nullable: true, description: 'Marks made before this time.' }) to?: Date | null;
}

@InputType()
export class ExplainSimilarityInput {
  @Field(() => ID, { nullable: true, description: 'The stored query photograph (give this or uploadToken).' }) imageId?: string | null;
  @Field(() => String, { nullable: true, description: 'The uploaded query photograph (give this or imageId).' }) uploadToken?: string | null;
  @Field(() => ID, { description: 'The hit to explain.' }) caseId!: string;
}

@ObjectType({ description: 'A cell of the feature grid (row 0 at the top).' })
export class FeatureCell {
  @Field(() => Int) row!: number;
  @Field(() => Int) column!: number;
}

@ObjectType()
export class CellCorrespondence {
  @Field(() => FeatureCell) queryCell!: FeatureCell;
  @Field(() => FeatureCell) hitCell!: FeatureCell;
  @Field(() => Float, { description: 'Cosine similarity of the two cells’ region descriptors.' }) similarity!: number;
}

@ObjectType({ description: 'Which regions of the query and of a hit correspond: paired heat maps over the model crops, and the strongest mutual matches.' })
export class SimilarityExplanation {
  @Field(() => String) modelVersion!: string;
  @Field(() => AttentionMap, { description: 'Per query cell, how well its best match in the hit corresponds (0-1 over the fundus, 0 outside it).' }) queryMap!: AttentionMap;
  @Field(() => AttentionMap, { description: 'The same per hit cell.' }) hitMap!: AttentionMap;
  @Field(() => [CellCorrespondence], { description: 'Mutual nearest-neighbour cells, most similar first (at most 8).' }) matches!: CellCorrespondence[];
}
