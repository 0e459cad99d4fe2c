// A full disk, for real (DESIGN §7 "Data lifecycle and capacity"): the test mounts a small
// tmpfs of its own, runs a master with its data dir there, and fills the disk as another
// program would — then with the master's own writes until SQLite itself hits SQLITE_FULL.
// The master refuses writes that add data with 507 no_space, keeps serving everything else,
// never exits, comes up again on the full disk, and takes writes again by itself once space
// is back. Needs root (to mount); skipped with the reason otherwise. Addresses 127.0.0.211–219.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  GiveUp,
  cliSync,
  freePorts,
  http,
  untilAgreedLeader,
  waitFor,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { fill as fillAt, freeBytes as freeBytesAt, mountTmpfs, unmount } from '../helpers/tmpfs.js';

const MiB = 1024 * 1024;
const MOUNT_MIB = 64;

const mount = mountTmpfs(MOUNT_MIB, 'space');
if ('why' in mount) process.stderr.write(`[space.test] skipped: ${mount.why}\n`);
const mnt = 'dir' in mount ? mount.dir : '';

/** What the disk has free now, as an unprivileged writer sees it. */
const freeBytes = () => freeBytesAt(mnt);
/** Another program filling the disk, until only `leave` bytes are free (or none). */
const fill = (name: string, leave: number) => fillAt(mnt, name, leave);

/** A submit whose config is about 1 MiB: a few of them fill what is left of the disk. */
const BIG = {
  name: 'big',
  type: 'batch',
  config: { operation: 'multiply', factor: 2, task_count: 1, data: Array.from({ length: 150_000 }, (_, i) => i) },
};

const c = new Cluster('space');
afterAll(async () => {
  await c.cleanup();
  if (mnt) unmount(mnt);
});

