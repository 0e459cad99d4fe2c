#!/usr/bin/env node
// The `weir` executable: the compiled CLI (built by `npm install` through `prepare`).
import { main } from '../dist/src/client/cli.js';

const code = await main(process.argv.slice(2));
// Servers (master, worker, dev) keep running; a client command exits with its code.
if (!['master', 'worker', 'dev'].some((c) => process.argv.includes(c)) || code !== 0) process.exit(code);
