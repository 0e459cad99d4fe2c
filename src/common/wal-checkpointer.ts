// A SQLite database's WAL checkpoints, made off the event loop. SQLite's automatic checkpoint
// runs inside the commit that crosses its threshold (1000 pages): it copies those pages into the
// database and fsyncs twice, on the master's event loop. A one-task job writes about 14 pages
// of the state database and 2 of raft.db, so every ~70th job paid for a whole checkpoint (the
// latency bench's p99). Here a worker thread with a connection of its own checkpoints shortly
// after writes instead (PASSIVE: it never waits for, nor blocks, the writer), so the WAL rarely
// reaches the threshold, which stays as the backstop should the thread fall behind. What is
// durable does not change: a commit is in the WAL (fsynced as the connection says) before it
// returns, and a checkpoint fsyncs the WAL before copying and the database after.
//
// The thread also makes commits durable for a caller whose connection does not sync each one
// (the state database, `synchronous = NORMAL`): `written(mark)` names what the commits so far
// hold (the applied index), and once the thread has fsynced the WAL after that call, `durable`
// is that mark — what compaction needs, without a checkpoint on the event loop.
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The shared slots: the lock, held by whoever checkpoints (the thread, or the main thread in `exclusive`)… */
const LOCK = 0;
/** …the number of the last release the thread answered… */
const RELEASED = 1;
/** …whether the thread may hold the database open, and its descriptor of the WAL plus one (0: none). */
const HOLDS = 2;
const WAL_FD = 3;

