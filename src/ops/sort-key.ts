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
 * ASCII text costs a byte a character. Returns where the next byte goes.
 */
function writeUnits(s: string, out: Buffer, at: number): number {
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u < 0x7f) out[at++] = u + 1;
    else if (u < 0x407f) {
      const v = u - 0x7f;
      out[at++] = 0x80 | (v >> 8);
      out[at++] = v & 0xff;
    } else {
      out[at++] = 0xc0;
      out[at++] = u >> 8;
      out[at++] = u & 0xff;
    }
  }
  out[at++] = 0;
  return at;
}

/** Where keys are encoded before they are copied out: apply encodes one row after another. */
let scratch = Buffer.allocUnsafe(1024);

/** The sort key of a row with key `key`, row `pos` of task `idx`. */
export function sortKey(key: unknown, idx: number, pos: number): Buffer {
  let at: number;
  if (typeof key === 'number') {
    scratch[0] = NUMBER;
    scratch.writeDoubleBE(key === 0 ? 0 : key, 1); // -0 and 0 compare equal
    if (scratch[1]! & 0x80) for (let i = 1; i <= 8; i++) scratch[i] = ~scratch[i]! & 0xff;
    else scratch[1] = scratch[1]! ^ 0x80;
    at = 9;
  } else {
    const text = typeof key === 'string' ? key : (JSON.stringify(key) ?? '');
    const most = 1 + 3 * text.length + 1 + 8;
    if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(most, 2 * scratch.length));
    scratch[0] = typeof key === 'string' ? STRING : OTHER;
    at = writeUnits(text, scratch, 1);
  }
  scratch.writeUInt32BE(idx, at);
  scratch.writeUInt32BE(pos, at + 4);
  return Buffer.from(scratch.subarray(0, at + 8));
}

/** The key a result row is sorted by: `row.key`, or undefined for a row that is not an object. */
export function keyOfRow(row: unknown): unknown {
  return row !== null && typeof row === 'object' ? (row as { key?: unknown }).key : undefined;
}
