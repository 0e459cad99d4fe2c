// A tiny authoritative DNS server over UDP for tests of `--discover dns:NAME`: it answers
// A queries for the names it was given with their current list of IPv4 addresses (TTL 0, so
// a re-resolution sees changes at once), NXDOMAIN for other names, and an empty answer for
// other record types. Masters are pointed at it with WEIR_DNS_SERVER=host:port.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

const TYPE_A = 1;
const CLASS_IN = 1;

export class DnsServer {
  private readonly records = new Map<string, string[]>();
  /** How many A queries were answered, per name (lower case). */
  readonly queries = new Map<string, number>();

  private constructor(
    private readonly socket: Socket,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(host: string): Promise<DnsServer> {
    const socket = createSocket('udp4');
    await new Promise<void>((res, rej) => {
      socket.once('error', rej);
      socket.bind({ address: host, port: 0, exclusive: true }, () => res());
    });
    const server = new DnsServer(socket, host, socket.address().port);
    socket.on('message', (msg, from) => server.answer(msg, from));
    return server;
  }

  /** `host:port`, as WEIR_DNS_SERVER takes it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Sets the A records of `name` (an empty list: the name exists but has no addresses). */
  set(name: string, addresses: string[]): void {
    this.records.set(name.toLowerCase().replace(/\.$/, ''), [...addresses]);
  }

  private answer(msg: Buffer, from: RemoteInfo): void {
    if (msg.length < 12) return;
    // The question: labels up to a zero byte, then type and class.
    const labels: string[] = [];
    let at = 12;
    while (at < msg.length && msg[at] !== 0) {
      const len = msg[at]!;
      if (len > 63) return; // compression never appears in a question we accept
      labels.push(msg.toString('latin1', at + 1, at + 1 + len));
      at += 1 + len;
    }
    const questionEnd = at + 5;
    if (questionEnd > msg.length) return;
    const qtype = msg.readUInt16BE(at + 1);
    const name = labels.join('.').toLowerCase();
    const addrs = this.records.get(name);
    const answers = addrs && qtype === TYPE_A ? addrs : [];
    if (qtype === TYPE_A) this.queries.set(name, (this.queries.get(name) ?? 0) + 1);

    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // the query's id
    const rd = msg[2]! & 0x01;
    header[2] = 0x84 | rd; // QR, AA, RD as asked
    header[3] = addrs ? 0 : 3; // NOERROR or NXDOMAIN
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(answers.length, 6);
    const records = answers.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(0, 6); // TTL
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((o, i) => (rr[12 + i] = Number(o)));
      return rr;
    });
    this.socket.send(Buffer.concat([header, msg.subarray(12, questionEnd), ...records]), from.port, from.address);
  }

  async close(): Promise<void> {
    await new Promise<void>((res) => this.socket.close(() => res()));
  }
}
