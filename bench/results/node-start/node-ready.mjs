// How soon, and on how much CPU, a node of the build in DIR is ready:
//   node node-ready.mjs DIR master|worker [OUT]
// master: `weir master` until /ready answers 200 (it leads). worker: a master first (not
// counted), then `weir worker` until its channel to the master is open. Prints (and appends to
// OUT) the node's wall ms to ready and its CPU ms then, read from /proc. Address 127.0.0.250.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [dir, role, out] = process.argv.slice(2);
const HOST = '127.0.0.250';
const data = mkdtempSync(join(tmpdir(), 'weir-node-ready-'));
const procs = [];

const freePort = () =>
  new Promise((res) => {
    const s = createServer().listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
};
const start = (args) => {
  const p = spawn(process.execPath, [join(dir, 'bin/weir.js'), ...args], { stdio: 'ignore' });
  procs.push(p);
  return p;
};
async function until(check) {
  for (;;) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

try {
  const mPort = await freePort();
  const master = `http://${HOST}:${mPort}`;
  const t0 = performance.now();
  const m = start(['master', '--host', HOST, '--port', String(mPort), '--data-dir', join(data, 'm')]);
  await until(async () => (await fetch(`${master}/ready`)).status === 200);
  let figure = { ms: performance.now() - t0, cpu_ms: cpuMs(m.pid) };
  if (role === 'worker') {
    const wPort = await freePort();
    const t1 = performance.now();
    const w = start(['worker', '--host', HOST, '--port', String(wPort), '--master', master, '--data-dir', join(data, 'w')]);
    await until(async () => (await (await fetch(`http://${HOST}:${wPort}/api/status`)).json()).connected === true);
    figure = { ms: performance.now() - t1, cpu_ms: cpuMs(w.pid) };
  }
  const line = JSON.stringify({ dir, role, ms: Math.round(figure.ms), cpu_ms: figure.cpu_ms });
  console.log(line);
  if (out) appendFileSync(out, `${line}\n`);
} finally {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exitCode === null && new Promise((r) => p.once('exit', r))));
  rmSync(data, { recursive: true, force: true });
}
