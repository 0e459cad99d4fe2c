import { resolve } from 'node:path';
import { nodeIdFromIpv4, normalizeUrl, splitUrls } from '../common/address.js';
import { MasterNode } from '../master/master-node.js';
import { WorkerNode } from '../worker/worker-node.js';

export interface MasterFlags {
  id?: string;
  host: string;
  port?: string;
  dataDir?: string;
  peers?: string;
  discover?: string;
  bootstrapExpect?: string;
}

function port(text: string | undefined, fallback: number, what: string): number {
  const n = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new Error(`${what} must be a port number from 1 to 65535; got '${text}'`);
  return n;
}

/** Runs until SIGTERM/SIGINT, then stops gracefully. */
function untilSignal(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (stopping) process.exit(1); // a second Ctrl-C means now
      stopping = true;
      stop(sig).then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

export async function runMaster(f: MasterFlags): Promise<void> {
  if (f.discover)
    throw new Error(
      '--discover (DNS discovery) needs a cluster of masters, which this version does not run yet; use --peers',
    );
  const p = port(f.port ?? process.env.PORT, 8080, '--port');
  const id = f.id !== undefined ? Number(f.id) : (nodeIdFromIpv4(f.host) ?? 1);
  if (!Number.isInteger(id) || id < 0) throw new Error(`--id must be a non-negative integer; got '${f.id}'`);
  const self = normalizeUrl(`${f.host}:${p}`);
  const peers = f.peers ? splitUrls(f.peers) : [self];
  if (!peers.includes(self)) {
    throw new Error(`--peers must include this master's own URL (${self}); it lists ${peers.join(', ')}`);
  }
  const dataDir = resolve(f.dataDir ?? process.env.WEIR_DATA_DIR ?? `data/master-${f.host}-${p}`);
  const node = await MasterNode.start({
    id,
    host: f.host,
    port: p,
    dataDir,
    peers,
    ...(process.env.JWT_SECRET ? { jwtSecret: process.env.JWT_SECRET } : {}),
  });
  untilSignal(() => node.close());
}

export interface WorkerFlags {
  host: string;
  port?: string;
  maxTasks: string;
  dataDir?: string;
}

export async function runWorker(f: WorkerFlags, masters: string[]): Promise<void> {
  const p = port(f.port, 8081, '--port');
  const maxTasks = Number(f.maxTasks);
  if (!Number.isInteger(maxTasks) || maxTasks < 1 || maxTasks > 10_000) {
    throw new Error(`--max-tasks must be an integer from 1 to 10000; got '${f.maxTasks}'`);
  }
  const node = await WorkerNode.start({
    host: f.host,
    port: p,
    masters,
    maxTasks,
    dataDir: resolve(f.dataDir ?? process.env.WEIR_DATA_DIR ?? `data/worker-${f.host}-${p}`),
    ...(process.env.JWT_SECRET ? { jwtSecret: process.env.JWT_SECRET } : {}),
    ...(process.env.WEIR_TOKEN ? { token: process.env.WEIR_TOKEN } : {}),
  });
  untilSignal((sig) => node.drainAndClose(sig === 'SIGTERM' ? 30_000 : 5_000));
}
