// The no_space alarm's rule (DESIGN §7 "Data lifecycle and capacity"), apart from any disk:
// when it is on, which routes it refuses, and how a full disk met by a write is answered.
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { toHttpError } from '../../src/common/http-errors.js';
import { createLogger } from '../../src/common/logger.js';
import { MASTER_ACCESS } from '../../src/master/access-table.js';
import { RESERVE_BYTES } from '../../src/master/disk-reserve.js';
import { GIVEN_BACK_BYTES, parseBytes, spaceAlarm, type SpaceLimits } from '../../src/master/space-alarm.js';
import { ADDS_DATA, spaceGate } from '../../src/master/space-gate.js';
import { SpaceMonitor } from '../../src/master/space-monitor.js';

const MiB = 1024 * 1024;
const limits: SpaceLimits = { minFreeBytes: 64 * MiB, maxDbBytes: 100 * MiB };

describe('the no_space alarm', () => {
  it('is off with room on the disk and data under the cap', () => {
    expect(spaceAlarm({ freeBytes: 64 * MiB, dbBytes: 100 * MiB, slackBytes: 0 }, limits)).toBeUndefined();
  });

  it('is on under --min-free-bytes, naming both figures', () => {
    expect(spaceAlarm({ freeBytes: 64 * MiB - 1, dbBytes: 0, slackBytes: 0 }, limits)).toMatch(
      /64 MiB free, under --min-free-bytes 64 MiB/,
    );
  });

  it('is on over --max-db-bytes, whatever the disk has free', () => {
    expect(spaceAlarm({ freeBytes: 1e12, dbBytes: 100 * MiB + 1, slackBytes: 0 }, limits)).toMatch(
      /over --max-db-bytes 100 MiB/,
    );
  });

  it('stays on after a write failed for a full disk, even with --min-free-bytes 0, until 1 MiB more room is there', () => {
    const none = { minFreeBytes: 0, maxDbBytes: limits.maxDbBytes };
    const fullSince = { roomBytes: 3000 };
    const at = (freeBytes: number, slackBytes = 0) =>
      spaceAlarm({ freeBytes, dbBytes: 0, slackBytes, fullSince }, none);
    expect(at(3000)).toMatch(/is full \(a write failed/);
    expect(at(3000 + GIVEN_BACK_BYTES - 1)).toBeDefined();
    expect(at(3000 + GIVEN_BACK_BYTES)).toBeUndefined();
  });

  it('goes off only 5% (at most 64 MiB) on the right side of a limit once on, so that it does not flap', () => {
    const r = { dbBytes: 0, slackBytes: 0 };
    expect(spaceAlarm({ ...r, freeBytes: 66 * MiB }, limits, true)).toMatch(/the alarm goes off at 67\.2 MiB free/);
    expect(spaceAlarm({ ...r, freeBytes: 67.2 * MiB }, limits, true)).toBeUndefined();
    expect(spaceAlarm({ ...r, freeBytes: 66 * MiB }, limits, false)).toBeUndefined();
    const capped = { ...r, freeBytes: 1e12, dbBytes: 96 * MiB };
    expect(spaceAlarm(capped, limits, true)).toMatch(/the alarm goes off under 95 MiB/);
    expect(spaceAlarm({ ...capped, dbBytes: 95 * MiB }, limits, true)).toBeUndefined();
    const huge = { minFreeBytes: 10 * 1024 * MiB, maxDbBytes: 8 * 1024 * MiB };
    expect(spaceAlarm({ ...r, freeBytes: 10 * 1024 * MiB + 64 * MiB }, huge, true)).toBeUndefined();
  });

  it('counts the pages deletes freed inside the databases as room given back', () => {
    const fullSince = { roomBytes: 3000 };
    const r = { freeBytes: 3000, dbBytes: 0, slackBytes: GIVEN_BACK_BYTES, fullSince };
    expect(spaceAlarm(r, { minFreeBytes: 0, maxDbBytes: limits.maxDbBytes })).toBeUndefined();
  });
});

describe('byte counts on the command line', () => {
  it.each([
    ['67108864', 67108864],
    ['64M', 64 * MiB],
    ['64MiB', 64 * MiB],
    ['8G', 8 * 1024 * MiB],
    ['8gb', 8 * 1024 * MiB],
    ['512k', 512 * 1024],
    ['0', 0],
  ])('reads %s as %d bytes', (text, bytes) => expect(parseBytes(text, '--max-db-bytes')).toBe(bytes));

  it.each(['', '-1', 'lots', '64 X', '1e9'])('refuses %j, naming the flag', (text) => {
    expect(() => parseBytes(text, '--min-free-bytes')).toThrow(/--min-free-bytes takes a byte count/);
  });
});

describe('the routes the alarm refuses', () => {
  it('are routes of the access table, and only writes', () => {
    for (const key of ADDS_DATA) {
      expect(MASTER_ACCESS[key], key).toBeDefined();
      expect(key.startsWith('GET ')).toBe(false);
    }
  });

  it('leave out reads, cancels, heartbeats, the worker channel, membership and the Raft stream', () => {
    for (const key of [
      'GET /api/jobs/:job_id',
      'GET /api/jobs/:job_id/results',
      'POST /api/jobs/:job_id/cancel',
      'POST /api/workers/heartbeat',
      'GET /api/workers/:worker_id/channel',
      'POST /api/cluster/members',
      'GET /raft/stream',
    ]) {
      expect(ADDS_DATA.has(key), key).toBe(false);
    }
  });

  it('answer 507 no_space before the body is used, and let the rest through', async () => {
    let why: string | undefined = 'the disk is full';
    const app = Fastify();
    app.addHook(
      'onRequest',
      spaceGate(() => why),
    );
    let stored = 0;
    app.post('/api/jobs', async () => ++stored);
    app.get('/api/jobs/:job_id', async () => 'read');
    const big = 'x'.repeat(256 * 1024);
    const refused = await app.inject({ method: 'POST', url: '/api/jobs', payload: { big } });
    expect(refused.statusCode).toBe(507);
    expect(refused.json()).toMatchObject({
      error: { code: 'no_space', message: expect.stringMatching(/the disk is full; writes that add data are refused/) },
    });
    expect(stored).toBe(0);
    expect((await app.inject({ method: 'GET', url: '/api/jobs/j1' })).statusCode).toBe(200);
    why = undefined;
    expect((await app.inject({ method: 'POST', url: '/api/jobs', payload: { big } })).statusCode).toBe(200);
    expect(stored).toBe(1);
    await app.close();
  });
});

describe('a write the disk refused for want of space', () => {
  it.each(['SQLITE_FULL', 'ENOSPC', 'EDQUOT'])('is 507 no_space at the edge (%s), not a 500', (code) => {
    const err = Object.assign(new Error('database or disk is full'), { code });
    expect(toHttpError(err, 'master')).toMatchObject({ code: 'no_space', status: 507 });
    const wrapped = Object.assign(new Error('the Raft log could not be written'), { cause: err });
    expect(toHttpError(wrapped, 'master')).toMatchObject({ code: 'no_space', status: 507 });
  });

  it('is told from a failing disk, which stays internal', () => {
    const err = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    expect(toHttpError(err, 'master')).toMatchObject({ code: 'internal' });
  });
});

describe('the space monitor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-space-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const log = createLogger('test');
  log.level = 'silent';

  it('alarms and compacts when the data is over the cap, and clears once deletes bring it under', async () => {
    let used = 200 * MiB;
    let compactions = 0;
    const m = new SpaceMonitor(
      {
        dataDir: dir,
        dbPageBytes: () => ({ usedBytes: used, freeBytes: 0 }),
        diskFullFailures: () => 0,
        compact: () => compactions++,
      },
      limits,
      log,
    );
    await m.check();
    expect(m.alarms()).toEqual(['no_space']);
    expect(m.reason).toMatch(/over --max-db-bytes/);
    expect(compactions).toBe(1);
    await m.check();
    expect(compactions).toBe(1); // again only after 10 s
    used = 10 * MiB;
    await m.check();
    expect(m.alarms()).toEqual([]);
    expect(m.dbBytes).toBe(10 * MiB);
    expect(m.freeBytes).toBeGreaterThan(0);
  });

  it('alarms at once on a full-disk failure the driver met, gives its reserve up, and clears once room comes back', async () => {
    let failures = 0;
    let slack = 0;
    // A disk of this test's own, but for the reserve's file: on the real one, what other files
    // of a CI run write meanwhile can take more than the 2 MiB this test gives back.
    const reserve = join(dir, 'RESERVE');
    const m = new SpaceMonitor(
      {
        dataDir: dir,
        dbPageBytes: () => ({ usedBytes: 0, freeBytes: slack }),
        diskFullFailures: () => failures,
        compact: () => undefined,
        diskFreeBytes: () => 10 * 1024 * MiB - (existsSync(reserve) ? statSync(reserve).size : 0),
      },
      { minFreeBytes: 0, maxDbBytes: limits.maxDbBytes },
      log,
    );
    await m.check();
    expect(m.alarms()).toEqual([]);
    expect(existsSync(join(dir, 'RESERVE'))).toBe(true);
    failures = 1;
    // Before the next look: the requests right after the failure are refused too.
    expect(m.reason).toMatch(/disk is full/);
    await m.check();
    expect(m.alarms()).toEqual(['no_space']);
    expect(existsSync(join(dir, 'RESERVE'))).toBe(false);
    slack = 2 * MiB; // deletes freed pages inside the databases
    await m.check();
    expect(m.alarms()).toEqual([]);
    expect(existsSync(join(dir, 'RESERVE'))).toBe(true);
  });

  /** A monitor over `dir` whose disk has `disk.free` bytes free, plus what a RESERVE file there would free. */
  function onDisk(dataDir: string, disk: { free: number; failures: number }) {
    return new SpaceMonitor(
      {
        dataDir,
        dbPageBytes: () => ({ usedBytes: 0, freeBytes: 0 }),
        diskFullFailures: () => disk.failures,
        compact: () => undefined,
        diskFreeBytes: () => disk.free + (existsSync(join(dataDir, 'RESERVE')) ? 0 : RESERVE_BYTES),
      },
      { minFreeBytes: 0, maxDbBytes: limits.maxDbBytes },
      log,
    );
  }

  it('alarms on the first full-disk failure after a restart that found its reserve on the disk', async () => {
    const restarted = join(dir, 'restarted');
    mkdirSync(restarted);
    writeFileSync(join(restarted, 'RESERVE'), Buffer.alloc(RESERVE_BYTES));
    const disk = { free: 100, failures: 0 };
    const m = onDisk(restarted, disk);
    await m.check();
    m.diskFull();
    disk.failures = 1;
    // Giving the reserve up frees its bytes on the disk: not room given back, since they counted already.
    await m.check();
    expect(existsSync(join(restarted, 'RESERVE'))).toBe(false);
    expect(m.alarms()).toEqual(['no_space']);
  });

  it('counts room freed between the failure and the next look as given back', async () => {
    const disk = { free: 100, failures: 0 };
    const m = onDisk(mkdtempSync(join(dir, 'freed-')), disk);
    await m.check();
    m.diskFull();
    disk.failures = 1;
    disk.free += 2 * MiB; // an operator's rm, before the monitor looks again
    await m.check();
    expect(m.alarms()).toEqual([]);
  });

  it('stays on after a failure though the last look before it saw less room (a copy that grew, failed and was removed)', async () => {
    const disk = { free: 10 * MiB, failures: 0 };
    const m = onDisk(mkdtempSync(join(dir, 'copy-')), disk);
    await m.check(); // mid-copy: 10 MiB left
    disk.free = 50 * MiB; // the copy failed at the disk's end, and its file was removed
    m.diskFull();
    disk.failures = 1;
    await m.check();
    expect(m.alarms()).toEqual(['no_space']);
    disk.free += 2 * MiB;
    await m.check();
    expect(m.alarms()).toEqual([]);
  });

  it("alarms all the same when the disk cannot be measured as the write fails: this look's room stands in", async () => {
    const disk = { free: 10 * MiB, failures: 0 };
    let statfsFails = false;
    const m = new SpaceMonitor(
      {
        dataDir: mkdtempSync(join(dir, 'unmeasured-')),
        dbPageBytes: () => {
          if (statfsFails) throw new Error('database is locked');
          return { usedBytes: 0, freeBytes: 0 };
        },
        diskFullFailures: () => disk.failures,
        compact: () => undefined,
        diskFreeBytes: () => {
          if (statfsFails) throw new Error('EIO');
          return disk.free;
        },
      },
      { minFreeBytes: 0, maxDbBytes: limits.maxDbBytes },
      log,
    );
    await m.check();
    statfsFails = true;
    expect(() => m.diskFull()).not.toThrow();
    disk.failures = 1;
    statfsFails = false;
    await m.check();
    expect(m.alarms()).toEqual(['no_space']);
  });
});
