import { badRequest } from '../common/errors.js';
import { checkUserModule } from '../ops/user-module.js';
import { instancesOf, normalizeTopology, type Topology } from './topology.js';

/**
 * A streaming job's config: the topology, the module its functions come from, and the
 * at-least-once timing. Every instance of every component is one task of the job, placed
 * on a worker by the scheduler and re-placed (through the log) when its worker dies.
 */
export interface StreamConfig {
  operation: 'stream';
  topology: Topology;
  module?: string;
  /** A source event not fully processed within this is replayed. */
  ack_timeout_ms: number;
  /**
   * Source events in flight per spout instance; beyond it the source waits (backpressure).
   * A window holds its input until it fires, so this bounds a windowed stream's rate to
   * about max_pending / window size per spout instance.
   */
  max_pending: number;
  /** One task per instance. */
  task_count: number;
  max_retries: number;
  timeout_ms: number;
  memory_mb: number;
}

export const isStreamConfig = (c: { operation: string }): c is StreamConfig => c.operation === 'stream';

/** Enough for 250,000 events/s per spout instance through 1 s windows. */
const DEFAULT_MAX_PENDING = 250_000;

/** The longest a window holds an event before it fires: its size plus lateness. */
function longestHold(t: Topology): number {
  let ms = 0;
  for (const b of t.bolts) if (b.op === 'window') ms = Math.max(ms, b.window.size_ms + b.window.allowed_lateness_ms);
  return ms;
}

export function normalizeStreamConfig(input: unknown): StreamConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw badRequest(
      'a streaming job needs config = {"topology": {"spouts": [...], "bolts": [...]}, "module"?: "..."}',
    );
  }
  const raw = input as Record<string, unknown>;
  const known = ['topology', 'module', 'ack_timeout_ms', 'max_pending', 'max_retries'];
  const unknown = Object.keys(raw).filter((k) => !known.includes(k));
  if (unknown.length) throw badRequest(`unknown config field(s) ${unknown.join(', ')}; allowed: ${known.join(', ')}`);
  let module: string | undefined;
  let exported: readonly string[] = [];
  if (raw.module !== undefined) {
    const checked = checkUserModule(raw.module, []);
    module = checked.source;
    exported = [...checked.exports];
  }
  const topology = normalizeTopology(raw.topology, exported);
  // Replays must come after a window had every chance to fire, or they would double-count.
  const floor = 2 * longestHold(topology) + 10_000;
  const ack = raw.ack_timeout_ms ?? Math.max(30_000, floor);
  if (typeof ack !== 'number' || !Number.isInteger(ack) || ack < floor || ack > 3_600_000) {
    throw badRequest(
      `config.ack_timeout_ms must be an integer from ${floor} (twice the longest window plus lateness, plus 10 s) to 3600000`,
    );
  }
  const pending = raw.max_pending ?? DEFAULT_MAX_PENDING;
  if (typeof pending !== 'number' || !Number.isInteger(pending) || pending < 1 || pending > 1_000_000) {
    throw badRequest('config.max_pending must be an integer from 1 to 1000000');
  }
  const retries = raw.max_retries ?? 10;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > 1000) {
    throw badRequest('config.max_retries must be an integer from 0 to 1000');
  }
  return {
    operation: 'stream',
    topology,
    ...(module !== undefined ? { module } : {}),
    ack_timeout_ms: ack,
    max_pending: pending,
    task_count: instancesOf(topology).length,
    max_retries: retries,
    timeout_ms: 0,
    memory_mb: 0,
  };
}

/** Where an instance runs now (its task's current attempt and worker). */
export interface PlacedInstance {
  idx: number;
  attempt: number;
  address: string;
}

/** What a worker gets to run one instance of a topology. */
export interface StreamTaskSpec {
  operation: 'stream';
  job_id: string;
  idx: number;
  attempt: number;
  config: StreamConfig;
  placement: PlacedInstance[];
}
