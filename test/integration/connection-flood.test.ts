// A stranger opening connections until the master has no file descriptor left (the master on
// 127.0.0.38, the flood from 127.0.0.40): the master runs under a limit of 200 descriptors
// (prlimit, root), and 400 idle sockets are opened to it. It must go on answering over the
// connections it already had, go on compacting its log, and come out whole: no descriptor it
// needed for its own files was taken for good, and nothing it acknowledged is lost.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster, http, waitFor } from '../helpers/cluster.js';

const c = new Cluster('connection-flood');
afterAll(() => c.cleanup());

const FD_LIMIT = 200;
const canLimit = process.getuid?.() === 0 && spawnSync('prlimit', ['--version']).status === 0;

/** The lowest index left in a master's log (it rises as the log is compacted). */
function firstLogIndex(dataDir: string): number {
  const db = new Database(join(dataDir, 'raft.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT min(idx) AS i FROM log`).get() as { i: number | null }).i ?? 0;
  } finally {
    db.close();
  }
}

/** A submit over `agent`'s one kept-alive connection: its status code, or the socket error's code. */
function submitOver(agent: Agent, url: string, name: string): Promise<{ status: number | string; jobId?: string }> {
  return new Promise((done) => {
    const req = request(
      `${url}/api/jobs`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          done({ status: res.statusCode ?? 0, jobId: (JSON.parse(body) as { job_id?: string }).job_id }),
        );
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => done({ status: err.code ?? err.message }));
    req.end(JSON.stringify({ name, type: 'batch', config: { operation: 'noop', task_count: 1 } }));
  });
}

describe.skipIf(!canLimit)(`a master held to ${FD_LIMIT} file descriptors, flooded with idle connections`, () => {
  it('answers every submit over the connection it had, compacts its log meanwhile, and is whole after', async () => {
    const m = await c.master('127.0.0.38', { args: ['--snapshot-entries', '100'] });
    expect(spawnSync('prlimit', ['--pid', String(m.pid), `--nofile=${FD_LIMIT}:${FD_LIMIT}`]).status).toBe(0);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const flood: Socket[] = [];
    try {
      // The client's connection is open before the flood.
      expect((await submitOver(agent, m.url, 'before')).status).toBe(201);
      const firstBefore = firstLogIndex(m.dataDir);

      for (let i = 0; i < 2 * FD_LIMIT; i++) {
        const s = connect({ host: '127.0.0.38', port: Number(new URL(m.url).port), localAddress: '127.0.0.40' });
        s.on('error', () => {});
        flood.push(s);
      }
      // The master's descriptors run out (its files, its listener and as many sockets as fit).
      await waitFor(
        'the master to hold nearly all its descriptors',
        () => readdirSync(`/proc/${m.pid}/fd`).length >= FD_LIMIT - 5,
        10_000,
      );

      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const r = await submitOver(agent, m.url, `during-${i}`);
        expect(r.status, `submit ${i} during the flood`).toBe(201);
        ids.push(r.jobId!);
      }
      // 300 entries or more, compacted every 100 (the newest 20 kept): only if what was applied
      // goes on being made durable, by the checkpoint thread, with no descriptor to open a file.
      await waitFor('the log compacted during the flood', () => firstLogIndex(m.dataDir) > firstBefore + 150, 10_000);
      expect(m.exitCode).toBeUndefined();

      for (const s of flood.splice(0)) s.destroy();
      // New connections are taken again, and every acknowledged job is there.
      await waitFor(
        'a new connection answered',
        async () => (await http('GET', `${m.url}/cluster/status`)).status === 200,
      );
      const listed = await http('GET', `${m.url}/api/jobs?limit=1000`);
      const have = new Set((listed.json.jobs as { job_id: string }[]).map((j) => j.job_id));
      expect(ids.filter((id) => !have.has(id))).toEqual([]);
      const backup = await http('GET', `${m.url}/api/cluster/backup`);
      expect(backup.status, backup.text.slice(0, 200)).toBe(200);
      expect(m.exitCode).toBeUndefined();
    } finally {
      for (const s of flood) s.destroy();
      agent.destroy();
    }
  }, 90_000);
});
