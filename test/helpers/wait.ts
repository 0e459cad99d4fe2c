// Waiting for a condition, for unit and integration specs alike: a spec waits for what it
// needs to have happened, never for a fixed time.

/** The pause between two tries of a poll; not a wait of its own. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Thrown inside a `waitFor` condition to stop waiting at once (the awaited state can no longer come). */
export class GiveUp extends Error {}

/**
 * Polls `fn` until it returns something truthy and returns that; never a fixed sleep. On
 * timeout it throws, naming `what` and the last value or error seen.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      last = err;
    }
    if (Date.now() - t0 >= timeoutMs) break;
    await sleep(everyMs);
  }
  const shown = last instanceof Error ? last.message : JSON.stringify(last);
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(shown).slice(0, 500)})`);
}
