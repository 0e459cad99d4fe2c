// Stream links' credit windows under random load (addresses 127.0.0.1, a port of the system's
// choosing): one sender's OutLink and the InLinks of a receiver, over real WebSockets, with
// random sends to two jobs' five instances, releases in random order (some twice), and
// connections cut under them. Whatever the order, the receiver never refuses its legitimate
// sender as speaking out of turn (1007), and no channel ever holds more tuples than its window.
// Each seed replays its draws (timing still differs from run to run).
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { TokenSource } from '../../src/common/auth.js';
import { createLogger } from '../../src/common/logger.js';
import { mulberry32 } from '../../src/common/mulberry32.js';
import type { Tuple } from '../../src/protocol/stream-link.js';
import { CHANNEL_WINDOW, InLink, OutLink } from '../../src/worker/stream/links.js';

const log = createLogger('test');
log.level = 'silent';
const FUZZ_MS = 1_500;
const servers: WebSocketServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

for (const seed of [1, 2, 3]) {
  it(`seed ${seed}: no refusal of a legitimate sender and no channel past its window, under random sends, releases and reconnects`, async () => {
    const rnd = mulberry32(seed);
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    servers.push(server);
    await new Promise<void>((r) => server.once('listening', () => r()));
    const closes: number[] = [];
    const sockets: WebSocket[] = [];
    const held: { key: string; release: () => void }[] = [];
    let maxHeld = 0;
    let connections = 0;
    let arrived = 0;
    server.on('connection', (socket, req) => {
      const conn = ++connections;
      sockets.push(socket);
      const version = Number(new URL(req.url!, 'http://x').searchParams.get('v') ?? 1);
      socket.on('close', (code) => closes.push(code));
      new InLink(
        socket,
        version,
        8,
        (job, to, _tuple, release) => {
          arrived++;
          const key = `${conn}/${job}/${to}`;
          held.push({ key, release });
          maxHeld = Math.max(maxHeld, held.filter((h) => h.key === key).length);
        },
        () => undefined,
        undefined,
        log,
      );
    });
    const out = new OutLink(
      `127.0.0.1:${(server.address() as AddressInfo).port}`,
      new TokenSource(undefined, undefined, 'w'),
      undefined,
      log,
      () => undefined,
    );
    const tuple = (i: number): Tuple => ({ e: [{ i }], o: 0, a: 1, r: i, h: 1, l: 1 });
    let sent = 0;
    const end = Date.now() + FUZZ_MS;
    while (Date.now() < end) {
      const r = rnd();
      if (r < 0.5) {
        const job = rnd() < 0.5 ? 'a' : 'b';
        const to = Math.floor(rnd() * 5);
        if (!out.full(job, to)) for (let k = Math.floor(rnd() * 4); k >= 0; k--) out.send(job, to, tuple(sent++));
      } else if (r < 0.93) {
        for (let k = Math.floor(rnd() * 6); k > 0 && held.length > 0; k--) {
          const h = held.splice(Math.floor(rnd() * held.length), 1)[0]!;
          h.release();
          // Released twice, it counts once.
          if (rnd() < 0.1) h.release();
        }
      } else if (r < 0.935) {
        sockets.at(-1)?.terminate();
      }
      await new Promise((done) => (rnd() < 0.5 ? setImmediate(done) : setTimeout(done, Math.floor(rnd() * 3))));
    }
    for (const h of held.splice(0)) h.release();
    out.close();
    expect(closes.filter((c) => c === 1007)).toEqual([]);
    expect(maxHeld).toBeLessThanOrEqual(CHANNEL_WINDOW);
    expect(arrived).toBeGreaterThan(100);
  }, 20_000);
}
