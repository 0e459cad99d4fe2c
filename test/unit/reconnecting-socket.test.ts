import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ReconnectingSocket, wsUrl, type ReconnectingSocketOptions } from '../../src/common/reconnecting-socket.js';

interface Connection {
  headers: IncomingHttpHeaders;
  frames: string[];
  socket: WebSocket;
}

interface Server {
  url: string;
  connections: Connection[];
}

const servers: WebSocketServer[] = [];
const sockets: ReconnectingSocket[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(
    servers.splice(0).map((wss) => {
      for (const c of wss.clients) c.terminate();
      return new Promise((r) => wss.close(r));
    }),
  );
});

async function startServer(): Promise<Server> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.push(wss);
  await once(wss, 'listening');
  const server: Server = { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/x`, connections: [] };
  wss.on('connection', (socket, req) => {
    const c: Connection = { headers: req.headers, frames: [], socket };
    socket.on('message', (data: Buffer) => c.frames.push(data.toString()));
    server.connections.push(c);
  });
  return server;
}

/** A URL nothing listens on: every attempt there is refused at once. */
async function deadUrl(): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  await new Promise((r) => wss.close(r));
  return `ws://127.0.0.1:${port}/x`;
}

const openCluster = { header: () => Promise.resolve(undefined) };

function socket(o: Partial<ReconnectingSocketOptions> & Pick<ReconnectingSocketOptions, 'url'>): ReconnectingSocket {
  const s = new ReconnectingSocket({
    tokens: openCluster,
    maxPayload: 1024 * 1024,
    initialBackoffMs: 5,
    maxBackoffMs: 20,
    ...o,
  });
  sockets.push(s);
  return s;
}

/** Polls `cond` on every turn of the event loop (timers may be fake; I/O is not). */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const frames = (...names: string[]) => names.map((n) => Buffer.from(n));

