#!/usr/bin/env node
// The `weir` executable: the CLI, bundled with the nodes it starts (`npm install` builds it,
// through `prepare`; see scripts/bundle-nodes.mjs).
import { main } from '../dist/bundle/cli.js';

const code = await main(process.argv.slice(2));
// Servers (master, worker, dev) keep running; a client command exits with its code.
if (!['master', 'worker', 'dev'].some((c) => process.argv.includes(c)) || code !== 0) process.exit(code);
