// Log compaction by size, between real masters (addresses 127.0.0.64–69 belong to this file):
// a master whose few log entries are large compacts by `--snapshot-bytes` long before
// `--snapshot-entries`; a bad `--snapshot-bytes` is refused with a message; and a master joining
// while the leader keeps writing and compacting is sent one snapshot, not one after another.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  cliSync,
  clusterStatus,
  freePorts,
  http,
  submitRetrying,
  untilAgreedLeader,
  untilConverged,
  waitFor,
  bigJob,
} from '../helpers/cluster.js';

const c = new Cluster('compaction');
afterAll(() => c.cleanup());

/** What a master's log holds now: its entries and their bytes (read beside the running master). */
function logOf(dataDir: string): { entries: number; bytes: number } {
  const db = new Database(join(dataDir, 'raft.db'), { readonly: true, fileMustExist: true });
  try {
    const r = db.prepare('SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS b FROM log').get() as {
      n: number;
      b: number;
    };
    return { entries: r.n, bytes: r.b };
  } finally {
    db.close();
  }
}

describe('--snapshot-bytes', () => {
  it('compacts a log of few large entries once it holds that many bytes, whatever --snapshot-entries says', async () => {
    const host = '127.0.0.64';
    const [port] = await freePorts([host]);
    const url = `http://${host}:${port}`;
    const m = await c.master(host, {
      port: port!,
      args: ['--peers', url, '--snapshot-entries', '1000000', '--snapshot-bytes', '1M'],
    });
    await untilAgreedLeader([m.url]);
    // Twelve entries of about 400 KB each: 4.8 MB through a log allowed 1 MiB.
    for (let i = 0; i < 12; i++) await submitRetrying(m.url, bigJob(`big-${i}`, 400_000));
    await waitFor('the log to be compacted by size', () => logOf(m.dataDir).bytes < 1024 * 1024, 20_000);
    const { entries, bytes } = logOf(m.dataDir);
    expect(bytes).toBeLessThan(1024 * 1024);
    expect(entries).toBeLessThan(12);
    // Compacted, not lost: every job is still there.
    const jobs = await http<{ jobs: unknown[] }>('GET', `${m.url}/api/jobs?limit=100`);
    expect(jobs.json.jobs).toHaveLength(12);
  });

  it('a value that is no byte count, or 0, is refused with a message naming the flag', () => {
    for (const bad of ['lots', '0', '-5']) {
      const r = cliSync(['master', '--host', '127.0.0.65', '--port', '1', '--snapshot-bytes', bad], {
        timeoutMs: 20_000,
      });
      expect(r.code, `--snapshot-bytes ${bad}`).not.toBe(0);
      expect(r.stderr).toMatch(/--snapshot-bytes/);
    }
  });
});

describe('a master joining while the leader writes and compacts', () => {
  it('is sent one snapshot, and the entries after it are kept until it holds them', async () => {
    const hosts = ['127.0.0.66', '127.0.0.67'];
    const ports = await freePorts(hosts);
    const urls = hosts.map((h, i) => `http://${h}:${ports[i]}`);
    // Compacted every 20 entries, keeping 4: without the hold, the leader compacts past the
    // snapshot many times over while it travels.
    const flags = ['--snapshot-entries', '20'];
    const leader = await c.master(hosts[0]!, { port: ports[0]!, args: ['--peers', urls[0]!, ...flags] });
    await untilAgreedLeader([leader.url]);
    // State of some 24 MB: a snapshot that takes a while to stream.
    for (let i = 0; i < 6; i++) await submitRetrying(leader.url, bigJob(`state-${i}`, 4_000_000));
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await submitRetrying(leader.url, { name: `w-${written}`, type: 'batch', config: { operation: 'noop' } });
        written++;
      }
    })();
    try {
      const joiner = await c.master(hosts[1]!, {
        port: ports[1]!,
        args: ['--peers', urls.join(','), ...flags],
        wait: false,
      });
      await waitFor(
        'the joiner to catch up',
        async () => {
          const [l, j] = await Promise.all([clusterStatus(leader.url), clusterStatus(joiner.url)]);
          return written > 50 && (j?.last_applied ?? 0) >= ((l?.commit_index as number) ?? Infinity) - 50;
        },
        120_000,
      );
      writing = false;
      await writer;
      const target = (await clusterStatus(leader.url)).commit_index as number;
      await untilConverged(urls, target, 60_000);
      await c.waitForLog(leader, /"msg":"sent a snapshot"/);
      await c.waitForLog(joiner, /installed a snapshot from the leader/);
      const sent = c.log(leader).match(/"msg":"sent a snapshot"/g) ?? [];
      const installed = c.log(joiner).match(/installed a snapshot from the leader/g) ?? [];
      expect(installed.length).toBe(1);
      expect(sent.length).toBe(1);
    } finally {
      writing = false;
      await writer;
    }
  });
});
