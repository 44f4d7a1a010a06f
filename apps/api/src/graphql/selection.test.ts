import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kind, parse, type FragmentDefinitionNode, type OperationDefinitionNode, type FieldNode } from 'graphql';
import { selectsField } from './selection.js';

/** The resolve info of the operation's first root field, as graphql-js hands it to a resolver. */
function infoOf(document: string) {
  const parsed = parse(document);
  const operation = parsed.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION)!;
  const fragments = Object.fromEntries(
    parsed.definitions.filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION).map((fragment) => [fragment.name.value, fragment]),
  );
  return { fieldNodes: [operation.selectionSet.selections[0] as FieldNode], fragments };
}

test('a field of the selection, directly, through an inline fragment and through a named fragment', () => {
  assert.equal(selectsField(infoOf('{ similarCases { suggestion { grade } } }'), 'suggestion'), true);
  assert.equal(selectsField(infoOf('{ similarCases { ... on SimilarCasesResult { suggestion { grade } } } }'), 'suggestion'), true);
  assert.equal(selectsField(infoOf('{ similarCases { ...S } } fragment S on SimilarCasesResult { suggestion { grade } }'), 'suggestion'), true);
  assert.equal(selectsField(infoOf('{ similarCases { hits { rank } } }'), 'suggestion'), false);
});

test('a path names a field of a field: hits.attention only when the hits ask for it', () => {
  const hitsAttention = (document: string) => selectsField(infoOf(document), 'hits', 'attention');
  assert.equal(hitsAttention('{ similarCases { hits { rank attention { width } } } }'), true);
  assert.equal(hitsAttention('{ similarCases { hits { ...H } } } fragment H on SimilarCaseHit { attention { values } }'), true);
  assert.equal(hitsAttention('{ similarCases { ...R } } fragment R on SimilarCasesResult { hits { ... on SimilarCaseHit { attention { width } } } }'), true);
  // The query photograph's own map is another field; hits without attention, or no hits at all, ask for none.
  assert.equal(hitsAttention('{ similarCases { queryAttention { width } hits { rank } } }'), false);
  assert.equal(hitsAttention('{ similarCases { modelVersion } }'), false);
  // Two selections of hits (aliases): one asking is enough.
  assert.equal(hitsAttention('{ similarCases { a: hits { rank } b: hits { attention { width } } } }'), true);
});

test('a fragment that spreads itself does not loop', () => {
  assert.equal(selectsField(infoOf('{ similarCases { ...A } } fragment A on SimilarCasesResult { ...A modelVersion }'), 'suggestion'), false);
});
