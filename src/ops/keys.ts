/**
 * How keys emitted by a job are ordered and partitioned. Pure functions: every master and
 * worker must agree on them, so they depend on the key's value only.
 */

/** Orders keys as a person expects: numbers numerically, then strings, then the rest by JSON. */
export function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string') return -1;
  if (typeof b === 'string') return 1;
  // null, booleans, arrays, objects: by their JSON text (so equal values meet).
  const sa = JSON.stringify(a) ?? '';
  const sb = JSON.stringify(b) ?? '';
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** FNV-1a (32 bit) over the UTF-16 code units of a string: fast, stable, well spread. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The reduce partition of a key under hash partitioning: equal keys always meet. */
export function hashPartition(key: unknown, partitions: number): number {
  if (partitions === 1) return 0;
  const s = typeof key === 'string' ? key : `\u0000${JSON.stringify(key) ?? ''}`;
  return fnv1a(s) % partitions;
}

/**
 * `partitions - 1` split points from a sample of keys, as TeraSort's sampler picks them:
 * the sample sorted, cut at even quantiles. Partition `i` then holds keys in
 * `[boundaries[i-1], boundaries[i])`, so concatenating partitions in order is a total order.
 */
export function rangeBoundaries(sample: readonly unknown[], partitions: number): unknown[] {
  if (partitions <= 1 || sample.length === 0) return [];
  const sorted = [...sample].sort(compareKeys);
  const out: unknown[] = [];
  for (let i = 1; i < partitions; i++) {
    const b = sorted[Math.min(sorted.length - 1, Math.floor((i * sorted.length) / partitions))];
    // Equal neighbours would leave a partition empty by construction; skip repeats.
    if (out.length === 0 || compareKeys(out[out.length - 1], b) < 0) out.push(b);
  }
  return out;
}

/** The partition of a key under range partitioning: the number of boundaries ≤ key. */
export function rangePartition(key: unknown, boundaries: readonly unknown[]): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(boundaries[mid], key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Takes up to `n` items spread evenly over `items` (deterministic, unlike a reservoir). */
export function evenSample<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(items[Math.floor((i * items.length) / n)]!);
  return out;
}

/**
 * Groups pairs by key in one pass, without sorting: keys that compare equal share a group,
 * values keep their arrival order, groups come in the order their key first arrived.
 */
export function groupByKey(pairs: Iterable<readonly [unknown, unknown]>): [unknown, unknown[]][] {
  // Primitives group by value (as compareKeys sees them: -0 and 0 meet); other keys by their
  // JSON text, the text compareKeys orders them by.
  const byValue = new Map<unknown, unknown[]>();
  const byJson = new Map<string, unknown[]>();
  const groups: [unknown, unknown[]][] = [];
  for (const [key, value] of pairs) {
    const json = key !== null && typeof key === 'object' ? JSON.stringify(key) : undefined;
    let values = json === undefined ? byValue.get(key) : byJson.get(json);
    if (values === undefined) {
      values = [];
      if (json === undefined) byValue.set(key, values);
      else byJson.set(json, values);
      groups.push([key, values]);
    }
    values.push(value);
  }
  return groups;
}

/** Pairs as two columns, the layout of a map output partition (about 3× faster to decode). */
export interface Run {
  keys: unknown[];
  values: unknown[];
}

/**
 * Merges runs that are each sorted by key into one sequence of groups in key order, calling
 * `onGroup(key, values)` once per key — the reduce side of a sort-based shuffle. Values of
 * equal keys come run by run, in run order, so the outcome does not depend on timing.
 */
export async function mergeSortedRuns(
  runs: readonly Run[],
  onGroup: (key: unknown, values: unknown[]) => unknown,
): Promise<void> {
  const pos = runs.map(() => 0);
  const heads = runs.map((r) => r.keys[0]);
  // A binary min-heap of run indexes, by head key, ties by run index.
  const before = (a: number, b: number) => {
    const c = compareKeys(heads[a], heads[b]);
    return c < 0 || (c === 0 && a < b);
  };
  const heap: number[] = [];
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let r = 0; r < runs.length; r++) if (runs[r]!.keys.length > 0) heap.push(r);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
  let key: unknown;
  let values: unknown[] | undefined;
  while (heap.length > 0) {
    const r = heap[0]!;
    const run = runs[r]!;
    const k = heads[r];
    const v = run.values[pos[r]!];
    if (values !== undefined && compareKeys(k, key) === 0) values.push(v);
    else {
      if (values !== undefined) {
        const done = onGroup(key, values);
        if (done instanceof Promise) await done;
      }
      key = k;
      values = [v];
    }
    if (++pos[r]! < run.keys.length) {
      heads[r] = run.keys[pos[r]!];
      siftDown(0);
    } else {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
      if (heap.length > 0) siftDown(0);
    }
  }
  if (values !== undefined) {
    const done = onGroup(key, values);
    if (done instanceof Promise) await done;
  }
}
