// Backup and restore (addresses 127.0.0.224–228 belong to this file): `weir backup FILE` copies
// a running cluster's state; `weir master --restore FILE` founds a new cluster from it, on other
// addresses, which serves what the backup held, runs new work, and takes new masters.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  cliSync,
  freePorts,
  http,
  submitJob,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
} from '../helpers/cluster.js';
import { cliToken } from '../helpers/tokens.js';

const SECRET = 'backup-test-secret-0123456789abcdef0123';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('backup');
let old: MasterProc;
let restored: MasterProc;
let file: string;
let clientToken: string;
let adminToken: string;
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const token = (role: string) => cliToken(env, role);
const submit = (m: MasterProc, name: string, config: Json) =>
  submitJob(m.url, { name, type: 'batch', config }, as(clientToken));

/** /cluster/status, which on a cluster with a secret needs a token too. */
const clusterStatus = async (url: string): Promise<Json> =>
  (await http('GET', `${url}/cluster/status`, undefined, as(clientToken), 2000)).json;

let completed: string;
let running: string;

beforeAll(async () => {
  clientToken = token('client');
  adminToken = token('admin');
  file = join(c.tmp, 'cluster.backup');
  old = await c.master('127.0.0.224', { env });
  await c.worker('127.0.0.225', old, { env, token: clientToken, maxTasks: 2 });
  completed = await submit(old, 'tripled', { operation: 'multiply', factor: 3, task_count: 4 });
  await untilJobStatus(old.url, completed, 'completed', 30_000, as(clientToken));
}, 90_000);
afterAll(() => c.cleanup());

describe('weir backup', () => {
  it('is for admins: a client or worker token gets 403 forbidden', async () => {
    for (const role of ['client', 'worker']) {
      const r = await http('GET', `${old.url}/api/cluster/backup`, undefined, as(token(role)));
      expect(r.status, r.text).toBe(403);
      expect(r.json.error.code).toBe('forbidden');
    }
    expect((await http('GET', `${old.url}/api/cluster/backup`)).status).toBe(401);
  });

  it('writes a consistent copy of the state, with the log position it is at, while a job runs', async () => {
    running = await submit(old, 'running-at-backup', { operation: 'sleep', ms: 3000, task_count: 1 });
    await waitFor('the sleep job to run', async () => {
      const r = await http('GET', `${old.url}/api/jobs/${running}`, undefined, as(clientToken));
      return r.json?.progress?.running === 1;
    });
    const r = c.cli(['--master', old.url, 'backup', file], { env });
    const out = await r;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^backed up the cluster's state as of entry \d+ \(term \d+, \d+ bytes\) to /);
    const direct = await http('GET', `${old.url}/api/cluster/backup`, undefined, as(adminToken));
    expect(direct.status).toBe(200);
    expect(Number(direct.headers.get('x-weir-applied-index'))).toBeGreaterThan(0);
    expect(direct.headers.get('content-type')).toBe('application/vnd.sqlite3');
  }, 60_000);
});

describe('weir backup, when its own side fails', () => {
  const backupsMade = () =>
    readFileSync(old.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('backup made')).length;

  it('exits at once naming the file it could not write, and the master made one copy, not one per retry', async () => {
    const dest = join(c.tmp, 'unwritable.backup');
    mkdirSync(`${dest}.partial`); // where the download goes: a directory cannot be written as a file
    const before = backupsMade();
    const out = await c.cli(['--master', old.url, '--retry-for', '20s', 'backup', dest], { env, timeoutMs: 15_000 });
    expect(out.code, out.stderr).toBe(1);
    expect(out.stderr).toMatch(/cannot write .*unwritable\.backup\.partial: EISDIR/);
    expect(existsSync(dest)).toBe(false);
    await waitFor('the one copy to be logged', async () => backupsMade() > before);
    expect(backupsMade()).toBe(before + 1);
  }, 30_000);

  it('leaves a backup already at FILE as it was when the copy received does not check out', async () => {
    const dest = join(c.tmp, 'kept.backup');
    writeFileSync(dest, 'the previous backup');
    // A "master" that answers the backup route with bytes that are no backup.
    const server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/vnd.sqlite3' }).end('junk'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.228', () => r()));
    try {
      const { port } = server.address() as AddressInfo;
      const out = await c.cli(['--master', `http://127.0.0.228:${port}`, 'backup', dest], { env, timeoutMs: 15_000 });
      expect(out.code).toBe(1);
      expect(out.stderr).toMatch(/the backup received does not check out \(.*kept\.backup is left as it was\)/);
      expect(readFileSync(dest, 'utf8')).toBe('the previous backup');
      expect(existsSync(`${dest}.partial`)).toBe(false);
    } finally {
      server.close();
    }
  });
});

