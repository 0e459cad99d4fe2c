// The stream runtime of one worker, fed by another worker's link (a stand-in socket): tuples
// that arrive before their instance has started wait for it instead of being dropped.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { TokenSource } from '../../src/common/auth.js';
import type { HttpClient } from '../../src/common/http-client.js';
import { createLogger } from '../../src/common/logger.js';
import { normalizeStreamConfig } from '../../src/stream/stream-config.js';
import { encodeFrame, type Tuple } from '../../src/protocol/stream-link.js';
import { StreamRuntime } from '../../src/worker/stream/runtime.js';

const log = createLogger('test');
log.level = 'silent';

/** The receiving end of a link as `accept` sees it: frames in, credit grants out. */
class LinkSocket extends EventEmitter {
  readyState = 1; // OPEN
  sent: Buffer[] = [];
  send(b: Buffer): void {
    this.sent.push(b);
  }
}

const config = normalizeStreamConfig({
  topology: {
    spouts: [{ id: 'in', type: 'http' }],
    bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'in', grouping: 'shuffle' }] }],
  },
});

let stop: AbortController | undefined;
afterEach(() => stop?.abort());

describe('a worker receiving tuples for an instance that has not started yet', () => {
  it('holds them, with their credit, and hands them over when the instance starts', async () => {
    const collected: unknown[] = [];
    const client = {
      post: async (_path: string, body: { rows: { value: unknown }[] }) => {
        collected.push(...body.rows.map((r) => r.value));
        return {};
      },
    } as unknown as HttpClient;
    const rt = new StreamRuntime({
      address: '127.0.0.1:1',
      tokens: new TokenSource(undefined, undefined, 'w'),
      client,
      log,
    });
    const socket = new LinkSocket();
    rt.accept(socket as unknown as WebSocket);
    const tuple: Tuple = { e: [{ word: 'early' }], o: 0, a: 1, r: 1, h: 1, l: 2 };
    // From the spout's worker, for the collect instance (1), whose assignment is still on its way.
    socket.emit('message', encodeFrame({ t: 'tuples', job: 'job1', to: [1], tuples: [tuple] }));
    await new Promise((r) => setTimeout(r, 20));
    expect(collected).toEqual([]);

    stop = new AbortController();
    void rt
      .run(
        {
          operation: 'stream',
          job_id: 'job1',
          idx: 1,
          attempt: 1,
          config,
          placement: [{ idx: 0, attempt: 1, address: '127.0.0.2:1' }],
        },
        stop.signal,
      )
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(collected).toEqual([{ word: 'early' }]);
    rt.close();
  });
});
