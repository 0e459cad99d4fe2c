// A small harness for multi-process integration tests: it runs the real `weir` executable
// (bin/weir.js) as child processes on 127.0.0.x addresses and drives them through the CLI
// and the REST API, as a user would. Nothing of Weir is imported or mocked.
//
// Every process starts in its own process group (detached), so a kill reaches anything it
// spawned; `cleanup()` SIGKILLs every group this harness started and removes its temp dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { onCutShort } from './on-cut-short.js';
import { sleep, waitFor, GiveUp } from './wait.js';

// The waits are the harness's too: its specs import everything from here.
export { GiveUp, sleep, waitFor } from './wait.js';

/**
 * The project whose `bin/weir.js` runs: this checkout, or WEIR_IT_ROOT (a built snapshot, to
 * test one version while the working tree is being edited).
 */
export const ROOT = process.env.WEIR_IT_ROOT
  ? resolve(process.env.WEIR_IT_ROOT)
  : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEIR_BIN = join(ROOT, 'bin', 'weir.js');

/** The caller's own settings must not leak into the processes under test. */
const SCRUB = [
  'JWT_SECRET',
  'WEIR_TOKEN',
  'WEIR_MASTER',
  'WEIR_TLS_CA',
  'PORT',
  'SERVICE_NAME',
  'WEIR_DATA_DIR',
] as const;

export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of SCRUB) delete env[k];
  // vitest's own markers would otherwise reach the children.
  for (const k of Object.keys(env)) if (k.startsWith('VITEST')) delete env[k];
  // Every reply a node serialises with a response schema is checked against plain JSON: a
  // schema that drops or coerces a field fails the spec that met it (common/reply-check.ts).
  env.WEIR_CHECK_REPLIES = '1';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** A free TCP port on `host`: listen on port 0 there, note the port, close. */
export async function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', rej);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (!addr || typeof addr === 'string') return rej(new Error('no port'));
      srv.close(() => res(addr.port));
    });
  });
}

/** A parsed REST body: tests read fields off it and assert on them, so it is loosely typed on purpose. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface HttpAnswer<T = Json> {
  /** 0 when the request never got an answer (connection refused, reset, timeout). */
  status: number;
  json: T;
  text: string;
  headers: Headers;
  error?: string;
}

/**
 * One HTTP request with fetch; a body that is not a string is sent as JSON. `dispatcher`: one
 * that trusts a TLS cluster's CA (see tls.ts), for https URLs.
 */
export async function http<T = Json>(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 15_000,
  dispatcher?: Dispatcher,
): Promise<HttpAnswer<T>> {
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array ? (body as string) : JSON.stringify(body);
    const h = init.headers as Record<string, string>;
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  try {
    const r = dispatcher
      ? ((await undiciFetch(url, { ...(init as object), dispatcher })) as unknown as Response)
      : await fetch(url, init);
    const text = await r.text();
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text, headers: r.headers };
  } catch (err) {
    return {
      status: 0,
      json: undefined as Json,
      text: '',
      headers: new Headers(),
      error: String((err as Error)?.cause ?? err),
    };
  }
}

/**
 * One HTTP/1.1 request over a raw socket that gives the server a chance to answer before the
 * body is sent (as curl does with `Expect: 100-continue`): it sends the headers, waits up to
 * `earlyMs` for an early answer (such as a 413 decided from Content-Length), and only then
 * sends the body. Write errors after an early answer are ignored.
 */
