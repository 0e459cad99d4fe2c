import { onNextTurn } from '../common/next-turn.js';
import type { Clock } from './ports.js';

/** The clock of a running master: wall time and the event loop's timers. */
export const eventLoopClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  coalesce: onNextTurn,
};
