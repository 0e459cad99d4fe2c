// node bench/results/latency-floor/floor.mjs (from the root of a checkout with node_modules):
// what this machine charges for the parts a one-task job's round trip is made of, measured
// without Weir. Each is timed back to back (the processes stay awake) and with 1 ms of idle
// before each (as in a job, where every process waits for another before its turn):
// - an HTTP round trip between two processes (undici to fastify, on 127.0.0.1);
// - a child-process IPC round trip (process.send both ways, as a worker and its executor);
// - a SQLite WAL commit of one 300-byte row with synchronous = FULL (one fsync, as a Raft
//   entry's write);
// - three such commits asked at once in three processes, to the second one's end (three
//   masters on one machine share its disk, and an entry is committed on two of them).
// Prints each one's p50/p90 in µs, then the floor of a job's round trip that they give:
// three round trips between processes (client ↔ master, master ↔ worker, worker ↔ executor)
// and one durable commit (the completion's: the submit's is written while the task runs);
// on three masters, a round trip between masters more and the second of three commits.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { Pool } from 'undici';

const N = 3000;
const WARM = 500;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === 'http-server') {
  const app = Fastify();
  app.post('/echo', async (req) => ({ ok: true, n: req.body.n }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.send(app.server.address().port);
} else if (process.argv[2] === 'committer') {
  // One master's disk writes, in a process of its own: a commit each time it is asked.
  const dir = mkdtempSync(join(tmpdir(), 'weir-floor-'));
  const { insert, close } = logDatabase(dir);
  const row = Buffer.alloc(300, 7);
  let idx = 0;
  process.on('message', (m) => {
    if (m === 'stop') {
      close();
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }
    insert.run(++idx, row);
    process.send(performance.timeOrigin + performance.now());
  });
  process.send('ready');
} else if (process.argv[2] === 'ipc-echo') {
  process.on('message', (m) => process.send(m));
  process.send('ready');
} else {
  await main();
}

function logDatabase(dir) {
  const db = new Database(join(dir, 'log.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE log (idx INTEGER PRIMARY KEY, data BLOB)');
  return { insert: db.prepare('INSERT INTO log VALUES (?, ?)'), close: () => db.close() };
}

/** `once` resolves with its own duration in ms, or with nothing to be timed from outside. */
async function timed(label, once) {
  const out = {};
  for (const idleMs of [0, 1]) {
    const t = [];
    for (let i = 0; i < WARM + N; i++) {
      if (idleMs) await sleep(idleMs);
      const s = performance.now();
      const own = await once(i);
      if (i >= WARM) t.push((typeof own === 'number' ? own : performance.now() - s) * 1000);
    }
    t.sort((a, b) => a - b);
    out[idleMs ? 'idle' : 'busy'] = { p50: t[N >> 1], p90: t[Math.floor(N * 0.9)] };
  }
  console.log(
    `${label.padEnd(34)} back to back p50 ${out.busy.p50.toFixed(0).padStart(4)} µs (p90 ${out.busy.p90.toFixed(0)}),` +
      ` after 1 ms idle p50 ${out.idle.p50.toFixed(0).padStart(4)} µs (p90 ${out.idle.p90.toFixed(0)})`,
  );
  return out;
}

async function main() {
  const self = new URL(import.meta.url).pathname;
  const server = fork(self, ['http-server']);
  const port = await new Promise((r) => server.once('message', r));
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
  const http = await timed('HTTP round trip (2 processes)', async (n) => {
    const r = await pool.request({
      method: 'POST',
      path: '/echo',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n }),
    });
    await r.body.json();
  });
  await pool.close();
  server.kill();

  const echo = fork(self, ['ipc-echo']);
  await new Promise((r) => echo.once('message', r));
  const ipc = await timed('IPC round trip (process.send)', (n) => {
    const back = new Promise((r) => echo.once('message', r));
    echo.send({ seq: n, specs: [{ operation: 'noop' }] });
    return back;
  });
  echo.kill();

  const dir = mkdtempSync(join(tmpdir(), 'weir-floor-'));
  const { insert, close } = logDatabase(dir);
  let idx = 0;
  const row = Buffer.alloc(300, 7);
  const commit = await timed('SQLite commit, synchronous = FULL', () => {
    insert.run(++idx, row);
  });
  close();
  rmSync(dir, { recursive: true, force: true });

  // Three masters on one machine write each entry on one disk at the same time; an entry is
  // committed once two of them have it: the second of three commits asked at once.
  const three = [0, 1, 2].map(() => fork(self, ['committer']));
  await Promise.all(three.map((c) => new Promise((r) => c.once('message', r))));
  const second = await timed('second of 3 commits at once', async () => {
    const at = performance.timeOrigin + performance.now();
    const done = three.map((c) => new Promise((r) => c.once('message', r)));
    for (const c of three) c.send('go');
    const times = (await Promise.all(done)).sort((a, b) => a - b);
    // Timed to the second commit's end, not to this process hearing of it.
    return times[1] - at;
  });
  for (const c of three) c.send('stop');

  const floor = (k) => 2 * http[k].p50 + ipc[k].p50 + commit[k].p50;
  console.log(
    `floor of a one-task job (3 round trips between processes, 1 durable commit; the master ↔ worker` +
      ` trip counted as an HTTP one): back to back ${(floor('busy') / 1000).toFixed(2)} ms, after idle ${(floor('idle') / 1000).toFixed(2)} ms`,
  );
  // On three masters the completion's commit is the second of three writes on the one disk,
  // and a round trip between masters (the entry out, the answer back) comes on top.
  const floor3 = (k) => floor(k) - commit[k].p50 + second[k].p50 + http[k].p50;
  console.log(
    `three masters on this machine: back to back ${(floor3('busy') / 1000).toFixed(2)} ms, after idle ${(floor3('idle') / 1000).toFixed(2)} ms`,
  );
}
