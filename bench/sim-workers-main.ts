// `node dist/bench/sim-workers-main.js --master URL[,URL…] --workers N [--max-tasks M]
// [--heartbeat-ms MS] [--label L]`: a process of simulated workers (sim-workers.ts). With an
// IPC channel (started by the scale benchmark) it sends `{ready}` once every worker is
// registered and its figures every second; without one it prints them as JSON lines. It
// stops on SIGTERM or when its parent goes. JWT_SECRET in its environment: the cluster's.
import { positiveInt } from './stats.js';
import { SimWorkerFleet, type FleetStats } from './sim-workers.js';

export type FleetMessage = { type: 'ready'; stats: FleetStats } | { type: 'stats'; stats: FleetStats };

function parseArgs(argv: string[]) {
  const o = { masters: [] as string[], workers: 0, maxTasks: 8, heartbeatMs: 1000, label: 'sim' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[++i];
    if (flag === '--master') o.masters = (v ?? '').split(',').filter(Boolean);
    else if (flag === '--workers') o.workers = positiveInt(flag, v);
    else if (flag === '--max-tasks') o.maxTasks = positiveInt(flag, v);
    else if (flag === '--heartbeat-ms') o.heartbeatMs = positiveInt(flag, v);
    else if (flag === '--label') o.label = v ?? 'sim';
    else throw new Error(`unknown option ${flag}; see the head of bench/sim-workers-main.ts`);
  }
  if (!o.masters.length || !o.workers) throw new Error('--master URL[,URL…] and --workers N are required');
  return o;
}

const o = parseArgs(process.argv.slice(2));
const fleet = new SimWorkerFleet({ ...o, ...(process.env.JWT_SECRET ? { secret: process.env.JWT_SECRET } : {}) });
const tell = (m: FleetMessage) => (process.send ? process.send(m) : process.stdout.write(`${JSON.stringify(m)}\n`));
const timer = setInterval(() => tell({ type: 'stats', stats: fleet.stats() }), 1000);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  void fleet.stop().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.once('disconnect', stop);

void fleet.start().then(
  () => tell({ type: 'ready', stats: fleet.stats() }),
  (err: Error) => {
    process.stderr.write(`the fleet could not start: ${err.message}\n`);
    process.exit(1);
  },
);
