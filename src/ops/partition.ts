/**
 * Splits `n` items into `k` contiguous partitions whose sizes differ by at most one, the
 * larger ones last. Partition `i` covers `[start, end)`.
 */
export function contiguousPartition(n: number, k: number, i: number): { start: number; end: number } {
  if (k < 1 || i < 0 || i >= k) throw new RangeError(`partition ${i} of ${k} does not exist`);
  return { start: Math.floor((i * n) / k), end: Math.floor(((i + 1) * n) / k) };
}
