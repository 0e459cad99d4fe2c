import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, read, rmSync, writeSync } from 'node:fs';
import type { Logger } from '../common/logger.js';
import type { Message, NodeId } from './core/types.js';
import type { Inbound, Snapshot } from './ports.js';

// A snapshot travels between masters as a stream of chunk frames, never as one buffer: the
// sender reads its copy of the state a chunk at a time and waits for its socket to drain, and
// the receiver writes each chunk to a file as it comes. The `snap` message rides on the last
// chunk, with the sha256 of the whole: only a complete, verified, synced file reaches Raft.

/** The bytes of one chunk (the frame schema refuses larger ones). */
export const CHUNK_BYTES = 1024 * 1024;
/** The sender reads its next chunk only once its socket holds less than this unsent. */
const HIGH_WATER_BYTES = 4 * CHUNK_BYTES;
/** A socket that does not drain below HIGH_WATER_BYTES for this long: the transfer is given up. */
const STALL_MS = 30_000;
const DRAIN_POLL_MS = 5;

/** One chunk of a snapshot transfer, as it travels in a peer frame. */
export interface SnapshotChunk {
  /** Names the transfer; a chunk at offset 0 starts a new one. */
  transfer: number;
  offset: number;
  /** The size of the whole snapshot. */
  size: number;
  data: Buffer;
  /** On the last chunk only: the sha256 of the whole snapshot, in hex. */
  sha256?: string;
}

/** Where chunks go out: a link to one peer. */
export interface ChunkLink {
  /** Unsent bytes on the open connection. */
  readonly bufferedAmount: number;
  readonly open: boolean;
  /** Sends a chunk frame now; false when it could not (not connected, too much unsent). */
  sendNow(chunk: SnapshotChunk, msgs?: Message[]): boolean;
}

/**
 * Streams one snapshot to one peer; `cancel` stops it (a newer transfer replaces it, the link
 * closed). `done(false)` when it broke off, so Raft may try again; the copy is read through a
 * descriptor opened at once, so the file itself may be removed meanwhile.
 */
export class SnapshotSender {
  private cancelled = false;
  private readonly fd: number | undefined;

  constructor(
    private readonly link: ChunkLink,
    private readonly snap: Snapshot,
    /** The `snap` message, with the snapshot's metadata: it travels on the last chunk. */
    private readonly message: Message,
    private readonly transfer: number,
    private readonly done: (ok: boolean, why?: string) => void,
  ) {
    this.fd = Buffer.isBuffer(snap.data) ? undefined : openSync(snap.data.file, 'r');
    void this.run();
  }

  cancel(): void {
    this.cancelled = true;
  }

  get running(): boolean {
    return !this.cancelled;
  }

  private async run(): Promise<void> {
    let why: string | undefined;
    try {
      why = await this.stream();
    } catch (err) {
      why = (err as Error).message;
    } finally {
      if (this.fd !== undefined) closeSync(this.fd);
    }
    const finished = !this.cancelled;
    this.cancelled = true;
    if (finished) this.done(why === undefined, why);
  }

  /** Sends every chunk; why it stopped short, or undefined once the last is sent. */
  private async stream(): Promise<string | undefined> {
    const data = this.snap.data;
    const size = Buffer.isBuffer(data) ? data.length : data.size;
    const hash = createHash('sha256');
    let offset = 0;
    for (;;) {
      const drained = await this.drained();
      if (drained) return drained;
      const length = Math.min(CHUNK_BYTES, size - offset);
      const bytes = Buffer.isBuffer(data)
        ? data.subarray(offset, offset + length)
        : await readAt(this.fd!, offset, length);
      if (this.cancelled) return 'cancelled';
      if (bytes.length !== length) return `the snapshot copy is shorter than ${size} bytes`;
      hash.update(bytes);
      const last = offset + length === size;
      const chunk: SnapshotChunk = { transfer: this.transfer, offset, size, data: bytes };
      const sent = last
        ? this.link.sendNow({ ...chunk, sha256: hash.digest('hex') }, [this.message])
        : this.link.sendNow(chunk);
      if (!sent) return 'the link to the peer dropped a chunk';
      if (last) return undefined;
      offset += length;
    }
  }

