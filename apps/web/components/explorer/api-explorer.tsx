'use client';
// GraphiQL 5 (Monaco editors, the schema's docs from introspection), bundled from npm: nothing loads from a CDN.
// Its fetcher posts to this app's /explorer/graphql, which adds the session's token on the server.
import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import 'graphiql/style.css';
import { getIntrospectionQuery } from 'graphql';
import dynamic from 'next/dynamic';
import './setup-workers';

// Monaco touches `window` when it loads, so GraphiQL renders in the browser only.
const GraphiQL = dynamic(() => import('graphiql').then((module) => module.GraphiQL), {
  ssr: false,
  loading: () => <p className="explorer-loading">Loading the explorer…</p>,
});

// The API refuses queries deeper than 12 levels (apps/api/src/graphql/limits.ts), and graphql-js's standard
// introspection query is 15 deep: __schema > types > fields > args > type is 5 (+1 for the field under it), and
// it follows type wrappers (non-null, list) 9 levels. schema.graphql wraps a type at most 3 times (`[X!]!`), so 6
// levels (depth 12) describe every type; should a deeper wrapping appear, buildClientSchema fails and the docs
// say "Error fetching schema" rather than show a wrong type.
const INTROSPECTION_TYPE_DEPTH = 6;
const INTROSPECTION_OPERATION = 'IntrospectionQuery';
// GraphiQL's own defaults (inputValueDeprecation and schemaDescription off), only shallower.
const introspectionQuery = getIntrospectionQuery({ typeDepth: INTROSPECTION_TYPE_DEPTH });

const postToProxy = createGraphiQLFetcher({ url: '/explorer/graphql' });

const fetcher: Fetcher = (params, options) =>
  postToProxy(params.operationName === INTROSPECTION_OPERATION ? { ...params, query: introspectionQuery } : params, options);

const DEFAULT_QUERY = `# Queries run as you, with your role's permissions; the API records them in its audit log.
# Ctrl-Enter runs the query; the book icon on the left opens the schema's documentation.
{
  health {
    status
    database
  }
}
`;

export function ApiExplorer() {
  return (
    <div className="explorer" data-testid="api-explorer">
      <GraphiQL fetcher={fetcher} defaultQuery={DEFAULT_QUERY} shouldPersistHeaders={false} isHeadersEditorEnabled={false} />
    </div>
  );
}
