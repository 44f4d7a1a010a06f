import type { NextConfig } from 'next';

const nextConfig: NextConfig = {
  // Pages render on the server and call the GraphQL API from there, so the API needs no CORS and the
  // browser never learns its address.
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
