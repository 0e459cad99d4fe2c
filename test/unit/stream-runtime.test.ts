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
import { waitFor } from '../helpers/wait.js';

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

const stops: AbortController[] = [];
const runtimes: StreamRuntime[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
  for (const rt of runtimes.splice(0)) rt.close();
});

/** Starts collect instance 1 of `job` here (its spout, instance 0, runs on another worker). */
function startCollect(rt: StreamRuntime, job: string): void {
  const stop = new AbortController();
  stops.push(stop);
  void rt
    .run(
      {
        operation: 'stream',
        job_id: job,
        idx: 1,
        attempt: 1,
        config,
        placement: [{ idx: 0, attempt: 1, address: '127.0.0.2:1' }],
      },
      stop.signal,
    )
    .catch(() => undefined);
}

const tupleOf = (event: Record<string, unknown>): Tuple => ({ e: [event], o: 0, a: 1, r: 1, h: 1, l: 2 });

describe('a worker receiving tuples for an instance that has not started yet', () => {
  it.each([1, 2])(
    'holds them, with their credit, and hands them over when the instance starts (link version %i)',
    async (version) => {
      const collected = new Map<string, unknown[]>();
      const client = {
        post: async (path: string, body: { rows: { value: unknown }[] }) => {
          const job = /^\/api\/jobs\/([^/]+)\/rows$/.exec(path)![1]!;
          collected.set(job, [...(collected.get(job) ?? []), ...body.rows.map((r) => r.value)]);
          return {};
        },
      } as unknown as HttpClient;
      const rt = new StreamRuntime({
        address: '127.0.0.1:1',
        maxTasks: 10,
        tokens: new TokenSource(undefined, undefined, 'w'),
        client,
        log,
        executors: { run: () => Promise.reject(new Error('this job has no functions')) },
      });
      runtimes.push(rt);
      startCollect(rt, 'marker');
      await waitFor("the marker job's instance to run", () => rt.instances === 1, 20_000, 5);
      const socket = new LinkSocket();
      rt.accept(socket as unknown as WebSocket, version);
      // From the spout's worker, for the collect instance (1) of job1, whose assignment is still
      // on its way; then, on the same link, a tuple for a job whose collect instance runs.
      socket.emit('message', encodeFrame({ t: 'tuples', job: 'job1', to: [1], tuples: [tupleOf({ word: 'early' })] }));
      socket.emit(
        'message',
        encodeFrame({ t: 'tuples', job: 'marker', to: [1], tuples: [tupleOf({ word: 'marker' })] }),
      );
      // That the early tuple goes nowhere before its instance runs rests on an event, not on a
      // pause: the later tuple has reached its sink, and nothing of job1 was collected before it.
      await waitFor('the marker tuple to be collected', () => collected.get('marker'), 20_000, 5);
      expect(collected.get('marker')).toEqual([{ word: 'marker' }]);
      expect(collected.get('job1')).toBeUndefined();

      startCollect(rt, 'job1');
      await waitFor('the held tuple to be collected once its instance runs', () => collected.get('job1'), 20_000, 5);
      expect(collected.get('job1')).toEqual([{ word: 'early' }]);
    },
  );
});

describe('events for an http source whose job module is still loading', () => {
  it('are refused as unavailable, saying the instance is starting, not that it is not there', async () => {
    let loaded: (() => void) | undefined;
    const rt = new StreamRuntime({
      address: '127.0.0.1:1',
      maxTasks: 10,
      tokens: new TokenSource(undefined, undefined, 'w'),
      client: { post: async () => ({}) } as unknown as HttpClient,
      log,
      // The module's top-level code has not finished: the load answers when the test says.
      executors: { run: () => new Promise<string>((resolve) => (loaded = () => resolve('[]'))) },
    });
    runtimes.push(rt);
    const withModule = { ...config, module: 'await new Promise(() => {})' };
    const stop = new AbortController();
    stops.push(stop);
    void rt
      .run({ operation: 'stream', job_id: 'j', idx: 0, attempt: 1, config: withModule, placement: [] }, stop.signal)
      .catch(() => undefined);
    await waitFor('the module to be loading', () => loaded !== undefined, 20_000, 5);
    await expect(rt.ingest('j', 0, [{ a: 1 }])).rejects.toMatchObject({
      code: 'unavailable',
      message:
        "instance 0 of job 'j' is starting on 127.0.0.1:1: the job's module is still loading (its top-level code runs first)",
    });
    await expect(rt.ingest('j', 1, [{ a: 1 }])).rejects.toMatchObject({ code: 'not_found' });
    loaded!();
    await waitFor('the instance to run', () => rt.instances === 1, 20_000, 5);
    await expect(rt.ingest('j', 1, [{ a: 1 }])).rejects.toMatchObject({ code: 'not_found' });
  });
});
