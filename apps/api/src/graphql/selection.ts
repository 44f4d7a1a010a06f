// Reading a resolver's selection set: lets a resolver skip work for a field nobody asked for.
import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

type Selection = Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>;

/** The fields called `name` in a selection set, found directly, through inline fragments or named fragments. */
function fieldsNamed(info: Selection, selectionSet: SelectionSetNode | undefined, name: string, seen: Set<string> = new Set()): FieldNode[] {
  return (selectionSet?.selections ?? []).flatMap((selection): FieldNode[] => {
    if (selection.kind === Kind.FIELD) return selection.name.value === name ? [selection] : [];
    if (selection.kind === Kind.INLINE_FRAGMENT) return fieldsNamed(info, selection.selectionSet, name, seen);
    const fragment = info.fragments[selection.name.value];
    if (!fragment || seen.has(selection.name.value)) return [];
    return fieldsNamed(info, fragment.selectionSet, name, new Set([...seen, selection.name.value]));
  });
}

/**
 * Whether the field's selection asks for the field at `path` (one name: a field of its own; more: a field of a
 * field's selection, e.g. 'hits', 'attention'), directly or through inline or named fragments.
 */
export function selectsField(info: Selection, ...path: [string, ...string[]]): boolean {
  let nodes: readonly FieldNode[] = info.fieldNodes;
  for (const name of path) {
    nodes = nodes.flatMap((node) => fieldsNamed(info, node.selectionSet, name));
    if (nodes.length === 0) return false;
  }
  return true;
}
