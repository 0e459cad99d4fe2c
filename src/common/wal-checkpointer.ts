// A SQLite database's WAL checkpoints, made off the event loop. SQLite's automatic checkpoint
// runs inside the commit that crosses its threshold (1000 pages): it copies those pages into the
// database and fsyncs twice, on the master's event loop. A one-task job writes about 14 pages
// of the state database and 2 of raft.db, so every ~70th job paid for a whole checkpoint (the
// latency bench's p99). Here a worker thread with a connection of its own checkpoints shortly
// after writes instead (PASSIVE: it never waits for, nor blocks, the writer), so the WAL rarely
// reaches the threshold, which stays as the backstop should the thread fall behind. What is
// durable does not change: a commit is in the WAL (fsynced as the connection says) before it
// returns, and a checkpoint fsyncs the WAL before copying and the database after.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Runs in the thread; CommonJS, as `eval` workers are. */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const lock = new Int32Array(workerData.lock);
parentPort.on('message', () => {
  // The main thread holds the lock while it closes or replaces the file: then nothing is done.
  if (Atomics.compareExchange(lock, 0, 0, 1) !== 0) return parentPort.postMessage({ skipped: true });
  let db;
  try {
    // A connection per checkpoint: none stays open on a file the main thread may replace.
    db = new Database(workerData.path, { fileMustExist: true });
    db.pragma('synchronous = FULL');
    // The writer starts the WAL over only if every frame was copied when its next transaction
    // begins: frames committed during a pass are copied by another (few, so it is quick).
    let r;
    for (let pass = 0; pass < 4; pass++) {
      [r] = db.pragma('wal_checkpoint(PASSIVE)');
      if (r.log === r.checkpointed) break;
    }
    parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message) });
  } finally {
    try { if (db) db.close(); } catch {}
    Atomics.store(lock, 0, 0);
    Atomics.notify(lock, 0);
  }
});
`;

const SQLITE = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * How long after a write the thread checkpoints: short, so each checkpoint copies few pages
 * (its fsync competes with the Raft log's for the disk), long enough that a busy master
 * checkpoints a few times a second, not per batch.
 */
const DELAY_MS = 50;

/** SQLite's automatic checkpoint, left as a backstop only: 4096 pages of 4 KiB. */
export const WAL_BACKSTOP_PAGES = 4096;

export class WalCheckpointer {
  private readonly lock = new Int32Array(new SharedArrayBuffer(4));
  private thread: Worker | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  private closed = false;
  private stopped = false;
  /** The last error the thread met (it retries at the next write; the backstop covers). */
  lastError: string | undefined;

  constructor(private readonly path: string) {}

  /** The database was written: a checkpoint follows shortly. */
  written(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, DELAY_MS);
    this.timer.unref();
  }

  private run(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.start().postMessage('checkpoint');
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    const thread = new Worker(THREAD, {
      eval: true,
      workerData: { path: this.path, sqlite: SQLITE, lock: this.lock.buffer },
    });
    thread.unref();
    thread.on('message', (m: { error?: string }) => {
      this.running = false;
      if (m.error) this.lastError = m.error;
      if (this.again) {
        this.again = false;
        this.written();
      }
    });
    // A thread that died leaves the checkpoints to SQLite's own, on the loop, as before.
    thread.on('error', (err) => {
      this.lastError = err.message;
      this.closed = true;
    });
    this.thread = thread;
    return thread;
  }

  /**
   * Runs `fn` with no checkpoint of the thread under way, nor starting: for closing or
   * replacing the database file (a connection of the thread's must never outlive it).
   */
  exclusive<T>(fn: () => T): T {
    while (Atomics.compareExchange(this.lock, 0, 0, 1) !== 0) Atomics.wait(this.lock, 0, 1, 20);
    try {
      return fn();
    } finally {
      Atomics.store(this.lock, 0, 0);
    }
  }

  /**
   * Stops the thread; `closeDb` runs first, while no checkpoint can be under way. The lock is
   * kept: a request still queued in the thread finds it held and does nothing.
   */
  close(closeDb: () => void): void {
    if (this.stopped) return closeDb();
    this.stopped = true;
    while (Atomics.compareExchange(this.lock, 0, 0, 1) !== 0) Atomics.wait(this.lock, 0, 1, 20);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    closeDb();
    void this.thread?.terminate();
  }
}
