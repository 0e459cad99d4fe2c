import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/weir.js', import.meta.url));

interface Member {
  name: string;
  args: string[];
  proc?: ChildProcess;
}

/**
 * `weir dev` (what `npm start` runs): a whole local cluster — a master on 127.0.0.1:8080
 * and two workers on :8081 and :8082, data under ./data — with every line of output
 * prefixed by who wrote it. Ctrl-C stops everything, workers first.
 */
export async function runDev(): Promise<void> {
  const master = 'http://127.0.0.1:8080';
  const members: Member[] = [
    { name: 'master-1', args: ['master', '--host', '127.0.0.1', '--port', '8080', '--data-dir', 'data/master-1'] },
    ...[8081, 8082].map((port, i) => ({
      name: `worker-${i + 1}`,
      args: [
        'worker',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--master',
        master,
        '--data-dir',
        `data/worker-${i + 1}`,
      ],
    })),
  ];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nstopping the local cluster…\n');
    for (const m of [...members].reverse()) {
      if (m.proc && m.proc.exitCode === null) {
        m.proc.kill('SIGTERM');
        await new Promise((r) => m.proc!.once('exit', r));
      }
    }
    process.exit(code);
  };
  for (const m of members) {
    const proc = spawn(process.execPath, [BIN, ...m.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    m.proc = proc;
    const prefix = `[${m.name}] `;
    const pipe = (stream: NodeJS.ReadableStream) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buf += chunk;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) process.stderr.write(prefix + l + '\n');
      });
    };
    pipe(proc.stdout!);
    pipe(proc.stderr!);
    proc.on('exit', (code) => {
      if (!stopping) {
        process.stderr.write(`${prefix}exited with code ${code}; stopping the rest\n`);
        void stopAll(1);
      }
    });
  }
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  // Tell the person what they have once the cluster answers.
  for (let i = 0; i < 100 && !stopping; i++) {
    try {
      const r = await fetch(`${master}/api/workers`);
      const body = (await r.json()) as { workers?: { status: string }[] };
      if ((body.workers ?? []).filter((w) => w.status === 'active').length >= 2) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (stopping) return;
  process.stdout.write(
    [
      '',
      'Weir local cluster is up:',
      `  master   ${master}   (data/master-1)`,
      '  workers  127.0.0.1:8081, 127.0.0.1:8082',
      '',
      'Try, in another terminal:',
      `  npx weir submit batch "Multiplicar" '{"operation":"multiply","factor":3,"task_count":5}'`,
      '  npx weir wait <job_id> && npx weir results <job_id>',
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
}
