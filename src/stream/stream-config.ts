import { badRequest } from '../common/errors.js';
import { checkUserModule } from '../common/user-module.js';
import { checkUserEnv } from '../common/user-env.js';
import type { StreamConfig, Topology } from '../protocol/stream-job.js';
import { instancesOf, normalizeTopology } from './topology.js';

/** What a function's executor process may hold, as for batch tasks: the default and the least. */
const DEFAULT_MEMORY_MB = 256;
const MIN_MEMORY_MB = 64;

/** Enough for 250,000 events/s per spout instance through 1 s windows. */
const DEFAULT_MAX_PENDING = 250_000;

/** The longest a window holds an event before it fires: its size plus lateness. */
function longestHold(t: Topology): number {
  let ms = 0;
  for (const b of t.bolts) if (b.op === 'window') ms = Math.max(ms, b.window.size_ms + b.window.allowed_lateness_ms);
  return ms;
}

/** Checks a streaming job's config at submission and fills its defaults, naming the field it refuses. */
export function normalizeStreamConfig(input: unknown): StreamConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw badRequest(
      'a streaming job needs config = {"topology": {"spouts": [...], "bolts": [...]}, "module"?: "..."}',
    );
  }
  const raw = input as Record<string, unknown>;
  const known = ['topology', 'module', 'ack_timeout_ms', 'max_pending', 'max_retries', 'memory_mb', 'env'];
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
  const memory = raw.memory_mb ?? DEFAULT_MEMORY_MB;
  if (typeof memory !== 'number' || !Number.isInteger(memory) || memory < MIN_MEMORY_MB || memory > 65_536) {
    throw badRequest(
      `config.memory_mb must be an integer from ${MIN_MEMORY_MB} to 65536; got ${JSON.stringify(memory)}`,
    );
  }
  const env = checkUserEnv(raw.env);
  return {
    operation: 'stream',
    topology,
    ...(module !== undefined ? { module } : {}),
    ...(env ? { env } : {}),
    ack_timeout_ms: ack,
    max_pending: pending,
    task_count: instancesOf(topology).length,
    max_retries: retries,
    timeout_ms: 0,
    memory_mb: memory,
  };
}
