import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// A folder of src/ imports only from the folders before it here, and ops/ and stream/ not from
// each other.
const LAYERS = ['protocol', 'common', 'ops', 'stream', 'consensus', 'state', 'master', 'worker', 'client'];

const NODE_IO = ['fs', 'fs/promises', 'http', 'https', 'net', 'worker_threads', 'child_process', 'timers/promises'];
const IO_MODULES = [...NODE_IO.flatMap((m) => [`node:${m}`, m]), 'undici', 'piscina', 'ws'];

/**
 * What a folder's files may not import: the folders after it in LAYERS and `beside`, a folder
 * before it that it must not use either; for a `pure` folder, no I/O either.
 */
function layerRules(folder, { beside, pure = false } = {}) {
  const at = LAYERS.indexOf(folder);
  const banned = new Set([...LAYERS.slice(at + 1), ...(beside ? [beside] : [])]);
  const allowed = LAYERS.slice(0, at).filter((f) => !banned.has(f));
  const patterns = [
    {
      group: [...banned].flatMap((f) => [`../${f}/*`, `../../${f}/*`]),
      message: `src/${folder}/ imports from ${allowed.length ? `no folder of src/ but ${allowed.join(', ')}` : 'no other folder of src/'}.`,
    },
  ];
  if (!pure) return { 'no-restricted-imports': ['error', { patterns }] };
  const why = `src/${folder}/ does no I/O (pure logic, tested as plain functions); worker/ does it.`;
  return {
    'no-restricted-imports': ['error', { patterns: [...patterns, { group: IO_MODULES, message: why }] }],
    'no-restricted-globals': [
      'error',
      ...['fetch', 'setTimeout', 'setInterval'].map((name) => ({ name, message: why })),
    ],
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', setTimeout: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // The consensus core is pure: no I/O, no clock, no randomness; its driver brings all three.
    files: ['src/consensus/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:timers', 'node:timers/*', 'timers', 'timers/*'], message: 'the driver owns the timers' },
            { group: ['node:perf_hooks', 'perf_hooks'], message: 'inject the clock' },
            {
              group: [
                'node:*',
                '!node:timers',
                '!node:timers/*',
                '!node:perf_hooks',
                'fs',
                'fs/*',
                'net',
                'http',
                'https',
              ],
              message: 'the core does no I/O',
            },
            { group: ['../*', '../../*'], message: 'the core imports nothing outside consensus/core/' },
          ],
        },
      ],
      // Time passes for the core only through tick(): a timer or a clock read here would make
      // the simulation's runs depend on the machine.
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask'].map((name) => ({
          name,
          message: 'the driver owns the timers: count ticks instead',
        })),
        { name: 'Date', message: 'inject the clock' },
        { name: 'performance', message: 'inject the clock' },
      ],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'inject randomness' }],
    },
  },
  { files: ['src/protocol/**/*.ts'], rules: layerRules('protocol') },
  { files: ['src/common/**/*.ts'], rules: layerRules('common') },
  { files: ['src/ops/**/*.ts'], rules: layerRules('ops', { beside: 'stream', pure: true }) },
  { files: ['src/stream/**/*.ts'], rules: layerRules('stream', { beside: 'ops', pure: true }) },
  // Consensus owns its ports; the state machine implements them, never the other way round.
  { files: ['src/consensus/**/*.ts'], ignores: ['src/consensus/core/**'], rules: layerRules('consensus') },
  { files: ['src/state/**/*.ts'], rules: layerRules('state') },
  { files: ['src/master/**/*.ts'], rules: layerRules('master', { beside: 'worker' }) },
  { files: ['src/worker/**/*.ts'], rules: layerRules('worker', { beside: 'master' }) },
  {
    // The dashboard runs in a browser: nothing of Node's, nothing of the servers' code.
    files: ['ui/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../src/*', '../../src/*', '../*'],
              message: 'ui/ is bundled for a browser: it imports ui/ files and browser packages only',
            },
            { group: ['node:*', ...NODE_IO], message: 'ui/ runs in a browser: no Node modules' },
          ],
        },
      ],
    },
  },
);
