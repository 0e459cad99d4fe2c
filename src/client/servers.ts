import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { nodeIdFromIpv4 } from '../common/address.js';
import { parseDuration, parseRetention } from '../common/duration.js';
import { loadNodeTls, schemeOf, type NodeTls } from '../common/tls.js';
import { parsePeerEntry } from '../master/discovery.js';
import { parseBytes } from '../master/space-alarm.js';
import { defaultRights } from '../worker/executor-pool.js';
import type { TaskRights } from '../worker/executor-rules.js';
import { checkKeyClosed, lookUpUser } from '../worker/executor-user.js';

/** `--tls-cert`, `--tls-key` and (taken off the line before commander) `--tls-ca`. */
export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string | undefined;
}

const tlsOf = (f: TlsFlags): NodeTls | undefined => loadNodeTls({ cert: f.tlsCert, key: f.tlsKey, ca: f.tlsCa });

export interface MasterFlags extends TlsFlags {
  id?: string;
  host: string;
  port?: string;
  dataDir?: string;
  peers?: string;
  discover?: string;
  bootstrapExpect?: string;
  minFreeBytes?: string;
  maxDbBytes?: string;
  snapshotEntries?: string;
  snapshotBytes?: string;
  retention?: string;
  restore?: string;
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

/** The address others reach this master at: the listen host, or the machine's IPv4 for 0.0.0.0. */
function advertisedHost(host: string): string {
  if (host !== '0.0.0.0') return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export async function runMaster(f: MasterFlags): Promise<void> {
  const p = port(f.port ?? process.env.PORT, 8080, '--port');
  const host = advertisedHost(f.host);
  const id = f.id !== undefined ? Number(f.id) : nodeIdFromIpv4(host);
  if (id === undefined) throw new Error(`cannot derive a node id from the host '${host}'; pass --id N`);
  if (!Number.isInteger(id) || id < 1) throw new Error(`--id must be a positive integer; got '${f.id}'`);
  const serviceName = process.env.SERVICE_NAME;
  const discover = f.discover ?? (serviceName && !f.peers ? `dns:${serviceName}` : undefined);
  if (discover && !discover.startsWith('dns:')) throw new Error(`--discover takes dns:NAME; got '${discover}'`);
  if (discover && f.peers) throw new Error('use either --peers or --discover, not both');
  const bootstrapExpect = f.bootstrapExpect === undefined ? undefined : Number(f.bootstrapExpect);
  if (bootstrapExpect !== undefined && (!Number.isInteger(bootstrapExpect) || bootstrapExpect < 1)) {
    throw new Error(`--bootstrap-expect must be a positive integer; got '${f.bootstrapExpect}'`);
  }
  const snapshotEntries = f.snapshotEntries === undefined ? undefined : Number(f.snapshotEntries);
  if (snapshotEntries !== undefined && (!Number.isInteger(snapshotEntries) || snapshotEntries < 1)) {
    throw new Error(`--snapshot-entries must be a positive integer; got '${f.snapshotEntries}'`);
  }
  const snapshotBytes = f.snapshotBytes === undefined ? undefined : parseBytes(f.snapshotBytes, '--snapshot-bytes');
  if (snapshotBytes === 0) throw new Error('--snapshot-bytes must be above 0 (64M is the default)');
  const minFreeBytes = f.minFreeBytes === undefined ? undefined : parseBytes(f.minFreeBytes, '--min-free-bytes');
  const maxDbBytes = f.maxDbBytes === undefined ? undefined : parseBytes(f.maxDbBytes, '--max-db-bytes');
  let retentionMs: number | undefined;
  try {
    retentionMs = f.retention === undefined ? undefined : parseRetention(f.retention);
  } catch (err) {
    throw new Error(`--retention: ${(err as Error).message}, or 0 to keep everything`);
  }
  const tls = tlsOf(f);
  const peers = f.peers
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => parsePeerEntry(entry, schemeOf(tls)));
  const dataDir = resolve(f.dataDir ?? process.env.WEIR_DATA_DIR ?? `data/master-${host}-${p}`);
  // Each kind of node loads only its own code (a worker has no use for Raft or the state database).
  const { MasterNode } = await import('../master/master-node.js');
  const node = await MasterNode.start({
    id,
    host,
    listenHost: f.host,
    port: p,
    dataDir,
    ...(peers ? { peers } : {}),
    ...(discover ? { discover } : {}),
    ...(bootstrapExpect ? { bootstrapExpect } : {}),
    ...(minFreeBytes !== undefined ? { minFreeBytes } : {}),
    ...(maxDbBytes !== undefined ? { maxDbBytes } : {}),
    ...(snapshotEntries !== undefined ? { snapshotEntries } : {}),
    ...(snapshotBytes !== undefined ? { snapshotBytes } : {}),
    ...(retentionMs !== undefined ? { retentionMs } : {}),
    ...(f.restore !== undefined ? { restoreFrom: resolve(f.restore) } : {}),
    ...(process.env.JWT_SECRET ? { jwtSecret: process.env.JWT_SECRET } : {}),
    ...tokenTtlFromEnv(),
    ...(tls ? { tls } : {}),
    ...timingFromEnv(),
    onFatal: (err) => {
      process.stderr.write(`weir master: ${err.message}\n`);
      void node.close().finally(() => process.exit(1));
    },
  });
  untilSignal(() => node.close());
}

/** `WEIR_TICK_MS` / `WEIR_ELECTION_TICKS` tune Raft's clock (tests and slow machines). */
function timingFromEnv(): { timing?: { tickMs?: number; electionTicks?: number } } {
  const tickMs = Number(process.env.WEIR_TICK_MS) || undefined;
  const electionTicks = Number(process.env.WEIR_ELECTION_TICKS) || undefined;
  if (!tickMs && !electionTicks) return {};
  return { timing: { ...(tickMs ? { tickMs } : {}), ...(electionTicks ? { electionTicks } : {}) } };
}

export interface WorkerFlags extends TlsFlags {
  host: string;
  port?: string;
  maxTasks: string;
  threads?: string;
  dataDir?: string;
  allowRead?: string;
  allowWrite?: string;
  allowNet?: string;
  executorUser?: string;
}

/** DIR[,DIR…] as absolute, normalised roots. */
function roots(text: string, flag: string): string[] {
  const dirs = text
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean)
    .map((d) => resolve(d));
  if (!dirs.length) throw new Error(`${flag} takes DIR[,DIR…]; got '${text}'`);
  return dirs;
}

