// What the leader sends a worker on its channel passes the check the worker makes where the
// frame is decoded: a frame it refuses closes the channel and the worker registers again.
import { describe, expect, it } from 'vitest';
import { decodeToWorker, encode } from '../../src/protocol/worker-channel.js';
import { normalizeStreamConfig } from '../../src/stream/stream-config.js';

describe('frames from the leader', () => {
  it("a streaming instance's assignment, with neither timeout nor memory limit (0), is one a worker takes", () => {
    const config = normalizeStreamConfig({
      topology: {
        spouts: [{ id: 'gen', type: 'generator', rate: 10 }],
        bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'gen', grouping: 'shuffle' }] }],
      },
    });
    const ref = { job_id: 'job-s', idx: 0, attempt: 1 };
    const frame = encode({
      t: 'assign',
      tasks: [
        {
          ...ref,
          spec: { operation: 'stream', ...ref, config, placement: [{ idx: 0, attempt: 1, address: '127.0.0.1:1' }] },
          timeout_ms: config.timeout_ms,
          memory_mb: config.memory_mb,
        },
      ],
    });
    const d = decodeToWorker(frame);
    expect(d.ok ? 'taken' : d.error).toBe('taken');
  });
});
