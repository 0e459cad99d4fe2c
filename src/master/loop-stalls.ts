import { PerformanceObserver, constants } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';

/** How often the watcher looks; a look this much later than due is a stall worth a line. */
const EVERY_MS = 10;
export const STALL_LOG_MS = 50;

/**
 * Logs each stretch the event loop could not turn for at least STALL_LOG_MS, with the moment
 * it ended: `/metrics` has the delay's distribution, this says when, to be read beside the
 * other lines of the log (a slow apply, a compaction) and a client's slow calls. better-sqlite3
 * is synchronous, so a long stall on a master delays its heartbeats and its answers alike.
 */
export function watchLoopStalls(log: Logger, thresholdMs = STALL_LOG_MS): () => void {
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - EVERY_MS;
    last = now;
    if (late >= thresholdMs) log.info({ stalled_ms: Math.round(late) }, 'the event loop stalled');
  }, EVERY_MS);
  timer.unref();
  // A stall is often the collector's: a major GC of a leader's heap of a few hundred MB.
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < GC_LOG_MS) continue;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      log.info({ ms: Math.round(e.duration), kind: GC_KINDS[kind ?? 0] ?? kind }, 'a long garbage collection');
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  return () => {
    clearInterval(timer);
    gc.disconnect();
  };
}

const GC_LOG_MS = 20;
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};