  /** Waits until the socket has room for another chunk; why not, if it never does. */
  private async drained(): Promise<string | undefined> {
    const since = Date.now();
    while (this.link.bufferedAmount > HIGH_WATER_BYTES) {
      if (this.cancelled) return 'cancelled';
      if (!this.link.open) return 'the link to the peer closed';
      if (Date.now() - since > STALL_MS) return `the peer took nothing for ${STALL_MS / 1000}s`;
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
    if (this.cancelled) return 'cancelled';
    if (!this.link.open) return 'the link to the peer closed';
    return undefined;
  }
}

function readAt(fd: number, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  return new Promise((resolve, reject) =>
    read(fd, buffer, 0, length, position, (err, n) => (err ? reject(err) : resolve(buffer.subarray(0, n)))),
  );
}

interface Incoming {
  transfer: number;
  size: number;
  path: string;
  fd: number;
  written: number;
  hash: Hash;
}

/**
 * Assembles the snapshots peers stream to this master, one transfer per peer at a time, each
 * in its own file (`fileFor`): a chunk that does not follow on from the last one received
 * abandons its transfer (its file is removed; the leader sends again). A complete transfer
 * is synced and checked against its sha256 before Raft sees it.
 */
export class SnapshotReceiver {
  private readonly incoming = new Map<NodeId, Incoming>();

  constructor(
    private readonly fileFor: (from: NodeId, transfer: number) => string,
    private readonly log: Logger,
  ) {}

  /** Takes one chunk; what to hand Raft once a transfer is complete and verified. */
  take(from: NodeId, chunk: SnapshotChunk, msgs: readonly Message[] | undefined): Inbound | undefined {
    let cur = this.incoming.get(from);
    if (chunk.offset === 0) {
      if (cur) this.abandon(from, 'a new transfer replaced it');
      cur = this.begin(from, chunk);
      if (!cur) return undefined;
    } else if (!cur || cur.transfer !== chunk.transfer || cur.written !== chunk.offset || cur.size !== chunk.size) {
      // A chunk of a transfer we gave up on or never saw begin (a link dropped in between).
      if (cur?.transfer === chunk.transfer) this.abandon(from, `chunk at ${chunk.offset} after ${cur.written} bytes`);
      return undefined;
    }
    try {
      writeSync(cur.fd, chunk.data);
    } catch (err) {
      this.abandon(from, `could not write it: ${(err as Error).message}`);
      return undefined;
    }
    cur.hash.update(chunk.data);
    cur.written += chunk.data.length;
    if (chunk.sha256 === undefined) return undefined;
    this.incoming.delete(from);
    try {
      fsyncSync(cur.fd);
    } catch (err) {
      this.remove(cur);
      this.log.warn(
        { peer: from, err: (err as Error).message },
        'could not sync a received snapshot; the leader will send it again',
      );
      return undefined;
    }
    closeSync(cur.fd);
    const sha256 = cur.hash.digest('hex');
    const snap = msgs?.find((m) => m.type === 'snap');
    if (sha256 !== chunk.sha256 || cur.written !== cur.size || !snap) {
      rmSync(cur.path, { force: true });
      this.log.warn(
        { peer: from, bytes: cur.written, size: cur.size, sha256, expected: chunk.sha256 },
        'a received snapshot does not match its checksum; dropped, the leader will send it again',
      );
      return undefined;
    }
    return { msgs, snapshot: { meta: snap.snapshot, data: { file: cur.path, size: cur.size } } };
  }

  private begin(from: NodeId, chunk: SnapshotChunk): Incoming | undefined {
    const path = this.fileFor(from, chunk.transfer);
    try {
      const fd = openSync(path, 'w');
      const cur = { transfer: chunk.transfer, size: chunk.size, path, fd, written: 0, hash: createHash('sha256') };
      this.incoming.set(from, cur);
      return cur;
    } catch (err) {
      this.log.warn({ peer: from, err: (err as Error).message }, 'cannot receive a snapshot');
      return undefined;
    }
  }

  /** Drops `from`'s transfer in progress, if any, and its file. */
  abandon(from: NodeId, why: string): void {
    const cur = this.incoming.get(from);
    if (!cur) return;
    this.incoming.delete(from);
    this.remove(cur);
    this.log.info({ peer: from, bytes: cur.written, size: cur.size, why }, 'abandoned a snapshot transfer');
  }

  private remove(cur: Incoming): void {
    try {
      closeSync(cur.fd);
    } catch {
      // closed already
    }
    rmSync(cur.path, { force: true });
  }

  close(): void {
    for (const from of [...this.incoming.keys()]) this.abandon(from, 'shutting down');
  }
}
