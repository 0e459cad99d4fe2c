import { useEffect, useRef, useState } from 'preact/hooks';

export const POLL_MS = 1000;
/** While the change stream is up a panel still reads its route this often, in case a frame was missed. */
export const LIVE_POLL_MS = 30_000;

/** From the change stream (useWake): while `live`, read when `key` changes rather than on a timer. */
export interface Wake {
  live: boolean;
  key: number;
  /** False while the stream is being opened: the first read waits until it has answered. */
  ready?: boolean;
}

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  /** When the read that answered `data` was sent (ms): the page keeps the newer of what it polled and what was streamed. */
  at: number;
  /** Ask again now (after an action), without waiting for the next tick. */
  refresh: () => void;
}

/**
 * Calls `load` now and then about once a second while the page is visible: one call at a
 * time (the next is scheduled when the last has answered, so a slow master is never asked
 * twice at once), none while the tab is hidden. With `wake` live, once every LIVE_POLL_MS
 * and whenever its key changes.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs = POLL_MS, wake?: Wake): Polled<T> {
  const [data, setData] = useState<{ v: T; at: number } | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const kick = useRef<() => void>(() => {});
  const period = useRef(everyMs);
  period.current = wake?.live ? Math.max(everyMs, LIVE_POLL_MS) : everyMs;
  const ready = useRef(true);
  ready.current = wake?.ready !== false;

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let busy = false;
    // Asked while a read was out (a frame came): read again as soon as it answers.
    let again = false;
    const tick = async () => {
      if (stopped) return;
      if (busy) {
        again = true;
        return;
      }
      clearTimeout(timer);
      if (document.hidden) {
        timer = setTimeout(tick, period.current);
        return;
      }
      busy = true;
      try {
        const sent = Date.now();
        const v = await load();
        if (!stopped) {
          setData({ v, at: sent });
          setError(undefined);
        }
      } catch (err) {
        if (!stopped) setError(err as Error);
      } finally {
        busy = false;
        if (!stopped) timer = setTimeout(tick, again ? 0 : period.current);
        again = false;
      }
    };
    kick.current = () => void tick();
    const onVisible = () => !document.hidden && void tick();
    document.addEventListener('visibilitychange', onVisible);
    setData(undefined);
    // Else the stream's answer starts it (below).
    if (ready.current) void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, deps);

  // A frame said this panel's part changed, the stream answered (the first read), broke (the
  // timer's period shrinks back) or came up again (what moved while it was down is read).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) first.current = false;
    else kick.current();
  }, [wake?.key, wake?.live, wake?.ready]);

  return { data: data?.v, at: data?.at ?? 0, error, refresh: () => kick.current() };
}
