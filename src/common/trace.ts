import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

/**
 * Timestamps along a job's critical path, for the latency benchmark (`npm run bench --
 * latency`): with `WEIR_TRACE=DIR`, each process keeps `{k, s, t}` lines — a key (a job id, or
 * `log` for the consensus log's own steps), a step name and the wall-clock time in ms with µs
 * — and appends them to DIR/PID.jsonl every 200 ms and at exit. Unset, a trace point costs a
 * branch. Wall-clock time, so that steps in different processes of one machine line up.
 */
const DIR = process.env.WEIR_TRACE || undefined;

export const tracing = DIR !== undefined;

let lines: string[] = [];

function flush(): void {
  if (lines.length === 0) return;
  const text = lines.join('\n') + '\n';
  lines = [];
  try {
    appendFileSync(join(DIR!, `${process.pid}.jsonl`), text);
  } catch {
    // A benchmark's aid: losing it must not touch the node.
  }
}

if (tracing) process.on('exit', flush);
// With WEIR_TRACE_GC=1, garbage collections too, as `gc` lines with their duration `d` (ms):
// the latency benchmark (`--gc`) tells a tail made of pauses from one made of waiting for a
// CPU. Not by default: in one pair of runs here, traced steps were 0.1–0.3 ms slower with it.
if (tracing && process.env.WEIR_TRACE_GC === '1') {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      lines.push(
        `{"k":"gc","s":"gc","t":${(performance.timeOrigin + e.startTime).toFixed(3)},"d":${e.duration.toFixed(3)}}`,
      );
    }
    if (lines.length) setTimeout(flush, 200).unref();
  }).observe({ entryTypes: ['gc'] });
}

export function trace(key: string, step: string): void {
  if (!tracing) return;
  const t = performance.timeOrigin + performance.now();
  lines.push(`{"k":${JSON.stringify(key)},"s":"${step}","t":${t.toFixed(3)}}`);
  if (lines.length === 1) setTimeout(flush, 200).unref();
}
