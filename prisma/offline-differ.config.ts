// Offline differ: the WASM schema engine wants an adapter, but a diff between two schema files never touches a
// database. This adapter answers the engine's one probe (server version) and refuses everything else.
const INT32 = 0, BOOLEAN = 5, TEXT = 7;
const connection = {
  provider: 'postgres',
  adapterName: '@fundus-cbr/offline-differ',
  getConnectionInfo: () => ({ schemaName: 'public', supportsRelationJoins: true, maxBindValues: 32766 }),
  queryRaw: async ({ sql }) => {
    if (sql.includes('server_version_num')) {
      return { columnNames: ['exists', 'version', 'numeric_version'], columnTypes: [BOOLEAN, TEXT, INT32], rows: [[true, 'PostgreSQL 15.0 (offline differ)', 150000]] };
    }
    throw new Error(`offline differ: unexpected query ${sql.slice(0, 80)}`);
  },
  executeRaw: async ({ sql }) => { throw new Error(`offline differ: unexpected statement ${sql.slice(0, 80)}`); },
  executeScript: async () => { throw new Error('offline differ: scripts are not run'); },
  startTransaction: async () => { throw new Error('offline differ: no transactions'); },
  dispose: async () => {},
};
export default {
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => ({ ...connection, connect: async () => connection, connectToShadowDb: async () => connection }),
};