/** Runs in the thread; CommonJS, as `eval` workers are. */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const Database = require(workerData.sqlite);
const shared = new Int32Array(workerData.lock);
// Kept open from one checkpoint to the next: a master whose descriptors a flood of connections
// took must still make its commits durable (else compaction stops), and opening is what fails.
// What it holds is told in the shared slots (HOLDS, WAL_FD), which change only under the lock.
let db;
let wal;
function release() {
  // The slot is cleared before the descriptor is closed: should the thread die in between,
  // the main thread closes nothing (a number closed here may be the process's next file).
  Atomics.store(shared, ${WAL_FD}, 0);
  try { if (wal !== undefined) fs.closeSync(wal); } catch {}
  try { if (db) db.close(); } catch {}
  db = undefined;
  wal = undefined;
  Atomics.store(shared, ${HOLDS}, 0);
}
parentPort.on('message', (request) => {
  if (request.release !== undefined) {
    // The main thread holds the lock and waits on this answer: it is about to replace or close
    // the file, which must outlive no connection of ours (the last to close deletes the WAL).
    // The answer is the request's own number: a late answer to another is not this one.
    release();
    Atomics.store(shared, ${RELEASED}, request.release);
    Atomics.notify(shared, ${RELEASED});
    return;
  }
  // The main thread holds the lock while it checkpoints itself, or replaces or closes the file.
  if (Atomics.compareExchange(shared, ${LOCK}, 0, 1) !== 0) return parentPort.postMessage({ skipped: true });
  try {
    if (!db) {
      Atomics.store(shared, ${HOLDS}, 1);
      db = new Database(workerData.path, { fileMustExist: true });
      db.pragma('synchronous = FULL');
    }
    // The WAL is the same file for as long as a connection is open on the database (ours is):
    // SQLite starts it over in place. It appears with the first write after a checkpoint of
    // the last connection: none yet, nothing to sync.
    if (wal === undefined) {
      try {
        wal = fs.openSync(workerData.path + '-wal', 'r');
        Atomics.store(shared, ${WAL_FD}, wal + 1);
      } catch (err) {
        if (err.code !== 'ENOENT') throw err;
      }
    }
    // Every commit made before the request was written to the WAL (or, checkpointed and the
    // WAL started over, to the database, fsynced by that checkpoint): once the WAL is fsynced
    // too, all of them are on disk.
    if (wal !== undefined) fs.fsyncSync(wal);
    // The writer starts the WAL over only if every frame was copied when its next transaction
    // begins: frames committed during a pass are copied by another (few, so it is quick).
    let r;
    for (let pass = 0; pass < 4; pass++) {
      [r] = db.pragma('wal_checkpoint(PASSIVE)');
      if (r.log === r.checkpointed) break;
    }
    parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed, mark: request.mark, epoch: request.epoch });
  } catch (err) {
    // Opened again at the next pass.
    release();
    parentPort.postMessage({ error: String(err && err.message) });
  } finally {
    Atomics.store(shared, ${LOCK}, 0);
    Atomics.notify(shared, ${LOCK});
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

/** How long `replacing` and `close` wait for the thread to close its files (it takes well under 1 ms). */
const RELEASE_WAIT_MS = 10_000;

/** A thread that died is started again after this long, doubled at each death in a row up to the most. */
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 60_000;

/** SQLite's automatic checkpoint, left as a backstop only: 4096 pages of 4 KiB. */
export const WAL_BACKSTOP_PAGES = 4096;

/** The thread did not close its files in time: the file must not be replaced now. */
export class ReleaseTimeout extends Error {}

export class WalCheckpointer {
  /** See LOCK, RELEASED, HOLDS and WAL_FD. */
  private readonly shared = new Int32Array(new SharedArrayBuffer(16));
  private thread: Worker | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  private closed = false;
  /** The number of the last release asked of the thread. */
  private releases = 0;
  /** Why the thread's last pass failed, or why it is not running; cleared by a pass that works. */
  private failed: string | undefined;
  /** When (performance.now()) a thread that died may be started again, and the wait after the next death. */
  private restartAt = 0;
  private restartMs = RESTART_MIN_MS;
  /** The mark of the latest `written` call, and of the latest the thread made durable. */
  private mark = 0;
  private durableMark = 0;
  /** Bumped by `durableAt`: a pass that began before speaks of a file no longer there. */
  private epoch = 0;

  /** `onFailure` hears when the thread starts failing (why) and when it works again (undefined). */
  constructor(
    private readonly path: string,
    private readonly onFailure?: (failure: string | undefined) => void,
  ) {}

  /**
   * Why the thread is not checkpointing (its last pass failed, or it died and waits to be
   * started again), or undefined: while it is not, `durable` does not move on its own, and a
   * caller that counts on it makes its commits durable itself.
   */
  get failure(): string | undefined {
    return this.failed;
  }

  /**
   * The database was written: a checkpoint follows shortly. `mark` (non-decreasing) says what
   * the commits so far hold; `durable` reaches it once they are on disk.
   */
  written(mark?: number): void {
    if (mark !== undefined) this.mark = Math.max(this.mark, mark);
    if (this.closed || this.timer) return;
    // The first pass at once: the thread opens its files while the process has descriptors.
    // A thread that died is started again once its wait is over.
    const wait = this.thread ? DELAY_MS : this.restartAt - performance.now();
    if (wait <= 0) return this.run();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, wait);
    this.timer.unref();
  }

  private run(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (!this.thread && performance.now() < this.restartAt) return this.written();
    const thread = this.start();
    if (!thread) return this.written();
    this.running = true;
    thread.postMessage({ mark: this.mark, epoch: this.epoch });
  }

  /** The highest mark whose commits the thread has made durable (see `written`). */
  get durable(): number {
    return this.durableMark;
  }

  /**
   * What the file holds now is durable up to `mark`, by other means (it was checkpointed, or
   * replaced by a synced file): passes begun before speak of the file as it was, and are ignored.
   */
  durableAt(mark: number): void {
    this.epoch++;
    this.mark = mark;
    this.durableMark = mark;
  }

  private fail(failure: string | undefined): void {
    const was = this.failed;
    this.failed = failure;
    if ((was === undefined) === (failure === undefined)) return;
    try {
      this.onFailure?.(failure);
    } catch {
      // A report that fails changes nothing here: written() is called from applies.
    }
  }

  /**
   * The thread is gone (it died, or could not start): another is started after a wait. What a
   * dead thread held is let go here: the lock (a thread ended mid-pass runs no `finally`), and
   * its descriptor of the WAL (the process's; its connection went with it).
   */
  private died(why: string): void {
    this.thread = undefined;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const fd = Atomics.load(this.shared, WAL_FD) - 1;
    if (fd >= 0) {
      try {
        closeSync(fd);
      } catch {
        // Closed already.
      }
    }
    Atomics.store(this.shared, WAL_FD, 0);
    Atomics.store(this.shared, HOLDS, 0);
    Atomics.store(this.shared, LOCK, 0);
    this.fail(why);
    this.restartAt = performance.now() + this.restartMs;
    this.restartMs = Math.min(2 * this.restartMs, RESTART_MAX_MS);
  }

  private start(): Worker | undefined {
    if (this.thread) return this.thread;
    let thread: Worker;
    try {
      thread = new Worker(THREAD, {
        eval: true,
        workerData: { path: this.path, sqlite: SQLITE, lock: this.shared.buffer },
      });
    } catch (err) {
      this.died(`the checkpoint thread could not start: ${(err as Error).message}`);
      return undefined;
    }
    thread.unref();
    thread.on('message', (m: { error?: string; mark?: number; epoch?: number }) => {
      if (this.thread !== thread) return;
      this.running = false;
      if (m.error) this.fail(`a checkpoint failed: ${m.error}`);
      else if (m.mark !== undefined) {
        this.fail(undefined);
        this.restartMs = RESTART_MIN_MS;
        if (m.epoch === this.epoch) this.durableMark = Math.max(this.durableMark, m.mark);
      }
      if (this.again) {
        this.again = false;
        this.written();
      }
    });
    // Its death (an error, a thread that could not start for want of descriptors) is followed
    // by its exit; it is started again then, after a wait. Meanwhile SQLite's own checkpoint
    // is the backstop, and the caller makes its commits durable itself (see `failure`).
    let error = '';
    thread.on('error', (err) => (error = err.message));
    thread.on('exit', (code) => {
      if (this.thread !== thread || this.closed) return;
      this.died(`the checkpoint thread stopped (${error || `exit code ${code}`})`);
      this.again = false;
      this.written();
    });
    this.thread = thread;
    return thread;
  }

  /** Takes the lock, waiting for a pass of the thread's to end. */
  private lock(): void {
    while (Atomics.compareExchange(this.shared, LOCK, 0, 1) !== 0) Atomics.wait(this.shared, LOCK, 1, 20);
  }

  /** Runs `fn` with no checkpoint of the thread under way, nor starting: for one of the main thread's. */
  exclusive<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      Atomics.store(this.shared, LOCK, 0);
    }
  }

  /**
   * Runs `fn` with the thread holding nothing open on the database: for replacing the file. A
   * connection of the thread's must never outlive it — closed later, on the old file, it would
   * be that file's last and delete the WAL by name: the new file's. Throws ReleaseTimeout, and
   * runs nothing, if the thread does not let go in time.
   */
  replacing<T>(fn: () => T): T {
    return this.exclusive(() => {
      if (!this.release()) {
        throw new ReleaseTimeout(`the checkpoint thread did not close the database in ${RELEASE_WAIT_MS} ms`);
      }
      return fn();
    });
  }

  /**
   * Has the thread close its connection and WAL descriptor, and waits for it; the lock held, so
   * it is between passes and what it holds (HOLDS) does not change meanwhile. A thread that
   * holds nothing — starting, dead, or released already — is not asked. Whether it let go.
   */
  private release(): boolean {
    const thread = this.thread;
    if (!thread || Atomics.load(this.shared, HOLDS) === 0) return true;
    const ask = ++this.releases;
    thread.postMessage({ release: ask });
    const until = performance.now() + RELEASE_WAIT_MS;
    while (Atomics.load(this.shared, RELEASED) !== ask && performance.now() < until) {
      Atomics.wait(this.shared, RELEASED, Atomics.load(this.shared, RELEASED), 20);
    }
    return Atomics.load(this.shared, RELEASED) === ask;
  }

  /**
   * Stops the thread; `closeDb` runs first, while no checkpoint can be under way. The lock is
   * kept: a request still queued in the thread finds it held and does nothing.
   */
  close(closeDb: () => void): void {
    if (this.closed) return closeDb();
    this.lock();
    // Ours closed last, the database is checkpointed and its WAL removed. A thread that does
    // not let go keeps it (the WAL stays, and is read at the next start).
    this.release();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    closeDb();
    void this.thread?.terminate();
  }
}
