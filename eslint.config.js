import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
);
