import { logLineFormatter } from './log-lines.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { installRoot } from '../common/install-root.js';
import { makeCertificates } from './dev-certs.js';

const BIN = join(installRoot(), 'bin', 'weir.js');

interface Member {
  name: string;
  args: string[];
  proc?: ChildProcess;
}

const MASTER_HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
/**
 * Outside every node's data dir, so outside what a task may read unless a worker names it;
 * made afresh on each start, and the CA's key is deleted once the nodes' certificates are signed.
 */
const TLS_DIR = 'data/tls';

/** The certificates of the dev cluster's nodes, and each node's TLS flags. */
function devCertificates(): { ca: string; flags: (name: string) => string[] } {
  const names = [
    ...MASTER_HOSTS.map((host, i) => ({ name: `master-${i + 1}`, hosts: [host, 'localhost'] })),
    ...[1, 2].map((i) => ({ name: `worker-${i}`, hosts: ['127.0.0.1', 'localhost'] })),
  ];
  const certs = makeCertificates(TLS_DIR, names);
  return {
    ca: resolve(certs.ca),
    flags: (name) => {
      const n = certs.nodes[name]!;
      return ['--tls-cert', n.cert, '--tls-key', n.key, '--tls-ca', certs.ca];
    },
  };
}

/**
 * `weir dev` (what `npm start` runs): a whole local cluster — three masters on
 * 127.0.0.1–3:8080 (ids 1, 2, 3) and two workers on 127.0.0.1:8081 and :8082, data under
 * ./data — with every line of output prefixed by who wrote it. Ctrl-C stops everything,
 * workers first. With `tls`, every node serves https with a certificate from a throwaway CA.
 */
export async function runDev(o: { tls: boolean } = { tls: false }): Promise<void> {
  const scheme = o.tls ? 'https' : 'http';
  const masters = MASTER_HOSTS.map((ip) => `${scheme}://${ip}:8080`);
  const tls = o.tls ? devCertificates() : undefined;
  const master = masters[0]!;
  const peers = masters.join(',');
  const masterArgs = (url: string, i: number) => [
    'master',
    '--host',
    new URL(url).hostname,
    '--port',
    '8080',
    '--peers',
    peers,
    '--data-dir',
    `data/master-${i + 1}`,
    ...(tls?.flags(`master-${i + 1}`) ?? []),
  ];
  const workerArgs = (port: number, i: number) => [
    'worker',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--master',
    peers,
    '--data-dir',
    `data/worker-${i + 1}`,
    ...(tls?.flags(`worker-${i + 1}`) ?? []),
  ];
  const members: Member[] = [
    ...masters.map((url, i) => ({ name: `master-${i + 1}`, args: masterArgs(url, i) })),
    ...[8081, 8082].map((port, i) => ({ name: `worker-${i + 1}`, args: workerArgs(port, i) })),
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
  const formatLine = logLineFormatter(process.stderr.isTTY === true);
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
        for (const l of lines) process.stderr.write(prefix + formatLine(l) + '\n');
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
  const dispatcher: Dispatcher | undefined = tls
    ? new Agent({ connect: { ca: readFileSync(tls.ca, 'utf8') } })
    : undefined;
  for (let i = 0; i < 100 && !stopping; i++) {
    try {
      const r = await request(`${master}/api/workers`, dispatcher ? { dispatcher } : {});
      const body = (await r.body.json()) as { workers?: { status: string }[] };
      if ((body.workers ?? []).filter((w) => w.status === 'active').length >= 2) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await dispatcher?.close();
  if (stopping) return;
  const cli = tls ? `WEIR_TLS_CA=${tls.ca} npx weir` : 'npx weir';
  process.stdout.write(
    [
      '',
      'Weir local cluster is up:',
      `  masters  ${masters.join(', ')}   (data/master-1..3)`,
      '  workers  127.0.0.1:8081, 127.0.0.1:8082',
      ...(tls ? [`  TLS      CA ${tls.ca}; certificates and keys in ${TLS_DIR}/`] : []),
      `  see who leads:  ${cli} cluster`,
      '',
      'Try, in another terminal:',
      ...(tls ? [`  export WEIR_TLS_CA=${tls.ca}   # or --tls-ca FILE on each line`] : []),
      `  npx weir submit batch "Multiplicar" '{"operation":"multiply","factor":3,"task_count":5}'`,
      '  npx weir wait <job_id> && npx weir results <job_id>',
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
}