const alarms = async (m: MasterProc) => (await http('GET', `${m.url}/cluster/status`)).json?.alarms as string[];
const metric = async (m: MasterProc, name: string) => {
  const text = (await http('GET', `${m.url}/metrics`)).text;
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

function expectNoSpace(r: { status: number; json: unknown; text: string }): void {
  expect(r.status, r.text).toBe(507);
  expect(r.json).toMatchObject({
    error: { code: 'no_space', message: expect.stringMatching(/refused until space is back/) },
  });
}

describe.skipIf(!mnt)(`a master whose disk another program fills (tmpfs of ${MOUNT_MIB} MiB)`, () => {
  let m: MasterProc;
  let w: WorkerProc;
  let filler = '';

  beforeAll(async () => {
    const dataDir = join(mnt, 'filled');
    m = await c.master('127.0.0.211', { dataDir, args: ['--min-free-bytes', '24M'] });
    w = await c.worker('127.0.0.212', m, { maxTasks: 2 });
  });

  it('takes writes while there is room, and shows no alarm', async () => {
    expect((await http('POST', `${m.url}/api/jobs`, BIG)).status).toBe(201);
    expect(await alarms(m)).toEqual([]);
    expect(await metric(m, 'weir_alarm{alarm="no_space"}')).toBe(0);
    expect(await metric(m, 'weir_disk_free_bytes')).toBeGreaterThan(24 * MiB);
    // Measured once a second: the submit shows at the next look.
    await waitFor('the submit in weir_db_bytes', async () => ((await metric(m, 'weir_db_bytes')) ?? 0) > MiB, 10_000);
  });

  it('refuses an upload that would take the room above --min-free-bytes, before storing any of it, with no alarm', async () => {
    const before = readdirSync(join(m.dataDir, 'uploads'));
    // Past the room by 8 MiB, whatever the master's last look (once a second) saw.
    const body = Buffer.alloc(freeBytes() - 24 * MiB + 8 * MiB, 'x');
    const r = await http('POST', `${m.url}/api/uploads`, body, { 'content-type': 'application/octet-stream' }, 30_000);
    expectNoSpace(r);
    expect(r.json.error.message).toMatch(/would leave less than --min-free-bytes free on this master's disk/);
    expect(readdirSync(join(m.dataDir, 'uploads'))).toEqual(before);
    expect(await alarms(m)).toEqual([]);
    // One within the room is taken.
    const small = await http('POST', `${m.url}/api/uploads`, Buffer.alloc(MiB, 'y'), {
      'content-type': 'application/octet-stream',
    });
    expect(small.status, small.text).toBe(201);
  });

  let running = '';
  it('raises no_space once under --min-free-bytes, in /cluster/status, /metrics and weir cluster', async () => {
    // A job that runs across the alarm: its task reports are the cluster's own work.
    const r = await http('POST', `${m.url}/api/jobs`, {
      name: 'across',
      type: 'batch',
      config: { operation: 'sleep', ms: 1500, task_count: 2 },
    });
    expect(r.status).toBe(201);
    running = r.json.job_id;
    filler = fill('filler', 16 * MiB);
    await waitFor('the no_space alarm', async () => (await alarms(m))?.includes('no_space'), 10_000);
    expect(await metric(m, 'weir_alarm{alarm="no_space"}')).toBe(1);
    expect(await metric(m, 'weir_disk_free_bytes')).toBeLessThan(24 * MiB);
    const cli = await c.cli(['--master', m.url, 'cluster']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/ALARM: no_space/);
  });

  it('refuses submits, uploads, registrations and events with 507 no_space', async () => {
    expectNoSpace(await http('POST', `${m.url}/api/jobs`, BIG));
    const before = readdirSync(join(m.dataDir, 'uploads'));
    const body = Buffer.alloc(2 * MiB, 'x');
    expectNoSpace(
      await http('POST', `${m.url}/api/uploads`, body, { 'content-type': 'application/octet-stream' }, 30_000),
    );
    expect(readdirSync(join(m.dataDir, 'uploads'))).toEqual(before);
    expectNoSpace(await http('POST', `${m.url}/api/workers/register`, { address: '127.0.0.213:1', max_tasks: 1 }));
    expectNoSpace(await http('POST', `${m.url}/api/jobs/job-x/events`, [{ line: 'a' }]));
    const cli = await c.cli(['--master', m.url, 'submit', 'batch', 'refused']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/no_space|disk/);
  });

  it('goes on with reads, task reports and cancels; the master stays up', async () => {
    expect((await http('GET', `${m.url}/api/jobs`)).status).toBe(200);
    expect((await http('GET', `${m.url}/api/workers`)).status).toBe(200);
    const done = await waitFor(
      'the job that ran across the alarm to complete',
      async () => {
        const j = (await http('GET', `${m.url}/api/jobs/${running}`)).json;
        return j?.status === 'completed' && j;
      },
      30_000,
    );
    expect(done.progress.completed).toBe(2);
    expect((await http('GET', `${m.url}/api/jobs/${running}/results`)).status).toBe(200);
    const sleeper = await http('GET', `${m.url}/api/jobs?limit=1`);
    expect(sleeper.status).toBe(200);
    const first = sleeper.json.jobs[0].job_id;
    expect((await http('POST', `${m.url}/api/jobs/${first}/cancel`)).status).toBeLessThan(500);
    expect((await http('GET', `${m.url}/health`)).json).toMatchObject({ status: 'ok' });
    expect(m.exitCode).toBeUndefined();
    expect(w.exitCode).toBeUndefined();
  });

  it('takes writes again by itself once the other program’s file is gone', async () => {
    rmSync(filler);
    await waitFor(
      'a submit to be taken again',
      async () => (await http('POST', `${m.url}/api/jobs`, { name: 'again', type: 'batch' })).status === 201,
      10_000,
      200,
    );
    expect(await alarms(m)).toEqual([]);
  });

  afterAll(async () => {
    await Promise.all([m, w].filter(Boolean).map((p) => c.stop(p, 'SIGKILL')));
    rmSync(join(mnt, 'filled'), { recursive: true, force: true });
    if (filler) rmSync(filler, { force: true });
  });
});

describe.skipIf(!mnt)('a master whose own writes fill the disk until SQLite hits SQLITE_FULL', () => {
  let m: MasterProc;
  const dataDir = join(mnt ?? '', 'sqlite-full');
  const fillers: string[] = [];

  beforeAll(async () => {
    mkdirSync(dataDir, { recursive: true });
    // --min-free-bytes 0: no alarm can pre-empt the failed write.
    m = await c.master('127.0.0.214', { dataDir, args: ['--min-free-bytes', '0'] });
  });

  it('answers 507 (never a 500, never silence) and does not exit; reads and cancels still work', async () => {
    fillers.push(fill('filler-a', 6 * MiB));
    const seen = new Set<number>();
    await waitFor(
      'a submit refused with 507',
      async () => {
        const r = await http('POST', `${m.url}/api/jobs`, BIG);
        seen.add(r.status);
        if (r.status !== 201 && r.status !== 507) throw new GiveUp(`a submit got ${r.status}: ${r.text}`);
        return r.status === 507;
      },
      60_000,
      0,
    );
    expect([...seen].sort()).toEqual([201, 507]);
    await waitFor('the no_space alarm', async () => (await alarms(m))?.includes('no_space'), 10_000);
    // The master gave its disk reserve up for its own writes: it leads, reads and cancels.
    const jobs = await waitFor(
      'a linearizable read',
      async () => {
        const r = await http('GET', `${m.url}/api/jobs?limit=1`);
        return r.status === 200 && r.json.jobs;
      },
      15_000,
    );
    const cancel = await http('POST', `${m.url}/api/jobs/${jobs[0].job_id}/cancel`);
    expect(cancel.status, cancel.text).toBe(200);
    // The alarm's compaction and checkpoint may have given a MiB back by now, and then writes
    // resume by themselves: either answer is right, a 500 never is.
    const after = await http('POST', `${m.url}/api/jobs`, BIG);
    expect([201, 507], after.text).toContain(after.status);
    if (after.status === 507) expectNoSpace(after);
    // A backup the disk has no room for is no_space, not "try again" (a CLI retried that for 30 s).
    const backup = await http('GET', `${m.url}/api/cluster/backup`);
    expect([200, 507], backup.text.slice(0, 300)).toContain(backup.status);
    if (backup.status === 507) expectNoSpace(backup);
    expect(m.exitCode).toBeUndefined();
    expect((await http('GET', `${m.url}/health`)).json).toMatchObject({ status: 'ok' });
  });

  it('restarted on a disk with not a byte free, comes up, serves reads and alarms — no crash loop', async () => {
    await c.stop(m, 'SIGKILL');
    fillers.push(fill('filler-b', 0));
    expect(freeBytes()).toBeLessThan(64 * 1024);
    m = await c.master('127.0.0.214', { dataDir, port: m.port, args: ['--min-free-bytes', '0'], wait: false });
    // Small writes may still fit where SQLite reuses its WAL (checkpointed before the kill, it
    // starts over in the space the file already has); a write needing more is refused, and
    // that raises the alarm. So: submit until one is refused, never a crash on the way.
    let accepted = 0;
    const refused = await waitFor(
      'a submit refused with no_space',
      async () => {
        if (m.exitCode !== undefined) throw new GiveUp(`the master exited with ${m.exitCode}:\n${c.tail(m)}`);
        const r = await http('POST', `${m.url}/api/jobs`, BIG).catch(() => undefined);
        if (r?.status === 201 && ++accepted > 40)
          throw new GiveUp('40 submits of 150,000 numbers taken on a full disk');
        return r?.status === 507 ? r : undefined;
      },
      30_000,
    );
    expectNoSpace(refused);
    await waitFor('the alarm', async () => (await alarms(m))?.includes('no_space'), 10_000);
    expect((await http('GET', `${m.url}/health`)).json).toMatchObject({ status: 'ok' });
    // The master's own copy is read.
    const stale = await http('GET', `${m.url}/api/jobs?limit=5&consistency=stale`);
    expect(stale.status, stale.text).toBe(200);
    expect(stale.json.jobs.length).toBeGreaterThan(0);
    expect(m.exitCode).toBeUndefined();
  });

  it('stopped cleanly and restarted with not a byte free and its reserve spent, waits for space without exiting', async () => {
    await c.stop(m, 'SIGTERM');
    fillers.push(fill('filler-c', 0));
    m = await c.master('127.0.0.214', { dataDir, port: m.port, args: ['--min-free-bytes', '0'], wait: false });
    // SQLite may not even open its files now (a WAL database needs room for its shared
    // memory): the master then waits for space; if it can open them, it serves and alarms.
    const how = await waitFor(
      'the restarted master to wait for space, or to alarm',
      async () => {
        if (m.exitCode !== undefined) throw new GiveUp(`the master exited with ${m.exitCode}:\n${c.tail(m)}`);
        if (/too full to start; waiting for space/.test(c.log(m))) return 'waits';
        return (await alarms(m))?.includes('no_space') && 'alarms';
      },
      20_000,
    );
    expect(['waits', 'alarms']).toContain(how);
    expect(m.exitCode).toBeUndefined();
  });

  it('takes writes again by itself once the disk has room', async () => {
    for (const f of fillers.splice(0)) rmSync(f);
    await waitFor(
      'a submit to be taken again',
      async () => {
        if (m.exitCode !== undefined) throw new GiveUp(`the master exited with ${m.exitCode}:\n${c.tail(m)}`);
        return (await http('POST', `${m.url}/api/jobs`, { name: 'again', type: 'batch' })).status === 201;
      },
      20_000,
      200,
    );
    expect(await alarms(m)).toEqual([]);
    expect(existsSync(join(dataDir, 'RESERVE'))).toBe(true);
  });

  afterAll(async () => {
    if (m) await c.stop(m, 'SIGKILL');
    for (const f of fillers) rmSync(f, { force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe.skipIf(!mnt)('a master over --max-db-bytes', () => {
  let m: MasterProc;
  const dataDir = join(mnt ?? '', 'capped');

  beforeAll(async () => {
    m = await c.master('127.0.0.215', { dataDir, args: ['--max-db-bytes', '6M', '--min-free-bytes', '1M'] });
  });

  it('refuses submits with 507 once its state and log pass the cap, whatever the disk has free', async () => {
    let taken = 0;
    const refused = await waitFor(
      'a submit refused with 507',
      async () => {
        const r = await http('POST', `${m.url}/api/jobs`, BIG);
        if (r.status !== 201 && r.status !== 507) throw new GiveUp(`a submit got ${r.status}: ${r.text}`);
        if (r.status === 201) taken++;
        return r.status === 507 ? r : undefined;
      },
      60_000,
      0,
    );
    expectNoSpace(refused);
    expect(refused.json.error.message).toMatch(/over --max-db-bytes 6 MiB/);
    expect(taken).toBeGreaterThan(0);
    expect(freeBytes()).toBeGreaterThan(24 * MiB);
    expect((await http('GET', `${m.url}/api/jobs`)).status).toBe(200);
  });

  afterAll(async () => {
    if (m) await c.stop(m, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe.skipIf(!mnt)('three masters, one of them with its data dir on the disk that fills', () => {
  // Ids follow the addresses: 218 leads (the highest), 216 is the follower on the small disk.
  const hosts = ['127.0.0.216', '127.0.0.217', '127.0.0.218'];
  const masters: MasterProc[] = [];
  let filler = '';
  const dataDir = join(mnt ?? '', 'follower');

  beforeAll(async () => {
    const ports = await freePorts(hosts);
    const peers = hosts.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    const started = await Promise.all(
      hosts.map((host, i) =>
        c.master(host, {
          port: ports[i]!,
          args: ['--peers', peers, '--min-free-bytes', i === 0 ? '24M' : '1M'],
          ...(i === 0 ? { dataDir } : {}),
          wait: false,
        }),
      ),
    );
    masters.push(...started);
    await untilAgreedLeader(
      masters.map((m) => m.url),
      { leaderId: 218, procs: masters },
    );
  });

  it('stops writes that add data on every master while that follower alarms, and takes them again after', async () => {
    const [small, other, leader] = masters as [MasterProc, MasterProc, MasterProc];
    expect((await http('POST', `${leader.url}/api/jobs`, { name: 'before', type: 'batch' })).status).toBe(201);
    filler = fill('filler-follower', 16 * MiB);
    await waitFor(
      'the follower’s alarm to reach the leader',
      async () => (await alarms(leader))?.includes('no_space'),
      10_000,
    );
    expect(await alarms(small)).toEqual(['no_space']);
    // A follower whose own disk is fine shows none: the leader is the one that refuses.
    expect(await alarms(other)).toEqual([]);
    const atLeader = await http('POST', `${leader.url}/api/jobs`, BIG);
    expectNoSpace(atLeader);
    expect(atLeader.json.error.message).toContain(small.url);
    expectNoSpace(await http('POST', `${other.url}/api/jobs`, BIG)); // forwarded to the leader
    expectNoSpace(await http('POST', `${small.url}/api/jobs`, BIG)); // refused before forwarding
    for (const m of masters) expect((await http('GET', `${m.url}/api/jobs`)).status).toBe(200);
    rmSync(filler);
    await waitFor(
      'a submit to be taken again',
      async () => (await http('POST', `${other.url}/api/jobs`, { name: 'again', type: 'batch' })).status === 201,
      10_000,
      200,
    );
    for (const m of masters) expect(m.exitCode).toBeUndefined();
  });

  afterAll(async () => {
    await Promise.all(masters.map((m) => c.stop(m, 'SIGKILL')));
    if (filler) rmSync(filler, { force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe('the capacity flags of weir master', () => {
  it.each([
    ['--min-free-bytes', 'lots', /--min-free-bytes takes a byte count/],
    ['--max-db-bytes', '-5', /--max-db-bytes takes a byte count/],
    ['--snapshot-entries', '0', /--snapshot-entries must be a positive integer/],
  ])('refuse %s %s at start, naming the flag', (flag, value, why) => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-space-flags-'));
    try {
      const r = cliSync(['master', '--host', '127.0.0.219', '--port', '1', '--data-dir', dir, flag, value], {
        timeoutMs: 20_000,
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(why);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--snapshot-entries N compacts the log once N applied entries sit in it', async () => {
    const m = await c.master('127.0.0.219', { args: ['--snapshot-entries', '40'] });
    for (let i = 0; i < 60; i++) {
      expect((await http('POST', `${m.url}/api/jobs`, { name: `n${i}`, type: 'batch' })).status).toBe(201);
    }
    const firstIndex = () => {
      const log = new Database(join(m.dataDir, 'raft.db'), { readonly: true });
      try {
        return (log.prepare('SELECT min(idx) AS i FROM log').get() as { i: number }).i;
      } finally {
        log.close();
      }
    };
    // Compacted at least once, keeping the newest fifth (8) for followers slightly behind — as
    // far as state.db holds durably, which its background sync reaches some 50 ms after the apply.
    await waitFor('the log compacted past its first 30 entries', () => firstIndex() > 30, 10_000, 50);
    await c.stop(m, 'SIGTERM');
    expect(firstIndex()).toBeGreaterThan(30);
  });
});
