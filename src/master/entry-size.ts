/**
 * The most task outcomes (completions, failures) or assignments one log entry carries. Every
 * master applies an entry in one transaction on its event loop, so an entry's size bounds how
 * long applying holds the loop: with 1,000 workers of 8 slots, a batch of reports or a pass of
 * the scheduler gathered 4,000–8,000 of them (0.4–1.8 MB entries, applied in 60 ms on a quiet
 * machine and up to 1.3 s at load 10, on all masters at once — elections). 500 weigh ~50 KB
 * (a completion of a no-op task ~100 bytes in msgpack, an assignment ~70), within one turn of
 * applying (APPLY_TURN_BYTES, 64 KiB, in raft-consensus.ts), and entries of 500 are still
 * group-committed together: one fsync per batch, as before.
 */
export const MAX_TASKS_PER_ENTRY = 500;

/** `list` cut into runs of at most `n`, in order. */
export function chunked<T>(list: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
  return out;
}
