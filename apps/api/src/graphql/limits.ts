// Query depth and cost limits: a request that asks for too much is refused before any resolver runs.
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, Kind, type ASTNode, type FragmentDefinitionNode, type GraphQLSchema, type ValidationContext, type ValidationRule } from 'graphql';
import { fieldExtensionsEstimator, getComplexity, simpleEstimator } from 'graphql-query-complexity';

function selectionDepth(node: ASTNode, fragments: Record<string, FragmentDefinitionNode>, seen: Set<string>): number {
  if (!('selectionSet' in node) || !node.selectionSet) return 0;
  let deepest = 0;
  for (const selection of node.selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      deepest = Math.max(deepest, 1 + selectionDepth(selection, fragments, seen));
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      deepest = Math.max(deepest, selectionDepth(selection, fragments, seen));
    } else {
      const name = selection.name.value;
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue; // graphql-js reports unknown/cyclic fragments itself
      deepest = Math.max(deepest, selectionDepth(fragment, fragments, new Set([...seen, name])));
    }
  }
  return deepest;
}

export function depthLimitRule(maxDepth: number): ValidationRule {
  return (context: ValidationContext) => ({
    Document(document) {
      const fragments: Record<string, FragmentDefinitionNode> = {};
      for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
      for (const definition of document.definitions) {
        if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
        const depth = selectionDepth(definition, fragments, new Set());
        if (depth > maxDepth) {
          context.reportError(new GraphQLError(`Query depth ${depth} exceeds the limit of ${maxDepth}`, { nodes: [definition], extensions: { code: 'QUERY_TOO_COMPLEX' } }));
        }
      }
    },
  });
}

export function complexityLimitPlugin(schema: GraphQLSchema, maxComplexity: number): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          let complexity: number;
          try {
            complexity = getComplexity({
              schema,
              query: document,
              operationName: request.operationName,
              variables: request.variables ?? {},
              estimators: [fieldExtensionsEstimator(), simpleEstimator({ defaultComplexity: 1 })],
            });
          } catch (error) {
            // getComplexity coerces the variables first; a value of the wrong type is the client's mistake.
            if (error instanceof GraphQLError) throw new GraphQLError(error.message, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
            throw error;
          }
          if (complexity > maxComplexity) {
            throw new GraphQLError(`Query complexity ${complexity} exceeds the limit of ${maxComplexity}; ask for fewer hits or fields`, {
              extensions: { code: 'QUERY_TOO_COMPLEX', http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}

/**
 * A second cost limit in the unit that costs most: similar-case hits. Sums k over every similarCases field of
 * the operation, aliases included, so sixty aliased k = 100 searches are refused like one k = 6000 would be.
 */
export function hitsLimitPlugin(schema: GraphQLSchema, maxHits: number): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          let hits: number;
          try {
            hits = getComplexity({
              schema,
              query: document,
              operationName: request.operationName,
              variables: request.variables ?? {},
              estimators: [
                ({ field, args, childComplexity }) => {
                  if (field.name !== 'similarCases') return childComplexity;
                  const k = Number((args.input as { k?: unknown } | undefined)?.k ?? 10);
                  // Out-of-range k is the service's BAD_USER_INPUT to report; here it counts as its nearest valid value.
                  return Number.isFinite(k) ? Math.min(Math.max(Math.trunc(k), 1), 100) : 1;
                },
              ],
            });
          } catch {
            return; // complexityLimitPlugin reports malformed variables
          }
          if (hits > maxHits) {
            throw new GraphQLError(`The request asks for ${hits} similar-case hits in all; the limit is ${maxHits} per request (aliases count)`, {
              extensions: { code: 'QUERY_TOO_COMPLEX', http: { status: 400 } },
            });
          }
        },
      };
    },
  };
}
