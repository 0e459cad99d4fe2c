import { defineConfig } from 'vitest/config';

// Integration tests start real masters and workers; this is a 2-core machine, so at most two
// test files run at once (each file uses its own 127.0.0.x addresses).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
});