describe('ReconnectingSocket', () => {
  it('authenticates every attempt with the header the token source gives then, beside the extra headers', async () => {
    const server = await startServer();
    let minted = 0;
    socket({
      url: () => server.url,
      tokens: { header: () => Promise.resolve(`Bearer t${++minted}`) },
      headers: { 'x-weir-node-id': '7' },
    });
    for (let n = 1; n <= 3; n++) {
      await until(() => server.connections.length === n, `connection ${n}`);
      if (n < 3) server.connections[n - 1]!.socket.close();
    }
    expect(server.connections.map((c) => c.headers.authorization)).toEqual(['Bearer t1', 'Bearer t2', 'Bearer t3']);
    expect(server.connections.map((c) => c.headers['x-weir-node-id'])).toEqual(['7', '7', '7']);
  });

  it('sends no authorization header when the cluster is open', async () => {
    const server = await startServer();
    socket({ url: () => server.url });
    await until(() => server.connections.length === 1, 'a connection');
    expect(server.connections[0]!.headers.authorization).toBeUndefined();
  });

  it('sends what was queued while disconnected, in order, once it reconnects', async () => {
    const server = await startServer();
    const accepted: boolean[] = [];
    const s: ReconnectingSocket = socket({
      url: () => server.url,
      maxQueued: 10,
      onClose: () => {
        if (accepted.length === 0) for (const f of frames('f1', 'f2', 'f3', 'f4', 'f5')) accepted.push(s.send(f));
      },
    });
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close();
    await until(() => server.connections[1]?.frames.length === 5, 'the queued frames');
    expect(accepted).toEqual([true, true, true, true, true]);
    expect(server.connections[1]!.frames).toEqual(['f1', 'f2', 'f3', 'f4', 'f5']);
    expect(server.connections[0]!.frames).toEqual([]);
  });

  it('keeps at most maxQueued frames while disconnected, the newest', async () => {
    const server = await startServer();
    let dropped = false;
    const s: ReconnectingSocket = socket({
      url: () => server.url,
      maxQueued: 3,
      onClose: () => {
        if (dropped) return;
        for (const f of frames('f1', 'f2', 'f3', 'f4', 'f5')) s.send(f);
        dropped = true;
      },
      onOpen: () => {
        if (dropped) s.send(Buffer.from('after'));
      },
    });
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close();
    await until(() => server.connections[1]?.frames.length === 4, 'the frames');
    expect(server.connections[1]!.frames).toEqual(['f3', 'f4', 'f5', 'after']);
  });

  it('refuses frames while disconnected when no queue was asked for', async () => {
    const server = await startServer();
    const refused: boolean[] = [];
    const s: ReconnectingSocket = socket({
      url: () => server.url,
      onClose: () => void refused.push(s.send(Buffer.from('lost'))),
      onOpen: () => s.send(Buffer.from('hello')),
    });
    expect(s.send(Buffer.from('early'))).toBe(false);
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close();
    await until(() => server.connections[1]?.frames.length === 1, 'the second hello');
    expect(refused[0]).toBe(false);
    expect(server.connections.map((c) => c.frames)).toEqual([['hello'], ['hello']]);
  });

  it('waits twice as long after each failed attempt up to the cap, and from the start again after an open', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const server = await startServer();
    const dead = await deadUrl();
    let live = false;
    let attempts = 0;
    let ends = 0;
    const s = socket({
      url: () => {
        attempts++;
        return live ? server.url : dead;
      },
      initialBackoffMs: 100,
      maxBackoffMs: 400,
      onClose: () => void ends++,
    });
    const nextAttemptAfter = async (ms: number) => {
      await until(() => ends === attempts, `the end of attempt ${attempts}`);
      const before = attempts;
      vi.advanceTimersByTime(ms - 1);
      expect(attempts).toBe(before);
      vi.advanceTimersByTime(1);
      expect(attempts).toBe(before + 1);
    };
    await nextAttemptAfter(100);
    await nextAttemptAfter(200);
    await nextAttemptAfter(400);
    await nextAttemptAfter(400);
    live = true;
    await nextAttemptAfter(400);
    await until(() => s.open, 'the open');
    server.connections[0]!.socket.close();
    await nextAttemptAfter(100);
  });

  it('starts from the initial backoff when the owner answers a close with retry-reset', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const dead = await deadUrl();
    let attempts = 0;
    let ends = 0;
    socket({
      url: () => {
        attempts++;
        return dead;
      },
      initialBackoffMs: 100,
      maxBackoffMs: 400,
      onClose: () => (++ends === 3 ? 'retry-reset' : 'retry'),
    });
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      await until(() => ends === attempts, `the end of attempt ${attempts}`);
      const before = attempts;
      let waited = 0;
      while (attempts === before) {
        vi.advanceTimersByTime(1);
        waited++;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([100, 200, 100, 200]);
  });

  it('stops for good when the owner answers a close with stop', async () => {
    const server = await startServer();
    const codes: number[] = [];
    const s = socket({
      url: () => server.url,
      onClose: (code) => {
        codes.push(code);
        return code === 4409 ? 'stop' : 'retry';
      },
    });
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close(4001, 'go again');
    await until(() => server.connections.length === 2 && s.open, 'the second open');
    // From here a retry would wait on a timer the spec runs itself.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    server.connections[1]!.socket.close(4409, 'replaced');
    await until(() => codes.length === 2, 'the second close');
    vi.advanceTimersByTime(60_000);
    await new Promise((r) => setImmediate(r));
    expect(codes).toEqual([4001, 4409]);
    expect(server.connections).toHaveLength(2);
    expect(s.send(Buffer.from('late'))).toBe(false);
  });

  it('hands the owner the close reason, and may wait for the owner before the next attempt', async () => {
    const server = await startServer();
    const reasons: string[] = [];
    let release!: () => void;
    const s = socket({
      url: () => server.url,
      onClose: (_code, reason) => {
        reasons.push(reason);
        return new Promise<'retry'>((r) => (release = () => r('retry')));
      },
    });
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close(4503, 'http://elsewhere');
    await until(() => reasons.length === 1, 'the close');
    expect(reasons).toEqual(['http://elsewhere']);
    expect(server.connections).toHaveLength(1);
    release();
    await until(() => server.connections.length === 2, 'the next attempt');
  });

  it('can be closed twice, and closing stops the pending attempt', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const server = await startServer();
    let attempts = 0;
    let ends = 0;
    const s = socket({
      url: () => {
        attempts++;
        return server.url;
      },
      onClose: () => void ends++,
    });
    await until(() => s.open, 'the first open');
    server.connections[0]!.socket.close();
    await until(() => ends === 1, 'the first close');
    s.close();
    s.close();
    vi.advanceTimersByTime(60_000);
    expect(attempts).toBe(1);

    const t = socket({ url: () => server.url, onClose: () => void ends++ });
    await until(() => t.open, 'the second socket open');
    t.close(1000, 'done');
    t.close();
    await until(() => ends === 2, 'the owner hearing of the last close');
    vi.advanceTimersByTime(60_000);
    await new Promise((r) => setImmediate(r));
    expect(server.connections).toHaveLength(2);
    expect(t.open).toBe(false);
  });

  it('asks for the URL before every attempt, so the owner can move between servers', async () => {
    const a = await startServer();
    const b = await startServer();
    const order = [a, b, a];
    let attempts = 0;
    socket({ url: () => order[Math.min(attempts++, order.length - 1)]!.url });
    await until(() => a.connections.length === 1, 'a first');
    a.connections[0]!.socket.close();
    await until(() => b.connections.length === 1, 'then b');
    b.connections[0]!.socket.close();
    await until(() => a.connections.length === 2, 'then a again');
    expect(attempts).toBe(3);
  });

  it('reports a token source that fails, and tries again', async () => {
    const server = await startServer();
    const errors: string[] = [];
    let calls = 0;
    socket({
      url: () => server.url,
      tokens: {
        header: () => (++calls === 1 ? Promise.reject(new Error('no key')) : Promise.resolve('Bearer ok')),
      },
      onError: (err) => errors.push(err.message),
    });
    await until(() => server.connections.length === 1, 'a connection');
    expect(errors).toEqual(['no key']);
    expect(server.connections[0]!.headers.authorization).toBe('Bearer ok');
  });

  /** A token source that mints `t1`, `t2`, … and says each is to be replaced `lifeMs` after it was minted. */
  function mintingTokens(lifeMs: number) {
    let n = 0;
    let renewsAt = 0;
    return {
      header: () => {
        if (Date.now() >= renewsAt) {
          n++;
          renewsAt = Date.now() + lifeMs;
        }
        return Promise.resolve(`Bearer t${n}`);
      },
      renewsAt: () => (n === 0 ? Date.now() : renewsAt),
    };
  }

  it("sends each fresh token over the open connection, as a frame of the owner's making, before the last expires", async () => {
    const server = await startServer();
    socket({ url: () => server.url, tokens: mintingTokens(40), tokenFrame: (t) => Buffer.from(`token:${t}`) });
    await until(() => (server.connections[0]?.frames.length ?? 0) >= 3, 'three fresh tokens');
    // The upgrade carried t1; each frame after it a newer token, never one sent before.
    expect(server.connections).toHaveLength(1);
    expect(server.connections[0]!.headers.authorization).toBe('Bearer t1');
    expect(server.connections[0]!.frames.slice(0, 3)).toEqual(['token:t2', 'token:t3', 'token:t4']);
  });

  it('sends no token frame when the owner has none, or when the source never mints another', async () => {
    const server = await startServer();
    socket({ url: () => server.url, tokens: mintingTokens(10) });
    socket({
      url: () => server.url,
      tokens: { header: () => Promise.resolve('Bearer fixed'), renewsAt: () => undefined },
      tokenFrame: (t) => Buffer.from(`token:${t}`),
    });
    await until(() => server.connections.length === 2, 'both connections');
    const quiet = Date.now() + 100;
    await until(() => Date.now() > quiet, '100 ms of the connections open');
    expect(server.connections.flatMap((c) => c.frames)).toEqual([]);
  });

  it('stops sending fresh tokens once closed', async () => {
    const server = await startServer();
    const s = socket({ url: () => server.url, tokens: mintingTokens(20), tokenFrame: (t) => Buffer.from(t) });
    await until(() => (server.connections[0]?.frames.length ?? 0) >= 1, 'a fresh token');
    s.close();
    await until(() => server.connections[0]!.socket.readyState === server.connections[0]!.socket.CLOSED, 'the close');
    const sent = server.connections[0]!.frames.length;
    const later = Date.now() + 100;
    await until(() => Date.now() > later, '100 ms more');
    expect(server.connections[0]!.frames).toHaveLength(sent);
  });

  it('refuses impossible options before connecting', () => {
    const url = () => 'ws://127.0.0.1:1/x';
    expect(() => new ReconnectingSocket({ url, tokens: openCluster, maxPayload: 1, maxQueued: -1 })).toThrow(
      RangeError,
    );
    expect(() => new ReconnectingSocket({ url, tokens: openCluster, maxPayload: 1, initialBackoffMs: 0 })).toThrow(
      RangeError,
    );
    expect(
      () => new ReconnectingSocket({ url, tokens: openCluster, maxPayload: 1, initialBackoffMs: 10, maxBackoffMs: 5 }),
    ).toThrow(RangeError);
  });
});

describe('wsUrl', () => {
  it('turns an http(s) URL or a bare host:port into a ws(s) URL with the path', () => {
    expect(wsUrl('http://10.0.0.1:7070', '/raft/stream')).toBe('ws://10.0.0.1:7070/raft/stream');
    expect(wsUrl('https://m.example:443', '/a')).toBe('wss://m.example:443/a');
    expect(wsUrl('10.0.0.2:7171', '/api/stream/link')).toBe('ws://10.0.0.2:7171/api/stream/link');
  });
});
