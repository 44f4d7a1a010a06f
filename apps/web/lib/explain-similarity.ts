// Which regions of the query and of a compared hit correspond (the API's explainSimilarity): paired heat maps
// over the two model crops for the compare view. Server-side only.
import 'server-only';
import { requestGraphql } from './api-request';
import type { ExplainHitQuery, ExplainHitQueryVariables, ExplainSimilarityInput } from './generated/graphql';

export const EXPLAIN_SIMILARITY_QUERY = /* GraphQL */ `
  query ExplainHit($input: ExplainSimilarityInput!) {
    explainSimilarity(input: $input) {
      modelVersion
      queryMap { width height values }
      hitMap { width height values }
      matches { queryCell { row column } hitCell { row column } similarity }
    }
  }
`;

export type SimilarityExplanation = ExplainHitQuery['explainSimilarity'];
export type ExplainOutcome = { ok: true; explanation: SimilarityExplanation } | { ok: false; code: string; message: string };

export async function explainSimilarity(input: ExplainSimilarityInput, returnTo: string): Promise<ExplainOutcome> {
  const variables: ExplainHitQueryVariables = { input };
  const outcome = await requestGraphql<ExplainHitQuery>({ operationName: 'ExplainHit', query: EXPLAIN_SIMILARITY_QUERY, variables, returnTo });
  if (!outcome.ok) return outcome;
  return { ok: true, explanation: outcome.data.explainSimilarity };
}
