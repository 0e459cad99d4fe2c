// How soon an executor of the build in DIR is ready: node executor-ready.mjs DIR (8 starts, the median).
import { fork } from 'node:child_process';
const dir = process.argv[2];
const times = [];
for (let i = 0; i < 8; i++) {
  const t = performance.now();
  const c = fork(`${dir}/dist/src/worker/executor-main.js`, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  await new Promise((r) => c.once('message', r));
  times.push(performance.now() - t);
  c.kill('SIGKILL');
  await new Promise((r) => c.once('exit', r));
}
times.sort((a, b) => a - b);
console.log(dir, 'executor ready ms: median', times[4].toFixed(0), 'all', times.map((x) => x.toFixed(0)).join(' '));
