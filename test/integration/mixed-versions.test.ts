// Masters of two versions in one cluster, as during a rolling upgrade (addresses 127.0.0.154–156
// belong to this file). The newer Weir is this build copied aside with one migration more: a
// state database it writes has a schema version this build cannot read. A master of this build
// that falls behind a newer leader's compacted log cannot install the leader's snapshot: it
// stays up with the state it has, both sides say why, and once upgraded it catches up.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersion } from '../../src/state/schema.js';
import {
  Cluster,
  clusterStatus,
  GiveUp,
  submitRetrying,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  type MasterProc,
} from '../helpers/cluster.js';
import { MastersOnDisk } from '../helpers/masters-on-disk.js';
import { buildCopy } from '../helpers/build-copy.js';

const c = new Cluster('mixed-versions');
afterAll(() => c.cleanup());

const OLD = 154;
const hosts = ['127.0.0.154', '127.0.0.155', '127.0.0.156'];
const ids = [154, 155, 156];
/** The log is compacted every 20 applied entries: a follower down for 30 jobs needs a snapshot. */
const FLAGS = ['--snapshot-entries', '20'];
const set = new MastersOnDisk(c, hosts, ids, FLAGS);
const masters = set.procs;
let newerBin: string;
let uncheckingBin: string;

/**
 * This build, copied aside, with one migration more: the next version of Weir. `checksPeers`
 * false: a next version that sends its snapshot to any follower (the follower must refuse it).
 */
function newerWeir(name: string, checksPeers = true): string {
  return buildCopy(join(c.tmp, name), [
    {
      file: 'src/state/schema.js',
      at: 'export const schemaVersion',
      change: (at) => `MIGRATIONS.push('CREATE TABLE from_a_newer_weir (x INTEGER) STRICT');\n${at}`,
    },
    ...(checksPeers
      ? []
      : [
          {
            file: 'src/consensus/peer-transport.js',
            at: 'cannotInstall(to) {',
            change: (at: string) => `${at} return;`,
          },
        ]),
  ]);
}

const startMaster = (id: number, bin?: string) => set.start(id, { wait: false, ...(bin ? { bin } : {}) });
const running = () => set.running();

/** Reads a running master's database (a reader does not disturb it). */
function readDb<T>(m: MasterProc, file: string, read: (db: Database.Database) => T): T {
  const db = new Database(join(m.dataDir, file), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

const stateVersion = (m: MasterProc) =>
  readDb(m, 'state.db', (db) => db.pragma('user_version', { simple: true }) as number);
/** Where `m` compacted its log to: entries up to there are only in snapshots now. */
const compactedTo = (m: MasterProc) =>
  readDb(m, 'raft.db', (db) => {
    const row = db.prepare(`SELECT value FROM raft_state WHERE key = 'snapshot'`).pluck().get() as string | undefined;
    return row ? (JSON.parse(row) as { index: number }).index : 0;
  });

async function smallJobs(n: number, tag: string): Promise<void> {
  const leader = await untilAgreedLeader(
    running().map((m) => m.url),
    { timeoutMs: 30_000 },
  );
  for (let i = 0; i < n; i++) {
    await submitRetrying(leader.leaderUrl, { name: `${tag}-${i}`, type: 'batch', config: { operation: 'noop' } });
  }
}

beforeAll(async () => {
  newerBin = newerWeir('newer-weir');
  uncheckingBin = newerWeir('newer-weir-unchecking', false);
  await set.init();
  // The highest id leads once healthy: a newer master, with this build's master following.
  await Promise.all(ids.map((id) => startMaster(id, id === OLD ? undefined : newerBin)));
  await Promise.all([...masters.values()].map((m) => c.untilReady(m).catch(() => undefined)));
  await untilAgreedLeader(
    running().map((m) => m.url),
    { leaderId: 156, timeoutMs: 30_000 },
  );
  // Enough for every master to compact its own log.
  const old = masters.get(OLD)!;
  let round = 0;
  await waitFor(
    'the older master to compact its log',
    async () => {
      await smallJobs(10, `together-${round++}`);
      return compactedTo(old) > 0 || undefined;
    },
    60_000,
  );
}, 120_000);

describe("a master that must fetch a newer leader's snapshot", () => {
  it('is not sent one it cannot install: it stays up with the state it has, and both sides say why', async () => {
    const old = masters.get(OLD)!;
    const leader = masters.get(156)!;
    // Its own log compacted and its state lost, it can only start over from the leader's.
    await c.stop(old, 'SIGKILL');
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(old.dataDir, `state.db${suffix}`), { force: true });
    const restarted = await startMaster(OLD);
    await waitFor(
      'the leader to say the follower runs an older Weir',
      () => {
        if (restarted.exitCode !== undefined) throw new GiveUp(`the older master exited with ${restarted.exitCode}`);
        return /runs an older Weir/.test(c.log(leader)) || undefined;
      },
      30_000,
    );
    expect(c.log(leader)).toMatch(new RegExp(`master ${OLD} runs an older Weir`));
    await c.waitForLog(restarted, /the state database is behind the compacted log/);
    // Still up and answering, with a state of its own version, behind the others.
    const status = await clusterStatus(restarted.url);
    expect(status.leader_id).toBe(156);
    expect(restarted.exitCode).toBeUndefined();
    expect(stateVersion(restarted)).toBe(schemaVersion());
    const leaderStatus = await clusterStatus(leader.url);
    expect(status.last_applied).toBeLessThan(leaderStatus.last_applied);
    // The cluster goes on meanwhile (two of three).
    await smallJobs(3, 'meanwhile');
  });

  it('refuses it if a leader sends it all the same, and keeps the state it has', async () => {
    // The newer masters again, of a version that sends snapshots to any follower.
    for (const id of [155, 156]) {
      await c.stop(masters.get(id)!, 'SIGTERM');
      await startMaster(id, uncheckingBin);
    }
    const restarted = masters.get(OLD)!;
    await waitFor(
      'the older master to refuse the snapshot',
      () => {
        if (restarted.exitCode !== undefined) throw new GiveUp(`the older master exited with ${restarted.exitCode}`);
        return /newer than this Weir reads/.test(c.log(restarted)) || undefined;
      },
      30_000,
    );
    expect(c.log(restarted)).toContain(
      `schema version ${schemaVersion() + 1}, newer than this Weir reads (${schemaVersion()})`,
    );
    expect(c.log(restarted)).not.toMatch(/installed a snapshot/);
    expect(stateVersion(restarted)).toBe(schemaVersion());
    expect([155, 156]).toContain((await clusterStatus(restarted.url)).leader_id);
    await smallJobs(3, 'still');
  });

  it('once upgraded, it installs the snapshot and catches up', async () => {
    const old = masters.get(OLD)!;
    await c.stop(old, 'SIGTERM');
    const upgraded = await startMaster(OLD, newerBin);
    const leader = await untilAgreedLeader(
      running().map((m) => m.url),
      { timeoutMs: 30_000 },
    );
    const commit = (await clusterStatus(leader.leaderUrl)).commit_index as number;
    await untilConverged(
      running().map((m) => m.url),
      commit,
      60_000,
    );
    await c.waitForLog(upgraded, /installed a snapshot from the leader/);
    expect(stateVersion(upgraded)).toBe(schemaVersion() + 1);
  });
});