export async function httpEarlyAnswer(
  method: string,
  url: string,
  body: string,
  headers: Record<string, string> = {},
  timeoutMs = 30_000,
  earlyMs = 1000,
): Promise<HttpAnswer> {
  const u = new URL(url);
  const head = [
    `${method} ${u.pathname}${u.search} HTTP/1.1`,
    `host: ${u.host}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  const raw = await new Promise<string>((res, rej) => {
    const sock = connect({ host: u.hostname, port: Number(u.port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      rej(new Error(`no answer from ${url} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => {}); // EPIPE / ECONNRESET once the server has answered and closed
    sock.on('close', () => {
      clearTimeout(timer);
      res(Buffer.concat(chunks).toString('utf8'));
    });
    sock.on('connect', () => {
      sock.write(head);
      const early = setTimeout(() => sock.end(body), earlyMs);
      sock.once('data', () => {
        clearTimeout(early);
        sock.end();
      });
    });
  });
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(raw);
  if (!m)
    return {
      status: 0,
      json: undefined,
      text: raw,
      headers: new Headers(),
      error: `no HTTP answer: ${raw.slice(0, 200)}`,
    };
  const hdrs = new Headers();
  for (const line of m[2]!.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) hdrs.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  let text = m[3]!;
  if (/chunked/i.test(hdrs.get('transfer-encoding') ?? '')) {
    let out = '';
    for (let rest = text; ;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, nl), 16);
      if (!size) break;
      out += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 2 + size + 2);
    }
    text = out;
  }
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), json, text, headers: hdrs };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Called with all of stderr so far whenever more arrives (to wait for a running command to get going). */
  onStderr?: (stderrSoFar: string) => void;
}

