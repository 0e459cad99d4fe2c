// Snapshots between real masters (addresses 127.0.0.231–239 belong to this file): a cluster
// of three compacting its log every few entries; a follower whose state.db is deleted or
// overwritten with garbage starts anyway and fetches its state from the leader; a follower
// SIGKILLed in the middle of receiving a state of tens of MB recovers; a new master joins a
// cluster whose state is many chunks; the sending master's memory stays bounded.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  clusterStatus,
  freePorts,
  http,
  submitRetrying,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  type MasterProc,
  bigJob,
} from '../helpers/cluster.js';
import { MastersOnDisk } from '../helpers/masters-on-disk.js';

const c = new Cluster('snapshots');
afterAll(() => c.cleanup());

const hosts = ['127.0.0.231', '127.0.0.232', '127.0.0.233'];
const ids = [231, 232, 233];
/** The log is compacted every 20 applied entries (keeping 4): a restarted follower soon needs a snapshot. */
const FLAGS = ['--snapshot-entries', '20'];
const set = new MastersOnDisk(c, hosts, ids, FLAGS);
const masters = set.procs;
const urls = () => set.urls();
const startMaster = (id: number, wait = true): Promise<MasterProc> => set.start(id, { wait });

/** Small jobs: each a few log entries, enough to push the leader's compaction point on. */
async function smallJobs(n: number, tag: string): Promise<string[]> {
  const leader = await untilAgreedLeader(urls());
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await submitRetrying(leader.leaderUrl, { name: `${tag}-${i}`, type: 'batch', config: { operation: 'noop' } }),
    );
  }
  return out;
}

const rssKb = (pid: number) =>
  Number(
    execFileSync('ps', ['-o', 'rss=', '-p', String(pid)])
      .toString()
      .trim(),
  );
const tempFiles = (m: MasterProc) => readdirSync(m.dataDir).filter((n) => /\.(receiving|outgoing|incoming)/.test(n));

/** Every master applied the same index, and the follower's compacted log is past where it stood. */
async function caughtUp(): Promise<number> {
  const leader = await untilAgreedLeader(urls(), { timeoutMs: 30_000 });
  const commit = (await clusterStatus(leader.leaderUrl)).commit_index as number;
  return untilConverged(urls(), commit, 60_000);
}

beforeAll(async () => {
  await set.init();
  await Promise.all(ids.map((id) => startMaster(id, false)));
  await Promise.all([...masters.values()].map((m) => c.untilReady(m).catch(() => undefined)));
  // The highest id leads once healthy: 231 and 232 are followers in what follows.
  await untilAgreedLeader(urls(), { leaderId: 233, timeoutMs: 30_000 });
  await smallJobs(30, 'warm-up');
  await caughtUp();
}, 120_000);

describe('a follower whose state.db is lost after the log was compacted', () => {
  it('starts anyway with an empty state, fetches a snapshot from the leader and catches up', async () => {
    const f = masters.get(231)!;
    await c.stop(f, 'SIGKILL');
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(f.dataDir, `state.db${suffix}`), { force: true });
    await smallJobs(30, 'while-down');
    const restarted = await startMaster(231, false);
    const applied = await caughtUp();
    expect(applied).toBeGreaterThan(60);
    await c.waitForLog(restarted, /the state database is behind the compacted log/);
    await c.waitForLog(restarted, /installed a snapshot from the leader/);
    // It answers for jobs it never applied itself.
    const jobs = (await http('GET', `${restarted.url}/api/jobs?limit=1000`)).json;
    expect(JSON.stringify(jobs)).toContain('while-down-29');
  });
});

