// A cluster serving TLS (addresses 127.0.0.91–99 belong to this file): three masters and two
// workers started with --tls-cert/--tls-key/--tls-ca and JWT_SECRET. Nodes verify each other
// against the CA and present their certificates; the CLI is served with --tls-ca alone, and a
// client without a certificate is authorised by its token; plain http gets no answer, and a
// certificate from another CA is refused on either side of a connection.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  cliSync,
  freePorts,
  http,
  jobIdFrom,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import { makeTestCertificates, node, tlsArgs, type TestCertificates } from '../helpers/tls.js';

const SECRET = 'tls-integration-secret-0123456789abcdef';
const env = { JWT_SECRET: SECRET };
const c = new Cluster('tls');
const HOSTS = ['127.0.0.91', '127.0.0.92', '127.0.0.93'];
const WORKERS = ['127.0.0.94', '127.0.0.95'];

let certs: TestCertificates;
let trust: Agent;
let token: string;
const masters: MasterProc[] = [];
const workers: WorkerProc[] = [];
const agents: Agent[] = [];
const bearer = () => ({ authorization: `Bearer ${token}` });

/** An agent for a client of the test: verifies servers against `ca`, presents `cert` if given. */
function agent(ca: string, cert?: { cert: string; key: string }): Agent {
  const a = new Agent({
    connect: {
      ca: readFileSync(ca, 'utf8'),
      ...(cert ? { cert: readFileSync(cert.cert, 'utf8'), key: readFileSync(cert.key, 'utf8') } : {}),
    },
  });
  agents.push(a);
  return a;
}

