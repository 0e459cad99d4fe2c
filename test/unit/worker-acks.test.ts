// A worker's reports are acknowledged once their outcome is committed. The acknowledgement
// rides behind the next frame the leader sends that worker anyway (for one-task jobs coming one
// at a time, the next job's assignment), or goes on its own within ACK_DELAY_MS: one socket
// write and one wake-up of the worker fewer a job.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../src/common/logger.js';
import type { ClusterConsensus } from '../../src/master/cluster-log.js';
import type { FailureDetector } from '../../src/master/failure-detector.js';
import type { Scheduler } from '../../src/master/scheduler.js';
import { WorkerChannels } from '../../src/master/worker-channels.js';
import { ACK_DELAY_MS, WorkerRegistry } from '../../src/master/worker-registry.js';
import type { Queries } from '../../src/state/queries.js';
import { decodeToWorker, encode, type ToWorker } from '../../src/protocol/worker-channel.js';

const ref = (idx: number) => ({ job_id: 'job-1', idx, attempt: 1 });

/** The leader's end of a real channel, and what the worker's end has received, in order. */
interface Channel {
  leaderEnd: WebSocket;
  received: ToWorker[];
  /** Sent past the registry: once it arrives, so has everything the registry sent before it. */
  mark(): Promise<ToWorker[]>;
}

let server: WebSocketServer;
const clients: WebSocket[] = [];

async function open(): Promise<Channel> {
  const accepted = once(server, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  clients.push(client);
  const received: ToWorker[] = [];
  const marks: (() => void)[] = [];
  client.on('message', (data: Buffer) => {
    const d = decodeToWorker(data);
    if (!d.ok) throw new Error(d.error);
    if (d.value.t === 'forget' && d.value.job_ids[0] === 'mark') marks.shift()?.();
    else received.push(d.value);
  });
  const [[leaderEnd]] = await Promise.all([accepted, once(client, 'open')]);
  return {
    leaderEnd,
    received,
    mark: async () => {
      const arrived = new Promise<void>((resolve) => marks.push(resolve));
      leaderEnd.send(encode({ t: 'forget', job_ids: ['mark'] }));
      await arrived;
      return [...received];
    },
  };
}

/** A channel opened and attached to `registry` as `workerId`'s. */
async function attached(registry: WorkerRegistry, workerId = 'w1'): Promise<Channel> {
  const ch = await open();
  registry.attach(workerId, ch.leaderEnd, Date.now());
  return ch;
}

beforeEach(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
});

afterEach(async () => {
  vi.useRealTimers();
  for (const c of clients.splice(0)) c.terminate();
  server.close();
});

describe('acknowledging a worker’s reports', () => {
  it('sends them right behind the next frame that goes to the worker', async () => {
    const registry = new WorkerRegistry();
    const ch = await attached(registry);
    registry.ack('w1', [ref(0)]);
    registry.ack('w1', [ref(1)]);
    registry.send('w1', { t: 'cancel', tasks: [ref(7)] });
    expect(await ch.mark()).toEqual([
      { t: 'cancel', tasks: [ref(7)] },
      { t: 'ack', tasks: [ref(0), ref(1)] },
    ]);
  });

  it('sends them on their own once ACK_DELAY_MS pass with no frame to carry them', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const registry = new WorkerRegistry();
    const ch = await attached(registry);
    registry.ack('w1', [ref(0)]);
    vi.advanceTimersByTime(ACK_DELAY_MS - 1);
    expect(await ch.mark()).toEqual([]);
    registry.ack('w1', [ref(1)]);
    vi.advanceTimersByTime(1);
    expect(await ch.mark()).toEqual([{ t: 'ack', tasks: [ref(0), ref(1)] }]);
  });

  it('gives each worker its own and none to another', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const registry = new WorkerRegistry();
    const [one, two] = [await attached(registry, 'w1'), await attached(registry, 'w2')];
    registry.ack('w1', [ref(0)]);
    registry.ack('w2', [ref(1)]);
    registry.send('w1', { t: 'cancel', tasks: [ref(7)] });
    vi.advanceTimersByTime(ACK_DELAY_MS);
    expect(await one.mark()).toEqual([
      { t: 'cancel', tasks: [ref(7)] },
      { t: 'ack', tasks: [ref(0)] },
    ]);
    expect(await two.mark()).toEqual([{ t: 'ack', tasks: [ref(1)] }]);
  });

  it('sends them before a channel still open is dropped (a master stepping down), and drops them with one already lost', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const registry = new WorkerRegistry();
    const first = await attached(registry);
    registry.ack('w1', [ref(0)]);
    expect(registry.detach('w1', first.leaderEnd)).toBe(true);
    expect(await first.mark()).toEqual([{ t: 'ack', tasks: [ref(0)] }]);
    // The worker's end goes: what is held for it now is sent again by the worker, on its next channel.
    const second = await attached(registry);
    registry.ack('w1', [ref(1)]);
    const lost = once(second.leaderEnd, 'close');
    clients.at(-1)!.terminate();
    await lost;
    expect(registry.detach('w1', second.leaderEnd)).toBe(true);
    const third = await attached(registry);
    vi.advanceTimersByTime(ACK_DELAY_MS);
    registry.send('w1', { t: 'cancel', tasks: [ref(7)] });
    expect(await third.mark()).toEqual([{ t: 'cancel', tasks: [ref(7)] }]);
  });

  it('sends them before the channels close as the master shuts down', async () => {
    const registry = new WorkerRegistry();
    const ch = await attached(registry);
    const log = { warn: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;
    const channels = new WorkerChannels(
      {} as ClusterConsensus,
      {} as Queries,
      registry,
      {} as Scheduler,
      {} as FailureDetector,
      log,
    );
    registry.ack('w1', [ref(0)]);
    const closed = once(clients.at(-1)!, 'close');
    channels.close();
    await closed;
    expect(ch.received).toEqual([{ t: 'ack', tasks: [ref(0)] }]);
  });

  it('takes any number of them for one worker (a frame of reports is not bounded)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const registry = new WorkerRegistry();
    const ch = await attached(registry);
    const many = Array.from({ length: 150_000 }, (_, i) => ref(i));
    registry.ack('w1', many);
    registry.ack('w1', many);
    vi.advanceTimersByTime(ACK_DELAY_MS);
    const [ack] = await ch.mark();
    expect(ack).toMatchObject({ t: 'ack' });
    expect((ack as { tasks: unknown[] }).tasks).toHaveLength(300_000);
  });
});
