// `npm run bench [-- PART [OPTIONS]]`: Weir's benchmarks, each in its own process, one after
// the other so none measures another's load.
//
//   core     noop tasks through 1 master + 2 workers, against BullMQ and a thread pool
//   cluster  3 masters: replicated throughput beside 1 master, failover, elections, catch-up
//   batch    wordcount (256 MiB) against a single-thread loop, sort of 1 GiB
//   stream   generator → map → window → sink: sustained events/s, latency at half of it
//   latency  one-task jobs one at a time: each step of a job's path, on 1 and 3 masters
//   paging   a results page on a job of 1,000,000 keyed rows against one of 10
//   scale    3 masters holding 1,000,000 finished tasks, 1,000 simulated workers: latency, delete, join
//   dashboard  core's rounds with and without a browser on the dashboard: throughput, CPU of each
//
// With no PART, all of them run (about an hour on 2 cores). OPTIONS go to the part's script.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PARTS = ['core', 'cluster', 'batch', 'stream', 'latency', 'paging', 'scale', 'dashboard'] as const;
type Part = (typeof PARTS)[number];

const [first, ...rest] = process.argv.slice(2);
if (first !== undefined && !(PARTS as readonly string[]).includes(first)) {
  process.stderr.write(`unknown benchmark '${first}'; choose one of: ${PARTS.join(', ')} (or none for all)\n`);
  process.exit(2);
}
const parts: readonly Part[] = first === undefined ? PARTS : [first as Part];
let failed = 0;
for (const part of parts) {
  const script = fileURLToPath(new URL(`./${part}-bench.js`, import.meta.url));
  process.stderr.write(`\n=== ${part} ===\n`);
  const r = spawnSync(process.execPath, [script, ...(first === undefined ? [] : rest)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`${part}: exited with ${r.status ?? r.signal}\n`);
  }
}
process.exit(failed ? 1 : 0);
