import { useEffect, useRef, useState } from 'preact/hooks';

export const POLL_MS = 1000;

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Ask again now (after an action), without waiting for the next tick. */
  refresh: () => void;
}

/**
 * Calls `load` now and then about once a second while the page is visible: one call at a
 * time (the next is scheduled when the last has answered, so a slow master is never asked
 * twice at once), none while the tab is hidden.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs = POLL_MS): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const kick = useRef<() => void>(() => {});

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let busy = false;
    const tick = async () => {
      if (stopped || busy) return;
      clearTimeout(timer);
      if (document.hidden) {
        timer = setTimeout(tick, everyMs);
        return;
      }
      busy = true;
      try {
        const v = await load();
        if (!stopped) {
          setData(v);
          setError(undefined);
        }
      } catch (err) {
        if (!stopped) setError(err as Error);
      } finally {
        busy = false;
        if (!stopped) timer = setTimeout(tick, everyMs);
      }
    };
    kick.current = () => void tick();
    const onVisible = () => !document.hidden && void tick();
    document.addEventListener('visibilitychange', onVisible);
    setData(undefined);
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, deps);

  return { data, error, refresh: () => kick.current() };
}
