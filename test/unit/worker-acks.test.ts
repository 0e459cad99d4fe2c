// A worker's reports are acknowledged once their outcome is committed. The acknowledgement
// rides behind the next frame the leader sends that worker anyway (for one-task jobs coming one
// at a time, the next job's assignment), or goes on its own within ACK_DELAY_MS: one socket
// write and one wake-up of the worker fewer a job.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ACK_DELAY_MS, WorkerRegistry } from '../../src/master/worker-registry.js';
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
    const ch = await open();
    registry.attach('w1', ch.leaderEnd, Date.now());
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
    const ch = await open();
    registry.attach('w1', ch.leaderEnd, Date.now());
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
    const [one, two] = [await open(), await open()];
    registry.attach('w1', one.leaderEnd, Date.now());
    registry.attach('w2', two.leaderEnd, Date.now());
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

  it('forgets them with the channel they were for: the worker sends those reports again on its next', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const registry = new WorkerRegistry();
    const first = await open();
    registry.attach('w1', first.leaderEnd, Date.now());
    registry.ack('w1', [ref(0)]);
    expect(registry.detach('w1', first.leaderEnd)).toBe(true);
    const next = await open();
    registry.attach('w1', next.leaderEnd, Date.now());
    vi.advanceTimersByTime(ACK_DELAY_MS);
    registry.send('w1', { t: 'cancel', tasks: [ref(7)] });
    expect(await next.mark()).toEqual([{ t: 'cancel', tasks: [ref(7)] }]);
  });
});
