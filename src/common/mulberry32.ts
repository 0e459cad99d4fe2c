/**
 * mulberry32: a tiny, fast, seedable generator of floats in [0, 1). The same seed draws the
 * same numbers everywhere, so whatever uses it can be re-run exactly (a pi task, a seeded
 * simulation).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
