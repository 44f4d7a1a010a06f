// Monaco's web workers, bundled by Next.js (Turbopack emits each `new Worker(new URL(...))` as its own chunk on
// this origin). Without this GraphiQL 5 has no editor workers; graphiql/setup-workers/webpack does the same but
// logs every worker it starts. Browser-only: imported from the client component.
type MonacoEnvironment = { getWorker(workerId: string, label: string): Worker };

(globalThis as typeof globalThis & { MonacoEnvironment?: MonacoEnvironment }).MonacoEnvironment = {
  getWorker(_workerId, label) {
    switch (label) {
      case 'json':
        return new Worker(new URL('monaco-editor/esm/vs/language/json/json.worker.js', import.meta.url));
      case 'graphql':
        return new Worker(new URL('monaco-graphql/esm/graphql.worker.js', import.meta.url));
      default:
        return new Worker(new URL('monaco-editor/esm/vs/editor/editor.worker.js', import.meta.url));
    }
  },
};
