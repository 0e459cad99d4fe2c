// A fault-injecting TCP proxy that runs inside the test process: it listens on one address
// and forwards every connection to a target, until the test cuts it. Put one on each
// directed link between two masters (A's peer address for B is a proxy that forwards to B),
// and a partition is a matter of cutting the right proxies.
//
// Cut modes:
// * `blackhole` — a real partition as the network shows it: existing connections stay open
//   but every byte in either direction is silently dropped, and new connections are accepted
//   and never answered. Nobody gets an error; only silence (what check-quorum must notice).
// * `refuse` — existing connections are destroyed (RST) and new ones are closed at once.
//
// `heal()` destroys every connection that lost bytes (a byte stream with a hole in it is of
// no use to anyone), so the endpoints reconnect through a proxy that forwards again.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes were dropped (or never forwarded): destroy it on heal. */
  broken: boolean;
}

export class FaultProxy {
  private mode: ProxyMode = 'pass';
  private readonly pairs = new Set<Pair>();
  /** Connections accepted over the proxy's life, and bytes dropped while cut (diagnostics). */
  accepted = 0;
  droppedBytes = 0;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    readonly target: { host: string; port: number },
    readonly name: string,
  ) {}

  /** A proxy on `host` (a free port) forwarding to `target`. */
  static async start(host: string, target: { host: string; port: number }, name = ''): Promise<FaultProxy> {
    // The server exists before the proxy that handles its connections.
    const self: { proxy?: FaultProxy } = {};
    const server = createServer({ noDelay: true }, (socket) =>
      self.proxy ? self.proxy.accept(socket) : socket.destroy(),
    );
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen({ host, port: 0, exclusive: true }, () => res());
    });
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('the proxy has no port');
    self.proxy = new FaultProxy(
      server,
      host,
      addr.port,
      target,
      name || `${host}:${addr.port}->${target.host}:${target.port}`,
    );
    return self.proxy;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get state(): ProxyMode {
    return this.mode;
  }

  /** Open connections (each a client side and, when forwarding, an upstream side). */
  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    const pair: Pair = { client, upstream: undefined, broken: false };
    this.pairs.add(pair);
    const done = () => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('error', done);
    client.on('close', done);
    if (this.mode === 'refuse') return done();
    if (this.mode === 'blackhole') {
      pair.broken = true;
      client.on('data', (d: Buffer) => (this.droppedBytes += d.length));
      return;
    }
    const upstream = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', done);
    upstream.on('close', done);
    this.relay(pair, client, upstream);
    this.relay(pair, upstream, client);
  }

  /** Copies `from` to `to` while the proxy passes, with backpressure; drops bytes while it is cut. */
  private relay(pair: Pair, from: Socket, to: Socket): void {
    from.on('data', (d: Buffer) => {
      if (this.mode !== 'pass' || pair.broken) {
        pair.broken = true;
        this.droppedBytes += d.length;
        return;
      }
      if (!to.write(d)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => {
      if (!pair.broken) to.end();
    });
  }

  /** Cuts the link: see the modes at the top of this file. */
  cut(mode: Exclude<ProxyMode, 'pass'> = 'blackhole'): void {
    this.mode = mode;
    if (mode === 'refuse') {
      for (const p of [...this.pairs]) {
        p.client.destroy();
        p.upstream?.destroy();
      }
    }
    // blackhole: relay() drops from now on, and marks each pair broken on its first dropped byte.
    // A pair that carries nothing while cut is marked too, so heal() never reuses a stream
    // whose peer may have given up on it.
    else for (const p of this.pairs) p.broken = true;
  }

  /** Forwards again; connections that lost bytes are destroyed so their ends reconnect. */
  heal(): void {
    this.mode = 'pass';
    for (const p of [...this.pairs]) {
      if (!p.broken) continue;
      this.pairs.delete(p);
      p.client.destroy();
      p.upstream?.destroy();
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}
