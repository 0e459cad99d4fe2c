// How deep a value from outside may nest. JSON.parse, JSON.stringify, msgpackr and the schema
// checks all recurse once per level: a value a few thousand levels deep — a few KB of `[[[…` —
// overflows the stack of whichever process handles it next, and a master that overflows while
// applying an entry does so again at every restart. So values are bounded where bytes become
// values (request bodies, socket frames, what user code hands back), by walks that do not recurse.

/** Arrays and objects within each other, at most: far beyond any real document, far below any stack. */
export const MAX_NESTING = 100;

/** What a refusal says, for a value `where` (`the body`, `a frame`, `an event`). */
export const tooDeep = (where: string, max = MAX_NESTING): string =>
  `${where} nests arrays and objects more than ${max} deep; flatten it`;

/**
 * Whether JSON text nests deeper than `max`, counting brackets outside strings: decided before
 * the text is parsed (JSON.parse recurses too). Text that is not JSON may pass; parsing it then
 * fails as it would have.
 */
export function jsonNestsDeeper(text: string, max = MAX_NESTING): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}

/**
 * Whether a value (decoded from msgpack, or made by user code) nests arrays and objects deeper
 * than `max`. Walked with a stack of its own; a value met twice on one path (a cycle) counts as
 * too deep, as it is endless.
 */
export function nestsDeeper(value: unknown, max = MAX_NESTING): boolean {
  if (value === null || typeof value !== 'object') return false;
  // Two stacks side by side, nothing allocated per value: every frame of a socket comes this way.
  const values: object[] = [value];
  const depths: number[] = [1];
  let seen = 0;
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (depth > max) return true;
    // A cycle, or a value shared so widely that walking it is itself the attack.
    if (++seen > 10_000_000) return true;
    let children: ArrayLike<unknown> | undefined;
    if (Array.isArray(v)) children = v;
    else if (v instanceof Map) children = [...v.values()];
    else if (isPlain(v)) {
      for (const k in v) {
        const child = (v as Record<string, unknown>)[k];
        if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    }
    if (children === undefined) continue;
    for (let i = 0; i < children.length; i++) {
      const child = children[i];
      if (child !== null && typeof child === 'object') {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