describe('a follower whose state.db is overwritten with garbage', () => {
  it('moves the file aside (not deleting it), fetches a snapshot and catches up', async () => {
    const f = masters.get(232)!;
    await c.stop(f, 'SIGKILL');
    writeFileSync(join(f.dataDir, 'state.db'), Buffer.alloc(64 * 1024, 'garbage! '));
    rmSync(join(f.dataDir, 'state.db-wal'), { force: true });
    await smallJobs(30, 'after-garbage');
    const restarted = await startMaster(232, false);
    await caughtUp();
    const aside = readdirSync(f.dataDir).filter((n) => n.startsWith('state.db.corrupt-') && !/-(wal|shm)$/.test(n));
    expect(aside).toHaveLength(1);
    expect(statSync(join(f.dataDir, aside[0]!)).size).toBe(64 * 1024);
    await c.waitForLog(restarted, /state\.db could not be read: moved it aside/);
    await c.waitForLog(restarted, /installed a snapshot from the leader/);
  });
});

describe('a state of tens of MB', () => {
  let leaderRssBefore = 0;

  beforeAll(async () => {
    const leader = await untilAgreedLeader(urls());
    for (let i = 0; i < 24; i++) await submitRetrying(leader.leaderUrl, bigJob(`big-${i}`, 1024 * 1024), 30_000);
    await caughtUp();
    const lm = [...masters.values()].find((m) => m.url === leader.leaderUrl)!;
    leaderRssBefore = rssKb(lm.pid);
  }, 180_000);

  it('a follower SIGKILLed while it receives the snapshot recovers once restarted', async () => {
    const f = masters.get(231)!;
    await c.stop(f, 'SIGKILL');
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(f.dataDir, `state.db${suffix}`), { force: true });
    await smallJobs(25, 'before-the-big-install');
    const receiving = await startMaster(231, false);
    // The moment the temp file of the transfer appears, with some of it written: kill -9.
    await waitFor(
      'the follower to be receiving a snapshot',
      () => tempFiles(receiving).some((n) => n.includes('receiving') && statSync(join(f.dataDir, n)).size > 0),
      60_000,
      5,
    );
    await c.stop(receiving, 'SIGKILL');
    expect(tempFiles(receiving).length).toBeGreaterThan(0);
    const restarted = await startMaster(231, false);
    await caughtUp();
    await c.waitForLog(restarted, /installed a snapshot from the leader/);
    // The half transfer was removed at boot; the completed one renamed into place.
    await waitFor('no snapshot temp files on the follower', () => tempFiles(restarted).length === 0, 10_000);
    expect(existsSync(join(f.dataDir, 'state.db'))).toBe(true);
  });

  it('a new master joins a cluster whose state is many chunks, and the sender stays within bounds', async () => {
    const port = (await freePorts(['127.0.0.234']))[0]!;
    const all = [...urls(), `http://127.0.0.234:${port}`];
    const fourth = await c.master('127.0.0.234', {
      port,
      args: ['--peers', `${set.peers},http://127.0.0.234:${port}`, ...FLAGS],
      wait: false,
    });
    const leader = await untilAgreedLeader(urls());
    const target = (await clusterStatus(leader.leaderUrl)).commit_index as number;
    await waitFor(
      'master 234 to catch up',
      async () => ((await clusterStatus(fourth.url))?.last_applied ?? 0) >= target,
      90_000,
    );
    await untilConverged(all, target, 60_000);
    const lm = [...masters.values()].find((m) => m.url === leader.leaderUrl)!;
    const sent = c.log(lm).match(/"bytes":(\d+)[^\n]*sending a snapshot to a follower/g) ?? [];
    const bytes = Math.max(...sent.map((l) => Number(/"bytes":(\d+)/.exec(l)![1])));
    const rssAfter = rssKb(lm.pid);
    console.log(
      `snapshot of ${(bytes / 2 ** 20).toFixed(1)} MiB; the sending master's RSS ${(leaderRssBefore / 1024).toFixed(0)} MiB before, ${(rssAfter / 1024).toFixed(0)} MiB after`,
    );
    expect(bytes).toBeGreaterThan(10 * 1024 * 1024); // many 1 MiB chunks
    await c.waitForLog(fourth, /installed a snapshot from the leader/);
    // Generous: the whole snapshot held in memory several times over would exceed it.
    expect(rssAfter - leaderRssBefore).toBeLessThan(512 * 1024);
  });
});
