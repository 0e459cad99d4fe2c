import { Counter, type Registry } from 'prom-client';
import { refusedFrames } from '../protocol/checked-decode.js';

/** `weir_refused_frames_total{socket}`: frames (and links) refused since start, on any node. */
export function refusedFramesCounter(registers: Registry[]): Counter {
  return new Counter({
    name: 'weir_refused_frames_total',
    help: 'Frames refused as malformed or from the wrong sender, by socket; each closed its connection',
    labelNames: ['socket'],
    registers,
    collect() {
      this.reset();
      for (const [socket, n] of Object.entries(refusedFrames)) this.inc({ socket }, n);
    },
  });
}
