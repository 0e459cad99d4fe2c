// Stream links between two workers over a real WebSocket: what each receiving instance may be
// sent is its own (a channel), so a full instance holds up its own tuples only; a receiver
// of the first link protocol still shares one window; and a sender that overruns what it was
// granted, or speaks for the receiver, is cut off.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { TokenSource } from '../../src/common/auth.js';
import { createLogger } from '../../src/common/logger.js';
import { decodeFrame, encodeFrame, type LinkFrame, type Tuple } from '../../src/protocol/stream-link.js';
import {
  CHANNEL_QUEUE,
  CHANNEL_WINDOW,
  InLink,
  LINK_PATH,
  LINK_WINDOW,
  maxChannels,
  OutLink,
} from '../../src/worker/stream/links.js';
import { waitFor } from '../helpers/wait.js';

const log = createLogger('test');
/** The receiving worker's --max-tasks. */
const MAX_TASKS = 10;
log.level = 'silent';

interface Arrival {
  to: number;
  seq: number;
  release: () => void;
}

/**
 * A receiving worker: every tuple that arrives is kept with its release (the instance taking
 * it from its inbox); instances in `flowing` take theirs at once, the others hold them.
 * `version`: the protocol it speaks whatever the sender asks (1: a worker from before channels).
 */
async function receiver(version?: number) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => server.once('listening', () => r()));
  const arrived: Arrival[] = [];
  const flowing = new Set<number>();
  const closes: number[] = [];
  server.on('connection', (socket, req) => {
    const asked = Number(new URL(req.url!, 'http://x').searchParams.get('v') ?? 1);
    socket.on('close', (code) => closes.push(code));
    new InLink(
      socket,
      version ?? asked,
      MAX_TASKS,
      (_job, to, tuple, release) => {
        arrived.push({ to, seq: tuple.r, release });
        if (flowing.has(to)) release();
      },
      () => undefined,
      undefined,
      log,
    );
  });
  servers.push(server);
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const held = (to: number) => arrived.filter((a) => a.to === to);
  const releaseAll = (to: number) => {
    flowing.add(to);
    for (const a of held(to)) a.release();
  };
  return { address, arrived, held, flowing, releaseAll, closes };
}