/** GET with undici: the status, or the error's message when no answer came. */
async function get(url: string, dispatcher: Dispatcher, headers: Record<string, string> = {}) {
  try {
    const r = await request(url, { dispatcher, headers, headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: r.statusCode, text: await r.body.text() };
  } catch (err) {
    return { status: 0, text: '', error: `${(err as Error).message} ${(err as { code?: string }).code ?? ''}` };
  }
}

/** Every master's /cluster/status once all name one leader, healthy to each other. */
async function agreedStatuses(): Promise<Json[]> {
  return waitFor('the masters to agree on a leader, every one healthy', async () => {
    const all = await Promise.all(
      masters.map(async (m) => {
        const r = await get(`${m.url}/cluster/status`, trust, bearer());
        return r.status === 200 ? (JSON.parse(r.text) as Json) : undefined;
      }),
    );
    const leader = all[0]?.leader_id;
    const agreed =
      leader != null &&
      all.every((s) => s?.leader_id === leader && s.nodes.every((n: { healthy: boolean }) => n.healthy));
    return agreed ? (all as Json[]) : undefined;
  });
}

const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  c.cli(['--master', masters.map((m) => m.url).join(','), ...args], { env: { ...env, ...extraEnv } });

beforeAll(async () => {
  certs = makeTestCertificates(c.tmp, [
    ...HOSTS.map((h, i) => node(`m${i + 1}`, h)),
    ...WORKERS.map((h, i) => node(`w${i + 1}`, h)),
    node('stranger', '127.0.0.96'),
    node('lost', '127.0.0.97'),
  ]);
  trust = agent(certs.ca);
  const t = cliSync(['token'], { env });
  expect(t.code, t.stderr).toBe(0);
  token = t.stdout.trim();
  const ports = await freePorts(HOSTS);
  const peers = HOSTS.map((h, i) => `https://${h}:${ports[i]}`).join(',');
  masters.push(
    ...(await Promise.all(
      HOSTS.map((h, i) =>
        c.master(h, {
          port: ports[i]!,
          env,
          args: ['--peers', peers],
          tls: { args: tlsArgs(certs, `m${i + 1}`), dispatcher: trust },
        }),
      ),
    )),
  );
  await agreedStatuses();
  for (const [i, h] of WORKERS.entries()) {
    workers.push(
      await c.worker(h, masters[0]!, {
        env,
        token,
        maxTasks: 4,
        masters: masters.map((m) => m.url),
        tls: { args: tlsArgs(certs, `w${i + 1}`), dispatcher: trust },
      }),
    );
  }
});
afterAll(async () => {
  await c.cleanup();
  await Promise.all(agents.map((a) => a.close()));
});

describe('a cluster serving TLS', () => {
  it('elects a leader over wss and names its masters by https:// URL', async () => {
    const statuses = await agreedStatuses();
    expect(statuses[0].leader_address).toMatch(/^https:\/\/127\.0\.0\.9[1-3]:\d+$/);
    for (const s of statuses) {
      expect(s.nodes.map((n: { address: string }) => n.address)).toEqual(masters.map((m) => m.url));
    }
  });

  it('runs jobs to completion through the CLI with --tls-ca: uploads copied between masters, map outputs read over https', async () => {
    const sub = await cli([
      '--tls-ca',
      certs.ca,
      'submit',
      'batch',
      'triple',
      '{"operation":"multiply","factor":3,"task_count":5}',
    ]);
    expect(sub.code, sub.stderr).toBe(0);
    const id = jobIdFrom(sub.stdout);
    const wait = await cli(['wait', id, '--tls-ca', certs.ca]);
    expect(wait.code, wait.stderr).toBe(0);
    const res = await cli(['results', id], { WEIR_TLS_CA: certs.ca });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual([3, 6, 9, 12, 15]);

    // Through a follower alone (forwarded to the leader), from an uploaded file the tasks read
    // back over https, with a reduce stage whose tasks fetch the map outputs over https.
    const leader = (await agreedStatuses())[0].leader_address;
    const follower = masters.find((m) => m.url !== leader)!;
    const file = join(c.tmp, 'words.txt');
    const lines = Array.from({ length: 400 }, (_, i) => `w${i % 7} w${i % 3}`);
    writeFileSync(file, lines.join('\n'));
    const config = JSON.stringify({ operation: 'wordcount', task_count: 4, reduce_tasks: 2 });
    const wc = await c.cli(
      ['--master', follower.url, '--tls-ca', certs.ca, 'submit', 'batch', 'wc', config, '--input', file],
      {
        env,
      },
    );
    expect(wc.code, wc.stderr).toBe(0);
    expect(wc.stderr).toMatch(/workers read it from https:\/\/127\.0\.0\.9[1-3]:\d+\/uploads\//);
    const wcId = jobIdFrom(wc.stdout);
    const done = await c.cli(['--master', follower.url, '--tls-ca', certs.ca, 'wait', wcId], { env });
    expect(done.code, done.stderr).toBe(0);
    const rows = await c.cli(['--master', follower.url, '--tls-ca', certs.ca, 'results', wcId], { env });
    const counts = new Map((JSON.parse(rows.stdout) as { key: string; value: number }[]).map((r) => [r.key, r.value]));
    const expected = new Map<string, number>();
    for (const w of lines.join(' ').split(' ')) expected.set(w, (expected.get(w) ?? 0) + 1);
    expect(counts).toEqual(expected);
  });

  it('gives plain http no answer, on masters and workers alike', async () => {
    for (const p of [masters[0]!, workers[0]!]) {
      const r = await http('GET', `http://${p.host}:${p.port}/cluster/status`, undefined, {}, 5000);
      expect(r.status, r.text).toBe(0);
    }
  });

  it('tells a CLI without the CA, in one line, to give it with --tls-ca or WEIR_TLS_CA, and exits non-zero (NODE_EXTRA_CA_CERTS does too)', async () => {
    const r = await cli(['jobs']);
    expect(r.code).toBe(3);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^weir: cannot verify the certificate of https:\/\/127\.0\.0\.9[1-3]:\d+: .*--tls-ca FILE or WEIR_TLS_CA=FILE$/,
    );

    const extra = await cli(['jobs'], { NODE_EXTRA_CA_CERTS: certs.ca });
    expect(extra.code, extra.stderr).toBe(0);

    const wrong = await cli(['jobs'], { WEIR_TLS_CA: certs.foreign.ca });
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/the CA in WEIR_TLS_CA \('.*tls-foreign\/ca\.pem'\) did not sign it/);
  });

  it('serves a client that presents no certificate, authorised by its token alone', async () => {
    for (const url of [masters[0]!.url, masters[2]!.url]) {
      expect((await get(`${url}/api/jobs`, trust)).status).toBe(401);
      const ok = await get(`${url}/api/jobs`, trust, bearer());
      expect(ok.status, ok.text).toBe(200);
    }
    expect((await get(`${workers[0]!.url}/api/status`, trust, bearer())).status).toBe(200);
  });

  it('refuses a client whose certificate another CA signed, token or not, before any request', async () => {
    const stranger = agent(certs.ca, certs.foreign.nodes.stranger);
    for (const p of [masters[1]!, workers[1]!]) {
      const r = await get(`${p.url}/api/jobs`, stranger, bearer());
      expect(r.status, r.text).toBe(0);
      await waitFor(`${p.name} to log the refusal`, async () =>
        /refused a TLS client: its certificate is not signed by --tls-ca/.test(c.log(p)),
      );
    }
    // A certificate from the cluster's CA is taken, and the token still decides.
    const own = agent(certs.ca, certs.nodes.lost);
    expect((await get(`${masters[1]!.url}/api/jobs`, own)).status).toBe(401);
  });

  it('keeps a worker from a master whose certificate the worker’s CA did not sign: it never registers, and says why', async () => {
    const [port] = await freePorts(['127.0.0.96']);
    const foreignMaster = await c.master('127.0.0.96', {
      port: port!,
      env,
      tls: { args: tlsArgs(certs.foreign, 'stranger'), dispatcher: agent(certs.foreign.ca) },
    });
    const w = await c.worker('127.0.0.97', foreignMaster, {
      env,
      token,
      wait: false,
      tls: { args: tlsArgs(certs, 'lost'), dispatcher: trust },
    });
    await waitFor('the worker to say why it cannot register', async () =>
      c
        .log(w)
        .split('\n')
        .some(
          (l) =>
            l.includes('registration failed') && /cannot verify the certificate of https:\/\/127\.0\.0\.96/.test(l),
        ),
    );
    const list = await http(
      'GET',
      `${foreignMaster.url}/api/workers`,
      undefined,
      bearer(),
      5000,
      foreignMaster.dispatcher,
    );
    expect(list.status, list.text).toBe(200);
    expect(list.json.workers).toEqual([]);
    expect(w.exitCode).toBeUndefined();
  });

  it('fails at start on a certificate without its key, a CA that did not sign it, or http:// peers', () => {
    const m1 = certs.nodes.m1!;
    const start = (args: string[]) =>
      cliSync(['master', '--host', '127.0.0.98', '--port', '1', '--data-dir', join(c.tmp, 'never'), ...args]);
    let r = start(['--tls-cert', m1.cert]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--tls-cert needs --tls-key/);
    r = start(['--tls-cert', m1.cert, '--tls-key', m1.key, '--tls-ca', certs.foreign.ca]);
    expect(r.stderr).toMatch(/is not signed by --tls-ca/);
    r = start([...tlsArgs(certs, 'm1'), '--peers', 'http://127.0.0.98:1']);
    expect(r.stderr).toMatch(/a master serving TLS has https:\/\/ peers; --peers names http:\/\/127\.0\.0\.98:1/);
    r = start(['--tls-cert', join(c.tmp, 'missing.pem'), '--tls-key', m1.key]);
    expect(r.stderr).toMatch(/cannot read --tls-cert '.*missing\.pem'/);
  });
});