/** --allow-read/--allow-write/--allow-net: each one given replaces its default. */
export function rightsOf(f: Pick<WorkerFlags, 'allowRead' | 'allowWrite' | 'allowNet'>, dataDir: string): TaskRights {
  // The defaults leave the data dir out; a root named explicitly is as given.
  const d = defaultRights(dataDir);
  const read = f.allowRead === undefined ? d.read : roots(f.allowRead, '--allow-read');
  const write = f.allowWrite === undefined ? d.write : roots(f.allowWrite, '--allow-write');
  let net: string[] | undefined;
  if (f.allowNet !== undefined) {
    net = f.allowNet
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    const bad = net.find((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(h));
    if (bad !== undefined || !net.length) throw new Error(`--allow-net takes HOST[:PORT][,…]; got '${f.allowNet}'`);
  }
  return { read, write, ...(net ? { net } : {}) };
}

export async function runWorker(f: WorkerFlags, masters: string[]): Promise<void> {
  const p = port(f.port, 8081, '--port');
  const maxTasks = Number(f.maxTasks);
  if (!Number.isInteger(maxTasks) || maxTasks < 1 || maxTasks > 10_000) {
    throw new Error(`--max-tasks must be an integer from 1 to 10000; got '${f.maxTasks}'`);
  }
  const threads = f.threads === undefined ? undefined : Number(f.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > maxTasks)) {
    throw new Error(`--threads must be an integer from 1 to --max-tasks (${maxTasks}); got '${f.threads}'`);
  }
  if (process.env.WEIR_TOKEN && !process.env.JWT_SECRET) {
    // Its channel must carry its own worker_id, and its own routes must check tokens.
    throw new Error(
      'a worker mints its own tokens from JWT_SECRET and checks callers with it: set JWT_SECRET (WEIR_TOKEN is for the CLI)',
    );
  }
  const executorUser = f.executorUser === undefined ? undefined : lookUpUser(f.executorUser, process.getuid?.());
  if (executorUser && f.tlsKey) checkKeyClosed(f.tlsKey, executorUser);
  const tls = tlsOf(f);
  const scheme = schemeOf(tls);
  const stranger = masters.find((m) => !m.startsWith(`${scheme}://`));
  if (stranger) {
    throw new Error(
      tls
        ? `a worker serving TLS talks to https:// masters; --master names ${stranger}`
        : `--master names ${stranger}: a worker of a cluster serving https needs --tls-cert and --tls-key`,
    );
  }
  const dataDir = resolve(f.dataDir ?? process.env.WEIR_DATA_DIR ?? `data/worker-${f.host}-${p}`);
  const { WorkerNode } = await import('../worker/worker-node.js');
  const node = await WorkerNode.start({
    host: f.host,
    port: p,
    masters,
    maxTasks,
    ...(threads ? { threads } : {}),
    rights: rightsOf(f, dataDir),
    dataDir,
    ...(executorUser ? { executorUser } : {}),
    ...(process.env.JWT_SECRET ? { jwtSecret: process.env.JWT_SECRET } : {}),
    ...tokenTtlFromEnv(),
    ...(tls ? { tls } : {}),
  });
  untilSignal((sig) => node.drainAndClose(sig === 'SIGTERM' ? 30_000 : 5_000));
}

/**
 * `WEIR_TOKEN_TTL` (a duration: 10m, 1h): how long the tokens a node mints for itself are
 * valid. Long-lived channels carry a fresh one before the last expires, and are closed when
 * they do not.
 */
function tokenTtlFromEnv(): { tokenTtlMs?: number } {
  const text = process.env.WEIR_TOKEN_TTL;
  if (text === undefined || text === '') return {};
  const ms = parseDuration(text);
  if (ms < 3000)
    throw new Error(
      `WEIR_TOKEN_TTL must be at least 3s (a node renews its token a third of the way before it expires); got '${text}'`,
    );
  return { tokenTtlMs: ms };
}