const links: OutLink[] = [];
const servers: WebSocketServer[] = [];
const raw: WebSocket[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  for (const w of raw.splice(0)) w.terminate();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function sender(address: string): OutLink {
  const l = new OutLink(address, new TokenSource(undefined, undefined, 'w'), undefined, log, () => undefined);
  links.push(l);
  return l;
}

const tuple = (seq: number): Tuple => ({ e: [{ seq }], o: 0, a: 1, r: seq, h: seq, l: 0 });

describe('a link between two workers of this version', () => {
  it('gives each receiving instance its own window: one that takes nothing holds up none of the others', async () => {
    const r = await receiver();
    r.flowing.add(2);
    const out = sender(r.address);
    // More than a whole link's window of old, for instance 1.
    for (let i = 0; i < LINK_WINDOW + 36; i++) out.send('job', 1, tuple(i));
    await waitFor('instance 1 to hold its whole window', () => r.held(1).length === CHANNEL_WINDOW);
    // Its producers are told to wait; instance 2's are not.
    expect(out.full('job', 1)).toBe(true);
    expect(out.full('job', 2)).toBe(false);
    for (let i = 0; i < 200; i++) out.send('job', 2, tuple(1000 + i));
    await waitFor('every tuple for instance 2 to pass the ones held for 1', () => r.held(2).length === 200);
    expect(r.held(1)).toHaveLength(CHANNEL_WINDOW);
    r.releaseAll(1);
    await waitFor('the rest for instance 1 once it takes them', () => r.held(1).length === LINK_WINDOW + 36);
    // In order, each channel's tuples.
    expect(r.held(1).map((a) => a.seq)).toEqual([...Array(LINK_WINDOW + 36).keys()]);
    expect(r.closes).toEqual([]);
  });

  it('keeps a channel as one window however often it drains: both ends forget it at rest and start it whole again', async () => {
    const r = await receiver();
    const out = sender(r.address);
    let sent = 0;
    for (let round = 1; round <= 5; round++) {
      // A whole window, then half of it taken (credits go back by half windows): the sender
      // holds part of its credits, then all again.
      for (let i = 0; i < CHANNEL_WINDOW + 3; i++) out.send('job', 7, tuple(sent++));
      await waitFor(`round ${round}: a window's worth in`, () => r.held(7).length === sent - 3);
      for (const a of r.held(7).slice(-CHANNEL_WINDOW, -CHANNEL_WINDOW / 2)) a.release();
      await waitFor(`round ${round}: the rest in`, () => r.held(7).length === sent);
      r.releaseAll(7);
      r.flowing.delete(7);
    }
    expect(r.held(7)).toHaveLength(5 * (CHANNEL_WINDOW + 3));
    expect(r.closes).toEqual([]);
  });
});

describe('a link to a worker from before channels (link version 1)', () => {
  it("shares that worker's one window among its instances, and flows once they take their tuples", async () => {
    const r = await receiver(1);
    const out = sender(r.address);
    for (let i = 0; i < 100; i++) out.send('job', 1, tuple(i));
    await waitFor('the shared window to fill', () => r.held(1).length === LINK_WINDOW);
    for (let i = 0; i < 10; i++) out.send('job', 2, tuple(1000 + i));
    // The window is spent on instance 1: 2's tuples wait for it.
    expect(out.full('job', 1)).toBe(true);
    r.flowing.add(2);
    r.releaseAll(1);
    await waitFor('everything to arrive once instance 1 takes its tuples', () => r.arrived.length === 110);
    expect(r.closes).toEqual([]);
  });
});

/** A peer that speaks the link protocol by hand: what a bug or a stolen worker token could send. */
async function rawLink(address: string, version?: number) {
  const ws = new WebSocket(`ws://${address}${LINK_PATH}${version ? `?v=${version}` : ''}`);
  raw.push(ws);
  const frames: LinkFrame[] = [];
  ws.on('message', (data: Buffer) => {
    const d = decodeFrame(data);
    if (d.ok) frames.push(d.value);
  });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  await waitFor('the receiver to speak first', () => frames.length > 0);
  return { ws, frames, closed, send: (f: LinkFrame) => ws.send(encodeFrame(f)) };
}

const tuplesFor = (to: number[]): LinkFrame => ({ t: 'tuples', job: 'job', to, tuples: to.map((_, i) => tuple(i)) });

describe('a receiver', () => {
  it('opens with its window to a sender of this version, and with a shared credit to one from before', async () => {
    const r = await receiver();
    expect((await rawLink(r.address, 2)).frames[0]).toEqual({ t: 'hello', v: 2, window: CHANNEL_WINDOW });
    expect((await rawLink(r.address)).frames[0]).toEqual({ t: 'credit', n: LINK_WINDOW });
    // A sender of a later version is answered with the version this one speaks.
    expect((await rawLink(r.address, 9)).frames[0]).toEqual({ t: 'hello', v: 2, window: CHANNEL_WINDOW });
  });

  it('cuts off a sender that sends one instance more than its window, and delivers none of that frame', async () => {
    const r = await receiver();
    const peer = await rawLink(r.address, 2);
    peer.send(tuplesFor(Array(CHANNEL_WINDOW).fill(3)));
    peer.send(tuplesFor([3]));
    expect(await peer.closed).toBe(1007);
    expect(r.held(3)).toHaveLength(CHANNEL_WINDOW);
  });

  it('cuts off a sender that keeps more instances busy at once than the worker has room for', async () => {
    const r = await receiver();
    const peer = await rawLink(r.address, 2);
    const room = maxChannels(MAX_TASKS);
    peer.send(tuplesFor([...Array(room).keys()]));
    peer.send(tuplesFor([room]));
    expect(await peer.closed).toBe(1007);
    expect(r.arrived).toHaveLength(room);
  });

  it('cuts off a sender whose tuple holds more events than a batch', async () => {
    const r = await receiver();
    const peer = await rawLink(r.address, 2);
    const big = { ...tuple(1), e: Array.from({ length: 1025 }, (_, i) => ({ i })) };
    peer.send({ t: 'tuples', job: 'job', to: [1], tuples: [big] });
    expect(await peer.closed).toBe(1007);
    expect(r.arrived).toHaveLength(0);
  });

  it('cuts off a sender that speaks as a receiver', async () => {
    const r = await receiver();
    for (const f of [
      { t: 'grants', g: [['job', 1, 4]] },
      { t: 'hello', v: 2, window: 4 },
      { t: 'credit', n: 4 },
    ] as LinkFrame[]) {
      const peer = await rawLink(r.address, 2);
      peer.send(f);
      expect(await peer.closed, f.t).toBe(1007);
    }
  });
});

describe('a sender', () => {
  it('waits for its first tuples until the receiver says how it counts credits, then queues at most a few per instance', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    servers.push(server);
    await new Promise<void>((r) => server.once('listening', () => r()));
    const got: LinkFrame[] = [];
    let say: ((f: LinkFrame) => void) | undefined;
    server.on('connection', (socket) => {
      socket.on('message', (data: Buffer) => {
        const d = decodeFrame(data);
        if (d.ok) got.push(d.value);
      });
      say = (f) => socket.send(encodeFrame(f));
    });
    const out = sender(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    for (let i = 0; i < CHANNEL_QUEUE; i++) out.send('job', 1, tuple(i));
    expect(out.full('job', 1)).toBe(true);
    await waitFor('the connection', () => say !== undefined);
    out.ack('job', [0, 1, 1, 1, 1]);
    await waitFor('the ack, which waits for no credit', () => got.some((f) => f.t === 'acks'));
    expect(got.some((f) => f.t === 'tuples')).toBe(false);
    say!({ t: 'hello', v: 2, window: 3 });
    await waitFor('a window of tuples', () => got.some((f) => f.t === 'tuples'));
    const sent = got.flatMap((f) => (f.t === 'tuples' ? f.tuples : []));
    expect(sent.map((t) => t.r)).toEqual([0, 1, 2]);
  });
});

describe('a sender', () => {
  it.each([
    ['channel grants before any hello', [{ t: 'grants', g: [['job', 1, 4]] }]],
    [
      'a second hello',
      [
        { t: 'hello', v: 2, window: 4 },
        { t: 'hello', v: 2, window: 8 },
      ],
    ],
    [
      'a shared credit after a hello',
      [
        { t: 'hello', v: 2, window: 4 },
        { t: 'credit', n: 64 },
      ],
    ],
  ] as [string, LinkFrame[]][])(
    'drops a connection whose receiver sends %s, and connects again',
    async (_what, frames) => {
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      servers.push(server);
      await new Promise<void>((r) => server.once('listening', () => r()));
      const closes: number[] = [];
      let connections = 0;
      server.on('connection', (socket) => {
        socket.on('close', (code) => closes.push(code));
        if (++connections === 1) for (const f of frames) socket.send(encodeFrame(f));
      });
      sender(`127.0.0.1:${(server.address() as AddressInfo).port}`);
      await waitFor('the connection dropped and made again', () => closes.length === 1 && connections === 2);
    },
  );
});
