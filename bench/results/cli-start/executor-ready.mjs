// How soon an executor of the build in DIR is ready: node executor-ready.mjs DIR (8 starts, the median).
// The bundled entry when the build has one (dist/bundle/, as a worker forks it), else tsc's.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
const dir = process.argv[2];
const bundled = `${dir}/dist/bundle/executor-main.js`;
const entry = existsSync(bundled) ? bundled : `${dir}/dist/src/worker/executor-main.js`;
const times = [];
for (let i = 0; i < 8; i++) {
  const t = performance.now();
  const c = fork(entry, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  await new Promise((r) => c.once('message', r));
  times.push(performance.now() - t);
  c.kill('SIGKILL');
  await new Promise((r) => c.once('exit', r));
}
times.sort((a, b) => a - b);
console.log(dir, 'executor ready ms: median', times[4].toFixed(0), 'all', times.map((x) => x.toFixed(0)).join(' '));
