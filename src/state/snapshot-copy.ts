// A copy of the state for a snapshot or a backup, made off the event loop. `VACUUM INTO` of a
// state of a million tasks takes seconds; made on the leader's event loop it starves
// heartbeats and the followers elect another leader (the scale benchmark's new master joining
// showed it, and so did a backup of 1.2 GB: 1.2–1.6 s of stall each). A worker thread with a
// read-only connection of its own copies instead. SQLite's WAL gives that
// connection one consistent state, at a batch boundary, while the leader goes on applying;
// which index that is, the copy itself says (last_applied is written with each batch), so the
// snapshot's meta is read from the copy, never assumed.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SnapshotMeta } from '../consensus/core/types.js';

/** Runs in the thread; CommonJS, as `eval` workers are. */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
try {
  const src = new Database(workerData.path, { readonly: true, fileMustExist: true });
  try { src.prepare('VACUUM INTO ?').run(workerData.file); } finally { src.close(); }
  const mark = workerData.applicationId;
  const copy = new Database(workerData.file, { readonly: mark === undefined, fileMustExist: true });
  try {
    // A backup: one file (no WAL beside it), marked as a backup.
    if (mark !== undefined) {
      copy.pragma('journal_mode = DELETE');
      copy.pragma('application_id = ' + mark);
    }
    const meta = (key) => copy.prepare('SELECT value FROM meta WHERE key = ?').get(key).value;
    const members = copy.prepare('SELECT id, address, voter FROM members ORDER BY id').all()
      .map((m) => ({ id: m.id, address: m.address, voter: m.voter === 1 }));
    parentPort.postMessage({ meta: { index: meta('last_applied'), term: meta('last_applied_term'), members } });
  } finally { copy.close(); }
} catch (err) {
  parentPort.postMessage({ error: { message: String(err && err.message), code: err && err.code } });
}
`;

const SQLITE = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * Copies the database at `path` into `file` in a worker thread; resolves with what the copy
 * holds. With `applicationId`, the copy is a single file marked with it (a backup).
 */
export function copyInBackground(path: string, file: string, applicationId?: number): Promise<SnapshotMeta> {
  return new Promise((resolve, reject) => {
    const thread = new Worker(THREAD, { eval: true, workerData: { path, file, sqlite: SQLITE, applicationId } });
    let settled = false;
    thread.once('message', (m: { meta?: SnapshotMeta; error?: { message: string; code?: string } }) => {
      settled = true;
      if (m.meta) resolve(m.meta);
      else reject(Object.assign(new Error(m.error?.message ?? 'the copy failed'), { code: m.error?.code }));
    });
    thread.once('error', (err) => {
      if (!settled) reject(err);
      settled = true;
    });
    thread.once('exit', (code) => {
      if (!settled) reject(new Error(`the thread copying the state ended with code ${code}`));
      settled = true;
    });
  });
}
