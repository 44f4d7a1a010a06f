'use client';
// GraphiQL 5 (Monaco editors, the schema's docs from introspection), bundled from npm: nothing loads from a CDN.
// Its fetcher posts to this app's /explorer/graphql, which adds the session's token on the server.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/style.css';
import dynamic from 'next/dynamic';
import './setup-workers';

// Monaco touches `window` when it loads, so GraphiQL renders in the browser only.
const GraphiQL = dynamic(() => import('graphiql').then((module) => module.GraphiQL), {
  ssr: false,
  loading: () => <p className="explorer-loading">Loading the explorer…</p>,
});

const fetcher = createGraphiQLFetcher({ url: '/explorer/graphql' });

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
