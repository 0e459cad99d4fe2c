/**
 * The name of `known` a mistyped `name` most likely meant: within two edits (insertions,
 * deletions, substitutions; one for names of up to four letters), the nearest; else undefined.
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const most = name.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = most + 1;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase(), bestDistance);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/** Levenshtein distance, or `cap` once it is known to be at least that. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let low = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      low = Math.min(low, v);
    }
    if (low >= cap) return cap;
    prev = row;
  }
  return Math.min(prev[b.length]!, cap);
}

/** The first key of `fields` that `known` does not hold, with the name it most likely meant. */
export function unknownField(
  fields: object,
  known: readonly string[],
): { field: string; guess: string | undefined } | undefined {
  const field = Object.keys(fields).find((k) => !known.includes(k));
  return field === undefined ? undefined : { field, guess: closestName(field, known) };
}
