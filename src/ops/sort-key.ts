/**
 * A byte string per result row whose byte-wise order (SQLite's order of BLOBs, memcmp) is
 * exactly the order a stable sort by `compareKeys` gives the rows of a job read task by task:
 * the key's encoding, then the task index and the row's position in the task's results as
 * tie-breakers. Results pages are then served from an index in that order (a keyset cursor
 * is the last row's sort key), whatever the job's size.
 *
 *   number  0x10, 8 bytes: the IEEE-754 bits, sign bit flipped for positives and every bit
 *           flipped for negatives (so the bytes order as the numbers do); -0 is written as 0
 *   string  0x20, its UTF-16 code units (see `units`), 0x00
 *   other   0x30, its JSON text as a string, 0x00 (compareKeys orders the rest by JSON text)
 *   then    the task index and the row's position, 4 bytes each, big-endian
 */
const NUMBER = 0x10;
const STRING = 0x20;
const OTHER = 0x30;

/** The largest task index or row position a sort key can hold. */
export const MAX_SORT_POSITION = 0xffff_ffff;

/**
 * A string's code units, prefix-free and order-preserving, every unit's first byte at least
 * 0x01 so that the 0x00 after the string sorts a string before any string it starts:
 * unit 0 → 01; 1–0x7e → unit+1 (02–7f); 0x7f–0x407e → 2 bytes 80–bf xx; the rest → c0 hi lo.
 * ASCII text costs a byte a character.
 */
function writeUnits(s: string, out: number[]): void {
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u < 0x7f) out.push(u + 1);
    else if (u < 0x407f) {
      const v = u - 0x7f;
      out.push(0x80 | (v >> 8), v & 0xff);
    } else out.push(0xc0, u >> 8, u & 0xff);
  }
  out.push(0);
}

const scratch = new DataView(new ArrayBuffer(8));

/** The sort key of a row with key `key`, row `pos` of task `idx`. */
export function sortKey(key: unknown, idx: number, pos: number): Buffer {
  const out: number[] = [];
  if (typeof key === 'number') {
    out.push(NUMBER);
    scratch.setFloat64(0, key === 0 ? 0 : key); // -0 and 0 compare equal
    const negative = (scratch.getUint8(0) & 0x80) !== 0;
    for (let i = 0; i < 8; i++) {
      const b = scratch.getUint8(i);
      out.push(negative ? ~b & 0xff : i === 0 ? b ^ 0x80 : b);
    }
  } else if (typeof key === 'string') {
    out.push(STRING);
    writeUnits(key, out);
  } else {
    out.push(OTHER);
    writeUnits(JSON.stringify(key) ?? '', out);
  }
  out.push(idx >>> 24, (idx >>> 16) & 0xff, (idx >>> 8) & 0xff, idx & 0xff);
  out.push(pos >>> 24, (pos >>> 16) & 0xff, (pos >>> 8) & 0xff, pos & 0xff);
  return Buffer.from(out);
}

/** The key a result row is sorted by: `row.key`, or undefined for a row that is not an object. */
export function keyOfRow(row: unknown): unknown {
  return row !== null && typeof row === 'object' ? (row as { key?: unknown }).key : undefined;
}
