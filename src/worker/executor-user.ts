// `weir worker --executor-user USER`: executors run as another user than their worker (root),
// so that user code that escapes Node's permission model still meets the kernel's: it cannot
// signal its worker nor read the worker's data dir or TLS key. This module finds the user,
// checks that the set-up can work, and gives the executor what it needs and nothing more.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Whom executors run as. */
export interface ExecutorUser {
  name: string;
  uid: number;
  gid: number;
}

/** Read, write and search bits, as in a mode's `rwx`. */
export const R = 4;
export const W = 2;
export const X = 1;

/** The user's uid and gid from the system's user database, or a message saying what is wrong. */
export function lookUpUser(name: string, workerUid: number | undefined): ExecutorUser {
  if (workerUid !== 0) {
    throw new Error(
      `--executor-user needs a worker running as root, to start executors as ${name}; this one runs as uid ${workerUid ?? 'unknown'} (run it as root, or leave the flag out)`,
    );
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(name)) {
    throw new Error(`--executor-user takes a user name; got '${name}'`);
  }
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    throw new Error(
      `--executor-user: there is no user '${name}' on this system; create one (useradd --system --no-create-home ${name})`,
    );
  }
  const [, , uid, gid] = entry.trim().split(':');
  const user = { name, uid: Number(uid), gid: Number(gid) };
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid)) {
    throw new Error(`--executor-user: the system's entry for '${name}' has no uid and gid`);
  }
  if (user.uid === 0 || user.gid === 0) {
    throw new Error(`--executor-user: '${name}' has uid or gid 0, which is root's; name an unprivileged user`);
  }
  return user;
}

/** A file's owner and mode, as stat gives them. */
export interface Owned {
  uid: number;
  gid: number;
  mode: number;
}

/** Whether `user` (no supplementary groups: executors run with none) has `want` bits on a file. */
export function permits(f: Owned, user: ExecutorUser, want: number): boolean {
  const bits = f.uid === user.uid ? (f.mode >> 6) & 7 : f.gid === user.gid ? (f.mode >> 3) & 7 : f.mode & 7;
  return (bits & want) === want;
}

/** The first directory above `path` that `user` cannot pass through, if any. */
export function blockedAbove(
  path: string,
  user: ExecutorUser,
  stat: (p: string) => Owned = statSync,
): string | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if (!permits(stat(dir), user, X)) return dir;
    if (dir === dirname(dir)) return undefined;
  }
}

/**
 * Makes the worker's data dir its own again (0700 and nothing in it for others) but for the
 * shuffle directory, which executors write map outputs into: the data dir becomes 0711 (passable,
 * not listable) and the shuffle directory the executor user's. Refuses, naming what to change,
 * a set-up in which executors could not reach their code or the shuffle directory.
 */
export function prepareForExecutorUser(user: ExecutorUser, dataDir: string, shuffleDir: string, code: string[]): void {
  for (const path of code) {
    const blocked = blockedAbove(path, user, statSync);
    const unreadable = blocked === undefined && !permits(statSync(path), user, R);
    if (blocked !== undefined || unreadable) {
      throw new Error(
        `--executor-user ${user.name}: it cannot read Weir's code at ${path} (${blocked ?? path} is closed to it); install Weir where other users can read it`,
      );
    }
  }
  chmodSync(dataDir, 0o711);
  const blocked = blockedAbove(dataDir, user);
  if (blocked !== undefined) {
    throw new Error(
      `--executor-user ${user.name}: it cannot reach the data dir's shuffle directory (${blocked} is closed to it); choose a --data-dir under directories others may pass through`,
    );
  }
  chmodSync(join(dataDir, 'LOCK'), 0o600);
  chownSync(shuffleDir, user.uid, user.gid);
  chmodSync(shuffleDir, 0o700);
}

/** A TLS key that the executor user could read is refused: user code must never hold it. */
export function checkKeyClosed(keyFile: string, user: ExecutorUser): void {
  if (permits(statSync(keyFile), user, R)) {
    throw new Error(
      `--executor-user ${user.name}: it could read the TLS key ${keyFile}; make the key readable by its owner alone (chmod 600)`,
    );
  }
}
