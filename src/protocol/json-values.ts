// Events cross stream links as msgpack but leave the system as JSON (sinks, results, user
// functions). msgpack carries more than JSON does: its extensions make BigInts, Maps, Sets,
// Dates, RegExps, Errors and typed arrays. None of our senders makes one; a frame that holds
// one was made by hand, and is refused where it arrives rather than failing every delivery of
// its batch downstream.

/**
 * What in `value` JSON would not carry as it is (`a BigInt`, `a Map`…), or undefined. Walked
 * without recursion. The value's nesting must have been bounded before (nestsDeeper, which
 * refuses cycles), so the walk ends.
 */
export function notJson(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'bigint') return 'a BigInt';
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push(v[i]);
      continue;
    }
    const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
    if (proto !== Object.prototype && proto !== null) {
      const name = proto.constructor?.name;
      if (typeof name !== 'string' || name === '') return 'an object of a class';
      return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}`;
    }
    for (const k in v) stack.push((v as Record<string, unknown>)[k]);
  }
  return undefined;
}

/**
 * Whether `value` holds an object with an own key `__proto__` (JSON.parse makes one; msgpack,
 * which carries events between workers, renames it `__proto_`, so such an event would differ
 * by where it ran). `text`: the JSON it was parsed from, which names the key if any object
 * has it: the walk is skipped for the rest. Nesting bounded before, as for notJson.
 */
export function holdsProtoKey(value: unknown, text: string): boolean {
  if (!text.includes('"__proto__"')) return false;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return true;
    for (const k in v) stack.push((v as Record<string, unknown>)[k]);
  }
  return false;
}