describe('weir master --restore', () => {
  it('refuses a file that is not a Weir backup, and a data dir that is not empty, changing nothing', () => {
    const junk = join(c.tmp, 'junk.db');
    writeFileSync(junk, 'not a backup at all');
    const notBackup = cliSync(
      ['master', '--host', '127.0.0.226', '--port', '1', '--data-dir', join(c.tmp, 'r1'), '--restore', junk],
      { env },
    );
    expect(notBackup.code).not.toBe(0);
    expect(notBackup.stderr).toMatch(/junk\.db is not a Weir backup \(not an SQLite database\)/);
    expect(existsSync(join(c.tmp, 'r1'))).toBe(false);
    const notEmpty = cliSync(
      ['master', '--host', '127.0.0.226', '--port', '1', '--data-dir', old.dataDir, '--restore', file],
      { env },
    );
    expect(notEmpty.code).not.toBe(0);
    expect(notEmpty.stderr).toMatch(/not empty; give another --data-dir/);
  });

  it('founds a new cluster on other addresses that serves the jobs and results of the backup', async () => {
    restored = await c.master('127.0.0.226', { env, args: ['--restore', file] });
    const s = await clusterStatus(restored.url);
    expect(s.total_nodes).toBe(1);
    expect(s.nodes[0].address).toBe(restored.url);
    const job = await http('GET', `${restored.url}/api/jobs/${completed}`, undefined, as(clientToken));
    expect(job.status, job.text).toBe(200);
    expect(job.json).toMatchObject({ name: 'tripled', status: 'completed', progress: { total: 4, completed: 4 } });
    const results = await http('GET', `${restored.url}/api/jobs/${completed}/results`, undefined, as(clientToken));
    expect(results.json.results).toEqual([3, 6, 9, 12]);
  }, 60_000);

  it('runs new jobs, and the attempt that was running in the backup again, on its own workers', async () => {
    await c.worker('127.0.0.227', restored, { env, token: clientToken, maxTasks: 2 });
    const fresh = await submit(restored, 'after-restore', { operation: 'multiply', factor: 2, task_count: 2 });
    await untilJobStatus(restored.url, fresh, 'completed', 30_000, as(clientToken));
    const results = await http('GET', `${restored.url}/api/jobs/${fresh}/results`, undefined, as(clientToken));
    expect(results.json.results).toEqual([2, 4]);
    // The old cluster's worker never reaches this one: it is declared dead, and the attempt it
    // ran goes back to pending, uncharged, and runs here.
    await untilJobStatus(restored.url, running, 'completed', 30_000, as(clientToken));
    const [task] = (await http('GET', `${restored.url}/api/jobs/${running}/tasks`, undefined, as(clientToken))).json
      .tasks as Json[];
    expect(task).toMatchObject({ status: 'completed', failures: 0 });
    expect(task.attempt).toBeGreaterThan(1);
  }, 60_000);

  it('takes a new master, which receives the restored state', async () => {
    const [port] = await freePorts(['127.0.0.228']);
    const joiner = await c.master('127.0.0.228', {
      env,
      port: port!,
      args: ['--peers', `${restored.url},http://127.0.0.228:${port}`],
      wait: false,
    });
    const target = (await clusterStatus(restored.url)).commit_index as number;
    await waitFor(
      'the new master to hold the restored state',
      async () => {
        const s = await clusterStatus(joiner.url);
        if (!s || s.total_nodes !== 2 || s.last_applied < target) return undefined;
        const r = await http(
          'GET',
          `${joiner.url}/api/jobs/${completed}/results?consistency=stale`,
          undefined,
          as(clientToken),
        );
        return r.status === 200 && JSON.stringify(r.json.results) === '[3,6,9,12]';
      },
      30_000,
    );
    // Its log starts after the backup's position: the state came as a snapshot.
    await c.waitForLog(joiner, /installed a snapshot from the leader/);

    // Either master makes a backup: the leader (a follower forwards), or itself when asked so.
    for (const url of [restored.url, joiner.url]) {
      for (const q of ['', '?consistency=stale']) {
        // One copy at a time per master: the one before may still be sending, and a client
        // asks again on 503, as `weir backup` does.
        const r = await waitFor(`${url}${q} to send a backup`, async () => {
          const a = await http('GET', `${url}/api/cluster/backup${q}`, undefined, as(adminToken));
          if (a.status === 503 && /already making or sending a backup/.test(a.text)) throw new Error(a.text);
          return a;
        });
        expect(r.status, `${url}${q}: ${r.text.slice(0, 200)}`).toBe(200);
        expect(Number(r.headers.get('x-weir-applied-index'))).toBeGreaterThanOrEqual(target);
      }
    }
  }, 60_000);
});
