import { Gauge, type Registry } from 'prom-client';
import { NO_SPACE, type SpaceMonitor } from './space-monitor.js';

/** `weir_alarm{alarm="no_space"}`, and the two figures it is decided on, read at scrape time. */
export function spaceMetrics(registry: Registry, space: SpaceMonitor): void {
  const registers = [registry];
  new Gauge({
    name: 'weir_alarm',
    help: 'Whether an alarm is on (1) or off (0) on this master: no_space refuses writes that add data',
    labelNames: ['alarm'],
    registers,
    collect() {
      this.set({ alarm: NO_SPACE }, space.alarms().includes(NO_SPACE) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weir_disk_free_bytes',
    help: "Bytes free on the disk of this master's data dir (the no_space alarm is on under --min-free-bytes)",
    registers,
    collect() {
      this.set(space.freeBytes);
    },
  });
  new Gauge({
    name: 'weir_db_bytes',
    help: "Bytes this master's state, log, their WAL files and uploads take (the no_space alarm is on over --max-db-bytes)",
    registers,
    collect() {
      this.set(space.dbBytes);
    },
  });
}