/** Runs `weir ARGS` to its end, blocking (for quick commands). */
export function cliSync(args: string[], opts: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [WEIR_BIN, ...args], {
    cwd: ROOT,
    env: childEnv(opts.env),
    timeout: opts.timeoutMs ?? 60_000,
    encoding: 'utf8',
    killSignal: 'SIGKILL',
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The job id `weir submit` prints alone on the last line of stdout. */
export function jobIdFrom(stdout: string): string {
  const last = stdout.trim().split('\n').pop()?.trim() ?? '';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(last)) throw new Error(`no job id on the last line of: ${JSON.stringify(stdout)}`);
  return last;
}

export interface Proc {
  name: string;
  role: 'master' | 'worker' | 'cli';
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
}

/** A node serving TLS: its `--tls-*` flags, and how the harness reaches it (trusting its CA). */
export interface NodeTlsSetup {
  args: string[];
  dispatcher: Dispatcher;
}

export interface MasterProc extends Proc {
  host: string;
  port: number;
  url: string;
  dataDir: string;
  env: Record<string, string | undefined>;
  /** Set for a master serving TLS: what reaches it. */
  dispatcher?: Dispatcher;
}

export interface WorkerProc extends Proc {
  host: string;
  port: number;
  url: string;
  /** As the worker registers itself: `host:port`. */
  address: string;
  dataDir: string;
}

const liveClusters = new Set<Cluster>();
onCutShort(() => {
  for (const c of liveClusters) c.killAllNow();
});

/**
 * The processes of one test file. Give each file its own 127.0.0.x addresses so files can
 * run in parallel; ports are found free on those addresses.
 */
export class Cluster {
  readonly tmp: string;
  private readonly procs = new Set<Proc>();
  private n = 0;
  private workersRoot: string | undefined;

  constructor(readonly name: string) {
    this.tmp = mkdtempSync(join(tmpdir(), `weir-it-${name}-`));
    liveClusters.add(this);
  }

  /**
   * Where workers keep their data: outside the temp and working dirs, as the README advises.
   * In the temp dir, keeping tasks out of it costs every executor ~10,000 permission entries
   * (~16 MiB, counted in memory_mb) and a slower start; the specs of that case name theirs.
   */
  private workerDataDir(host: string, port: number): string {
    this.workersRoot ??= mkdtempSync(join(existsSync('/var/tmp') ? '/var/tmp' : this.tmp, 'weir-it-w-'));
    return join(this.workersRoot, `${host}-${port}`);
  }

  /**
   * Spawns `node bin/weir.js ARGS` in its own process group, output to a log file; `bin`:
   * another build's executable (another version of Weir).
   */
  spawn(
    role: Proc['role'],
    name: string,
    args: string[],
    env: Record<string, string | undefined> = {},
    bin = WEIR_BIN,
  ): Proc {
    this.refuseAfterCleanup(name);
    const logFile = join(this.tmp, `${String(this.n++).padStart(2, '0')}-${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: ROOT,
      env: childEnv(env),
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    const p: Proc = {
      name,
      role,
      child,
      pid: child.pid!,
      logFile,
      exitCode: undefined,
      exited: new Promise((r) =>
        child.once('exit', (code, signal) => {
          p.exitCode = code ?? (signal ? -1 : null);
          r(code);
        }),
      ),
    };
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** A master on `host`; `port` and `dataDir` let a restart reuse the old ones. */
  async master(
    host: string,
    o: {
      port?: number;
      dataDir?: string;
      env?: Record<string, string | undefined>;
      args?: string[];
      wait?: boolean;
      /** Serve https with these flags. */
      tls?: NodeTlsSetup;
      /** Another build's `bin/weir.js` (another version of Weir). */
      bin?: string;
    } = {},
  ): Promise<MasterProc> {
    const port = o.port ?? (await freePort(host));
    const dataDir = o.dataDir ?? join(this.tmp, `master-${host}-${port}`);
    const env = o.env ?? {};
    const p = this.spawn(
      'master',
      `master-${host}`,
      [
        'master',
        '--host',
        host,
        '--port',
        String(port),
        '--data-dir',
        dataDir,
        ...(o.args ?? []),
        ...(o.tls?.args ?? []),
      ],
      env,
      o.bin,
    );
    const scheme = o.tls ? 'https' : 'http';
    const m: MasterProc = Object.assign(p, {
      host,
      port,
      url: `${scheme}://${host}:${port}`,
      dataDir,
      env,
      ...(o.tls ? { dispatcher: o.tls.dispatcher } : {}),
    });
    if (o.wait !== false) await this.untilReady(m);
    return m;
  }

  /** Waits until the master answers /ready with 200 (it leads and has caught up). */
  async untilReady(m: MasterProc, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `master ${m.url} to be ready`,
      async () => {
        if (m.exitCode !== undefined) throw new GiveUp(`master exited with ${m.exitCode}:\n${this.tail(m)}`);
        return (await http('GET', `${m.url}/ready`, undefined, {}, 2000, m.dispatcher)).status === 200;
      },
      timeoutMs,
    );
  }

  /**
   * A worker on `host` registered with `master`; waits until the master lists it active
   * (`token` reads /api/workers on a secured master).
   */
  async worker(
    host: string,
    master: MasterProc,
    o: {
      maxTasks?: number;
      env?: Record<string, string | undefined>;
      wait?: boolean;
      token?: string;
      /** Every master the worker is given (`--master URL,URL…`); default: `master` alone. */
      masters?: string[];
      /** Serve https with these flags (and reach `master` with its dispatcher). */
      tls?: NodeTlsSetup;
      /** More flags (`--allow-read DIR`, …). */
      args?: string[];
      /** Default: a short path outside the temp and working dirs (see workerDataDir). */
      dataDir?: string;
    } = {},
  ): Promise<WorkerProc> {
    const port = await freePort(host);
    const dataDir = o.dataDir ?? this.workerDataDir(host, port);
    mkdirSync(dataDir, { recursive: true });
    const masterArg = (o.masters ?? [master.url]).join(',');
    const args = ['worker', '--host', host, '--port', String(port), '--master', masterArg, '--data-dir', dataDir];
    if (o.maxTasks !== undefined) args.push('--max-tasks', String(o.maxTasks));
    args.push(...(o.tls?.args ?? []));
    args.push(...(o.args ?? []));
    const p = this.spawn('worker', `worker-${host}`, args, o.env ?? {});
    const dispatcher = o.tls?.dispatcher;
    const w: WorkerProc = Object.assign(p, {
      host,
      port,
      url: `${o.tls ? 'https' : 'http'}://${host}:${port}`,
      address: `${host}:${port}`,
      dataDir,
    });
    if (o.wait !== false) {
      const headers: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
      await waitFor(
        `worker ${w.address} to be active on ${master.url}, its channel open`,
        async () => {
          if (w.exitCode !== undefined) throw new GiveUp(`worker exited with ${w.exitCode}:\n${this.tail(w)}`);
          const r = await http('GET', `${master.url}/api/workers`, undefined, headers, 2000, master.dispatcher);
          if (!r.json?.workers?.some((x: Json) => x.address === w.address && x.status === 'active')) return false;
          // Registered is not enough: tasks are placed only on workers whose channel is open.
          const s = await http('GET', `${w.url}/api/status`, undefined, headers, 2000, dispatcher);
          return s.json?.connected === true;
        },
        30_000,
      );
    }
    return w;
  }

  /** Runs `weir ARGS` without blocking the test; tracked, so cleanup kills it if it hangs. */
  cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
    this.refuseAfterCleanup(`weir ${args[0] ?? ''}`);
    const child = spawn(process.execPath, [WEIR_BIN, ...args], {
      cwd: ROOT,
      env: childEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const p: Proc = {
      name: `cli ${args.join(' ').slice(0, 60)}`,
      role: 'cli',
      child,
      pid: child.pid!,
      logFile: '',
      exitCode: undefined,
      exited: new Promise(() => {}),
    };
    this.procs.add(p);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      opts.onStderr?.(stderr);
    });
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise((res) => {
      const timer = setTimeout(() => this.kill(p, 'SIGKILL'), timeoutMs);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        this.procs.delete(p);
        res({
          code: code ?? (signal ? -1 : null),
          stdout,
          stderr: stderr + (signal ? `\n[killed by ${signal} after ${timeoutMs} ms]` : ''),
        });
      });
    });
  }

  /** Sends `signal` to the process's whole group. */
  kill(p: Proc, signal: NodeJS.Signals = 'SIGKILL'): void {
    try {
      process.kill(-p.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Kills the group and waits until the process has exited (before reusing its port or data dir). */
  async stop(p: Proc, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 15_000): Promise<void> {
    this.kill(p, signal);
    if (p.exitCode !== undefined) return;
    await Promise.race([
      p.exited,
      sleep(timeoutMs).then(() => Promise.reject(new Error(`${p.name} did not exit after ${signal}`))),
    ]);
  }

  /** A process's whole log so far ('' when there is none yet). */
  log(p: Proc): string {
    try {
      return readFileSync(p.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Polls a log until `pattern` (a string: a substring) is in it: a log's writes are asynchronous. */
  async waitForLog(p: Proc, pattern: RegExp | string, what?: string): Promise<string> {
    const has = (log: string) => (typeof pattern === 'string' ? log.includes(pattern) : log.search(pattern) !== -1);
    try {
      const found = await waitFor(
        `${p.name} (pid ${p.pid}) to log ${String(pattern)}${what ? ` (${what})` : ''}`,
        () => {
          const log = this.log(p);
          return has(log) ? { log } : undefined;
        },
      );
      return found.log;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${p.name}'s log ends with:\n${this.tail(p)}`);
    }
  }

  /** The last lines of a process's log, for failure messages. */
  tail(p: Proc, lines = 40): string {
    try {
      return readFileSync(p.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  killAllNow(): void {
    for (const p of this.procs) this.kill(p, 'SIGKILL');
  }

  /**
   * A test that outlived its timeout runs on after its file's cleanup: what it starts then
   * nobody would stop (a master found running an hour later).
   */
  private refuseAfterCleanup(what: string): void {
    if (this.cleanedUp)
      throw new Error(`${what} not started: this cluster was cleaned up (a test ran past its timeout)`);
  }

  private cleanedUp = false;

  /** SIGKILLs every process group started here, waits for them, removes the temp dir (unless KEEP_TMP). */
  async cleanup(): Promise<void> {
    this.cleanedUp = true;
    const all = [...this.procs];
    for (const p of all) this.kill(p, 'SIGKILL');
    await Promise.race([Promise.all(all.filter((p) => p.role !== 'cli').map((p) => p.exited)), sleep(10_000)]);
    liveClusters.delete(this);
    if (!process.env.KEEP_TMP) {
      rmSync(this.tmp, { recursive: true, force: true });
      if (this.workersRoot) rmSync(this.workersRoot, { recursive: true, force: true });
    } else process.stderr.write(`[weir-it] kept ${this.tmp} ${this.workersRoot ?? ''}\n`);
  }
}

/** The `{jobs}` of every page of GET /api/jobs (`limit=1000`, following `next_cursor`). */
export async function allJobs(masterUrl: string, headers: Record<string, string> = {}): Promise<Json[]> {
  const jobs: Json[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const r = await http('GET', `${masterUrl}/api/jobs?limit=1000${q}`, undefined, headers);
    if (r.status !== 200 || !Array.isArray(r.json?.jobs))
      throw new Error(`GET /api/jobs -> ${r.status} ${r.text.slice(0, 200)}`);
    jobs.push(...r.json.jobs);
    cursor = r.json.next_cursor;
    if (!cursor) break;
  }
  return jobs;
}

/** A job's REST view once it has reached `status` (fails fast on another terminal status). */
export async function untilJobStatus(
  masterUrl: string,
  jobId: string,
  status: string,
  timeoutMs = 60_000,
  headers: Record<string, string> = {},
) {
  return waitFor(
    `job ${jobId} to be ${status}`,
    async () => {
      const r = await http('GET', `${masterUrl}/api/jobs/${jobId}`, undefined, headers);
      const s = r.json?.status;
      if (s !== status && ['completed', 'failed', 'cancelled'].includes(s)) {
        throw new GiveUp(`job ${jobId} ended ${s}, not ${status}: ${r.text.slice(0, 500)}`);
      }
      return s === status ? r.json : undefined;
    },
    timeoutMs,
  );
}

// ---------------------------------------------------------------- several masters

/** Attempts the leader at `m` was told workers began (`weir_worker_tasks_begun_total`). */
export const tasksBegun = async (m: { url: string }): Promise<number> =>
  Number(/^weir_worker_tasks_begun_total (\d+)/m.exec((await http('GET', `${m.url}/metrics`)).text)?.[1] ?? NaN);

/**
 * The GET /cluster/status body of one master (undefined when it does not answer); `headers`:
 * a token, on a cluster with a secret.
 */
export async function clusterStatus(
  url: string,
  timeoutMs = 2000,
  headers: Record<string, string> = {},
): Promise<Json | undefined> {
  const r = await http('GET', `${url}/cluster/status`, undefined, headers, timeoutMs);
  return r.status === 200 ? r.json : undefined;
}

/** One free port on each host, for masters that must know each other's URLs before they start. */
export async function freePorts(hosts: readonly string[]): Promise<number[]> {
  return Promise.all(hosts.map((h) => freePort(h)));
}

/** A port free on every one of `hosts` (DNS discovery gives all masters one port). */
export async function commonFreePort(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort(hosts[0]!);
    const free = await Promise.all(
      hosts.slice(1).map(
        (host) =>
          new Promise<boolean>((res) => {
            const srv = createServer();
            srv.unref();
            srv.once('error', () => res(false));
            srv.listen({ host, port, exclusive: true }, () => srv.close(() => res(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

export interface AgreedLeader {
  /** The leader every master named. */
  leaderId: number;
  leaderUrl: string;
  term: number;
  /** Each master's /cluster/status at that moment, in the order of `urls`. */
  statuses: Json[];
}

/**
 * Waits until every master in `urls` answers /cluster/status naming one leader in one term,
 * and that leader says it leads (`leaderId`: a particular one). Fails fast when a master
 * process given in `procs` exits.
 */
export async function untilAgreedLeader(
  urls: readonly string[],
  o: {
    leaderId?: number;
    /** Only a leader of this term or a later one counts (after a failover: the old term + 1). */
    minTerm?: number;
    timeoutMs?: number;
    everyMs?: number;
    procs?: readonly Proc[];
    /** A token, on a cluster with a secret. */
    headers?: Record<string, string>;
  } = {},
): Promise<AgreedLeader> {
  return waitFor(
    `${urls.join(', ')} to agree on ${o.leaderId ? `leader ${o.leaderId}` : 'one leader'}`,
    async () => {
      for (const p of o.procs ?? []) {
        if (p.exitCode !== undefined) throw new GiveUp(`${p.name} exited with ${p.exitCode}`);
      }
      const statuses = await Promise.all(urls.map((u) => clusterStatus(u, 2000, o.headers)));
      // Thrown (not returned) so that a timeout names what each master said last.
      const view = statuses
        .map((s, i) => (s ? `${s.current_node_id}:${s.current_role}/leader=${s.leader_id}@${s.term}` : `${urls[i]}:-`))
        .join(' ');
      const leaderId = statuses[0]?.leader_id;
      const term = statuses[0]?.term;
      // The leader itself, when it is one of `urls`, must say it leads.
      const leader = statuses.find((s) => s?.current_node_id === leaderId);
      const agreed =
        leaderId != null &&
        (o.leaderId === undefined || leaderId === o.leaderId) &&
        (o.minTerm === undefined || term >= o.minTerm) &&
        statuses.every((s) => s && s.leader_id === leaderId && s.term === term) &&
        (!leader || leader.current_role === 'leader');
      if (!agreed) throw new Error(view);
      return { leaderId, leaderUrl: statuses[0].leader_address as string, term, statuses } as AgreedLeader;
    },
    o.timeoutMs ?? 30_000,
    o.everyMs ?? 50,
  );
}

/**
 * Waits until every master in `urls` has applied the same index, at least `atLeast` (the
 * leader's commit index at some moment), and returns that index.
 */
export async function untilConverged(
  urls: readonly string[],
  atLeast = 0,
  timeoutMs = 30_000,
  headers: Record<string, string> = {},
): Promise<number> {
  return waitFor(
    `${urls.join(', ')} to apply the same log (at least up to ${atLeast})`,
    async () => {
      const statuses = await Promise.all(urls.map((u) => clusterStatus(u, 2000, headers)));
      const silent = urls.filter((_, i) => !statuses[i]);
      if (silent.length) throw new Error(`no status from ${silent.join(', ')}`);
      const applied = statuses.map((s) => s.last_applied as number);
      const commits = statuses.map((s) => s.commit_index as number);
      const target = Math.max(atLeast, ...commits);
      if (applied.every((a) => a === applied[0] && a >= target)) return applied[0];
      // Said on a timeout: where each master stands.
      throw new Error(
        `applied ${applied.join(' / ')}, committed ${commits.join(' / ')}, roles ${statuses.map((s) => `${s.current_node_id}:${s.current_role}`).join(' ')}`,
      );
    },
    timeoutMs,
    100,
  );
}

/**
 * Submits as a client that retries does: 503 (no leader yet, or leadership moving) and
 * connection errors are retried for up to `forMs`, with one Idempotency-Key throughout.
 */
export async function submitRetrying(url: string, job: unknown, forMs = 10_000): Promise<string> {
  const key = `it-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const r = await waitFor(
    `POST ${url}/api/jobs to be accepted`,
    async () => {
      const a = await http('POST', `${url}/api/jobs`, job, { 'Idempotency-Key': key });
      if (a.status === 201 || a.status === 200) return a;
      if (a.status === 0 || a.status === 503) throw new Error(`${a.status} ${a.text}${a.error ?? ''}`);
      throw new GiveUp(`POST ${url}/api/jobs -> ${a.status} ${a.text}`);
    },
    forMs,
    50,
  );
  return (r.json as { job_id: string }).job_id;
}

/** A job as POST /api/jobs takes it. */
export interface JobSubmission {
  name: string;
  type: string;
  config?: unknown;
}

/**
 * Submits `job` once and returns its id; any answer but 201 with a job_id fails the spec,
 * saying what the master answered.
 */
export async function submitJob(
  url: string,
  job: JobSubmission,
  headers: Record<string, string> = {},
  timeoutMs?: number,
): Promise<string> {
  const r = await http('POST', `${url}/api/jobs`, job, headers, timeoutMs);
  if (r.status !== 201 || typeof r.json?.job_id !== 'string') {
    throw new Error(`POST ${url}/api/jobs answered ${r.status}, not 201 with a job_id: ${r.error ?? r.text}`);
  }
  return r.json.job_id as string;
}

/** A job whose config holds about `bytes` of numbers: a large log entry, and state a snapshot or a backup carries. */
export const bigJob = (name: string, bytes: number) => ({
  name,
  type: 'batch',
  config: {
    operation: 'multiply',
    factor: 2,
    task_count: 1,
    data: Array.from({ length: bytes / 8 }, (_, i) => 1_000_000 + i),
  },
});
