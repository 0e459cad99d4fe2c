// The trust boundary, fuzzed against real processes: three masters and two workers with
// JWT_SECRET (addresses 127.0.0.151–159 belong to this file). For FUZZ_SECONDS (default 20)
// lanes run side by side: random and mutated frames on the three sockets (the peer stream,
// worker channels, stream links) with every role's token and garbage ones; random paths,
// methods, queries and bodies on every route of masters and workers; and a client
// submitting real jobs with an Idempotency-Key. Every answer must be `{error: {code,
// message}}` when it refuses (never a 500, never a dropped connection), a socket must be
// refused at its upgrade when the token's role may not open it. Afterwards every process is
// alive, every master SIGKILLed and restarted on its data dir applies its whole log, the
// masters agree, every job the cluster acknowledged completes, and weir_refused_frames_total
// shows the frames reached the decoders.
//
// FUZZ_SEED replays a run's draws (what the cluster answers still depends on timing); each
// failure names the seed, in the name of the suite.
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, type RawData } from 'ws';
import {
  Cluster,
  GiveUp,
  freePorts,
  http,
  sleep,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';
import {
  MASTER_ROUTES,
  WORKER_ROUTES,
  Rng,
  httpRequest as fuzzRequest,
  linkFrame,
  mutate,
  mutateBytes,
  peerFrame,
  randomBytes,
  randomId,
  rawHttp,
  hasStaleTerms,
  staleTerms,
  toMasterFrame,
  type FuzzRequest,
  type IdPools,
  type RaftView,
  type Ref,
  type StreamTarget,
} from './generators.js';
import { bearer, signedToken } from '../helpers/tokens.js';

const SECRET = 'boundary-fuzz-secret-0123456789abcdef';
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : Math.floor(Math.random() * 2 ** 32);
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 20);
const env = { JWT_SECRET: SECRET };
const HOSTS = ['127.0.0.151', '127.0.0.152', '127.0.0.153'];
/** Node ids: c*256+d of each master's address. */
const IDS = [151, 152, 153];
const WORKER_HOSTS = ['127.0.0.154', '127.0.0.155'];
/** Ids of no master, for the membership routes (an admin may add and remove those). */
const FAKE_MEMBERS = [9001, 9002];
const STRANGER = 999;

/**
 * A timer this late means the fuzzer's own process was starved (a busy machine): a socket that
 * seemed silent meanwhile may have answered, so it is not judged.
 */
const STALLED_MS = 2_000;

/** When the fuzzer's own event loop last stood still for longer than STALLED_MS. */
let lastStall = 0;
function watchStalls(): () => void {
  let prev = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - prev > STALLED_MS) lastStall = now;
    prev = now;
  }, 100);
  return () => clearInterval(timer);
}
/** Whether the fuzzer stood still since `t0`, or noticed a timer set at `t0` for `ms` that late. */
const stalledSince = (t0: number, ms: number) => lastStall >= t0 || Date.now() - t0 - ms > STALLED_MS;

/** Examples kept of each kind of violation, each with the request that caused it. */
const EXAMPLES = 3;

const c = new Cluster('boundary-fuzz');
const masters: MasterProc[] = [];
const workers: WorkerProc[] = [];
let peers = '';
let ports: number[] = [];

// ---------------------------------------------------------------- tokens

/** A token signed with the cluster's secret (or `o.secret`), valid past the end of the run unless `o.exp` says otherwise. */
const jwt = (claims: Record<string, unknown>, o: { exp?: number | false; secret?: string } = {}) =>
  signedToken(o.secret ?? SECRET, claims, {
    subject: 'fuzz',
    exp: o.exp ?? Math.floor(Date.now() / 1000) + SECONDS + 900,
  });
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

type TokenKind =
  | 'none'
  | 'garbage'
  | 'client'
  | 'admin'
  | 'worker-bare'
  | 'worker-other'
  | 'worker-own'
  | 'peer-member'
  | 'peer-stranger'
  | 'peer-bare';

interface Tokens {
  client: string;
  admin: string;
  workerBare: string;
  workerOther: string;
  peerBare: string;
  peerStranger: string;
  peerOf: Map<number, string>;
  workerOf: Map<string, string>;
  /** Whole Authorization values that name nobody. */
  garbage: string[];
}
let tokens: Tokens;

async function mintTokens(): Promise<Tokens> {
  const peerOf = new Map<number, string>();
  for (const id of [...IDS, ...FAKE_MEMBERS]) peerOf.set(id, await jwt({ role: 'peer', node_id: id }));
  const nowS = Math.floor(Date.now() / 1000);
  return {
    client: await jwt({}),
    admin: await jwt({ role: 'admin' }),
    workerBare: await jwt({ role: 'worker' }),
    workerOther: await jwt({ role: 'worker', worker_id: 'w-nobody' }),
    peerBare: await jwt({ role: 'peer' }),
    peerStranger: await jwt({ role: 'peer', node_id: STRANGER }),
    peerOf,
    workerOf: new Map(),
    garbage: [
      'Bearer',
      'Bearer ',
      'Bearer x.y.z',
      'Basic Zm9vOmJhcg==',
      `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ role: 'admin', exp: nowS + 600 })}.`,
      `Bearer ${await jwt({ role: 'admin' }, { secret: 'another-secret-0123456789abcdef-xx' })}`,
      `Bearer ${await jwt({ role: 'admin' }, { exp: nowS - 60 })}`,
      `Bearer ${await jwt({ role: 'admin' }, { exp: false })}`,
      `Bearer ${await jwt({ role: 'root' })}`,
      `Bearer ${await jwt({ role: 'worker', worker_id: 5 })}`,
      `Bearer ${await jwt({ role: 'peer', node_id: 'x' })}`,
      `Bearer ${'a'.repeat(8_000)}`,
    ],
  };
}

/** The Authorization header for a kind of token; `own` names the worker or master it speaks for. */
function authOf(rng: Rng, kind: TokenKind, own: { worker?: string; node?: number } = {}): string | undefined {
  switch (kind) {
    case 'none':
      return undefined;
    case 'garbage':
      return rng.pick(tokens.garbage);
    case 'client':
      return `Bearer ${tokens.client}`;
    case 'admin':
      return `Bearer ${tokens.admin}`;
    case 'worker-bare':
      return `Bearer ${tokens.workerBare}`;
    case 'worker-other':
      return `Bearer ${tokens.workerOther}`;
    case 'worker-own':
      return `Bearer ${tokens.workerOf.get(own.worker ?? rng.pick([...tokens.workerOf.keys()]))}`;
    case 'peer-member':
      return `Bearer ${tokens.peerOf.get(own.node ?? rng.pick(IDS))}`;
    case 'peer-stranger':
      return `Bearer ${tokens.peerStranger}`;
    case 'peer-bare':
      return `Bearer ${tokens.peerBare}`;
  }
}

const ALL_KINDS: readonly TokenKind[] = [
  'none',
  'garbage',
  'client',
  'admin',
  'worker-bare',
  'worker-other',
  'worker-own',
  'peer-member',
  'peer-stranger',
  'peer-bare',
];
const admin = () => bearer(tokens.admin);

// ---------------------------------------------------------------- what the run saw

/** Violations by what went wrong (numbers and ids left out), with a few of the requests that caused them. */
const violations = new Map<string, { count: number; examples: string[] }>();
function violation(what: string, request: string): void {
  const key = what
    .replace(/\b(w|job)-[\w-]+/g, '$1-…')
    .replace(/\d{2,}/g, 'N')
    .slice(0, 160);
  let v = violations.get(key);
  if (!v) violations.set(key, (v = { count: 0, examples: [] }));
  v.count++;
  if (v.examples.length < EXAMPLES) v.examples.push(`${what.slice(0, 300)} ← ${request.slice(0, 600)}`);
}
const violationCount = () => [...violations.values()].reduce((n, v) => n + v.count, 0);

/** Outcomes by what was sent: `peer: closed 1007` → count. */
const tally = new Map<string, number>();
const count = (key: string, n = 1) => tally.set(key, (tally.get(key) ?? 0) + n);

/** Jobs the cluster acknowledged (201 or 200 with a job_id) to the submitting client. */
const acked: string[] = [];
const pools = {
  victimJobs: [] as string[],
  workers: [] as string[],
  uploads: [] as string[],
  /** Tasks the masters really assigned to the fuzzer's own workers. */
  assigned: [] as Ref[],
};
const streams: StreamTarget[] = [];
const realWorkerIds: string[] = [];
let baseline: Record<string, number> = {};

const idPools = (): IdPools => ({
  readJobs: [...acked, ...streams.map((s) => s.job_id)],
  victimJobs: pools.victimJobs,
  workers: [...realWorkerIds, ...pools.workers],
  uploads: pools.uploads,
  fakeMembers: FAKE_MEMBERS,
  realMembers: IDS,
});

const pushCapped = <T>(list: T[], item: T, max = 500) => {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
};

// ---------------------------------------------------------------- helpers

async function statusOf(url: string): Promise<Json | undefined> {
  const r = await http('GET', `${url}/cluster/status`, undefined, admin(), 3000);
  return r.status === 200 ? r.json : undefined;
}

/** `weir_refused_frames_total{socket}` summed over `urls`. */
async function refusedFrames(urls: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const url of urls) {
    const r = await http('GET', `${url}/metrics`);
    for (const m of r.text.matchAll(/^weir_refused_frames_total\{socket="(\w+)"\} (\d+)/gm)) {
      out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    }
  }
  return out;
}

const urls = () => masters.map((m) => m.url);
const wsOf = (url: string) => url.replace(/^http/, 'ws');

async function startMaster(i: number, o: { dataDir?: string } = {}): Promise<MasterProc> {
  const m = await c.master(HOSTS[i]!, {
    port: ports[i]!,
    env,
    args: ['--peers', peers],
    ...(o.dataDir ? { dataDir: o.dataDir } : {}),
  });
  masters[i] = m;
  return m;
}

/** Until every master names one leader in one term, and that leader says it leads. */
async function untilOneLeader(timeoutMs = 30_000): Promise<number> {
  return waitFor(
    'the masters to agree on a leader',
    async () => {
      for (const m of masters) if (m.exitCode !== undefined) throw new GiveUp(`${m.name} exited with ${m.exitCode}`);
      const all = await Promise.all(urls().map(statusOf));
      const leader = all[0]?.leader_id;
      const agreed =
        leader &&
        all.every((s) => s && s.leader_id === leader && s.term === all[0].term) &&
        all.some((s) => s.current_node_id === leader && s.current_role === 'leader');
      if (!agreed)
        throw new Error(all.map((s) => (s ? `${s.current_node_id}:${s.current_role}@${s.term}` : '-')).join(' '));
      return leader as number;
    },
    timeoutMs,
    50,
  );
}

/** Until every master has applied the same index, at least every commit index seen (and `atLeast`). */
async function untilConverged(atLeast = 0, timeoutMs = 30_000): Promise<number> {
  return waitFor(
    `the masters to apply the same log (at least up to ${atLeast})`,
    async () => {
      const all = await Promise.all(urls().map(statusOf));
      if (all.some((s) => !s)) throw new Error('a master does not answer /cluster/status');
      const applied = all.map((s) => s.last_applied as number);
      const target = Math.max(atLeast, ...all.map((s) => s.commit_index as number));
      if (applied.every((a) => a === applied[0] && a >= target)) return applied[0]!;
      throw new Error(`applied ${applied.join(' / ')}, committed ${all.map((s) => s.commit_index).join(' / ')}`);
    },
    timeoutMs,
    100,
  );
}

/** Every job a master holds, read from that master's own state. */
async function jobsOn(url: string): Promise<Map<string, Json>> {
  const out = new Map<string, Json>();
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const q: string = cursor ? `&cursor=${cursor}` : '';
    const r = await http('GET', `${url}/api/jobs?limit=1000&consistency=stale${q}`, undefined, admin());
    if (r.status !== 200) throw new Error(`GET ${url}/api/jobs -> ${r.status} ${r.text.slice(0, 200)}`);
    for (const j of r.json.jobs) out.set(j.job_id, j);
    cursor = r.json.next_cursor;
    if (!cursor) break;
  }
  return out;
}

// ---------------------------------------------------------------- sockets

interface SocketRun {
  url: string;
  headers: Record<string, string>;
  /** The next frame to send (built when it is sent, from what the run knows by then). */
  next: (i: number) => { bytes: Buffer; text: boolean };
  frames: number;
  gapMs: number;
  holdMs: number;
  onMessage?: (data: Buffer) => void;
}

/**
 * Opens a socket, sends frames, and says how it ended: `refused S` at the upgrade (the
 * answer's body checked too), `closed C` by the server, `open` still after the frames and a
 * while, `error …` for no answer at all, `hang`.
 */
function runSocket(r: SocketRun): Promise<{ outcome: string; sent: number; body?: string }> {
  return new Promise((resolve) => {
    let done = false;
    let sent = 0;
    let opened = false;
    let error = '';
    const finish = (outcome: string, body?: string) => {
      if (done) return;
      done = true;
      clearTimeout(hang);
      resolve({ outcome, sent, ...(body !== undefined ? { body } : {}) });
    };
    const ws = new WebSocket(r.url, { headers: r.headers, handshakeTimeout: 10_000, maxPayload: 64 * 1024 * 1024 });
    const t0 = Date.now();
    const hang = setTimeout(() => {
      const w = ws as unknown as { _closeFrameReceived?: boolean; _closeFrameSent?: boolean };
      // This process stood still: what the socket did meanwhile is unknown.
      finish(
        stalledSince(t0, 20_000)
          ? 'stalled'
          : `hang (opened ${opened}, state ${ws.readyState}, ${sent} sent, ${ws.bufferedAmount} buffered, close frame received ${w._closeFrameReceived} sent ${w._closeFrameSent})`,
      );
      ws.terminate();
    }, 20_000);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (body += s.slice(0, 10_000)));
      res.on('end', () => {
        finish(`refused ${res.statusCode}`, body);
        ws.terminate();
      });
      res.on('error', () => finish(`refused ${res.statusCode}`, body));
    });
    ws.on('open', () => {
      opened = true;
      void (async () => {
        for (let i = 0; i < r.frames && ws.readyState === WebSocket.OPEN; i++) {
          let f;
          try {
            f = r.next(i);
          } catch (err) {
            violation(`the fuzzer itself failed: ${(err as Error).stack}`, `a frame for ${r.url}`);
            break;
          }
          ws.send(f.bytes, { binary: !f.text });
          sent++;
          await sleep(r.gapMs);
        }
        await sleep(r.holdMs);
        if (ws.readyState === WebSocket.OPEN) {
          finish('open');
          ws.close(1000);
        }
      })();
    });
    ws.on('message', (data: RawData) => r.onMessage?.(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)));
    ws.on('error', (err) => (error = err.message));
    ws.on('close', (code) => finish(opened || !error ? `closed ${code}` : `error ${error}`));
  });
}

const isCatalogue = (json: unknown): boolean => {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return (
    !!e &&
    typeof e.code === 'string' &&
    typeof e.message === 'string' &&
    Object.keys(json as object).length === 1 &&
    Object.keys(e).length === 2
  );
};
const parse = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * What a socket's outcome may be: `refused` (a 4xx at the upgrade: the role may not open
 * it), `1008` (opened, then closed for the sender it names), or anything but a failure.
 */
type Expect = 'refused' | '1008' | 'any';

function judgeSocket(expect: Expect, outcome: string, body: string | undefined): string | undefined {
  const [what, arg] = outcome.split(' ') as [string, string | undefined];
  const code = Number(arg);
  if (what === 'hang') return `no end within 20 s: ${outcome}`;
  if (what === 'stalled') return undefined;
  if (what === 'error') return `no answer to the upgrade: ${outcome}`;
  if (what === 'refused') {
    if (code >= 500) return `upgrade refused with ${code}: ${body}`;
    if (!isCatalogue(parse(body ?? ''))) return `upgrade refused with ${code} and a body not in the catalogue: ${body}`;
    return undefined;
  }
  if (expect === 'refused') return `opened for a token whose role may not (${outcome})`;
  if (what === 'closed' && (code === 1006 || code === 1011)) return `closed with ${code}`;
  if (expect === '1008' && outcome !== 'closed 1008') return `a stranger's link ${outcome} instead of closed 1008`;
  return undefined;
}

const recordsCodec = new Packr({ useRecords: true, mapsAsObjects: true });
const plainCodec = new Packr({ useRecords: false, mapsAsObjects: true });

/**
 * One frame's bytes from a valid value: as it is, mutated, its bytes mutated, or noise.
 * `fix` runs on the value after mutation; mutated bytes that still decode to a value `fix`
 * would change are sent unmutated instead (member frames keep stale terms).
 */
function frameBytes(
  rng: Rng,
  valid: unknown,
  records: boolean,
  fix?: { apply: (v: unknown) => unknown; holds: (v: unknown) => boolean },
): { bytes: Buffer; text: boolean; how: string } {
  const how = rng.weighted([
    [3, 'valid'],
    [5, 'mutated'],
    [2, 'bytes'],
    [1, 'noise'],
  ] as const);
  const text = rng.chance(0.03);
  if (how === 'noise') return { bytes: randomBytes(rng), text, how };
  const mutated = how === 'mutated' ? mutate(rng, valid, true) : valid;
  const value = fix ? fix.apply(mutated) : mutated;
  let bytes: Buffer;
  try {
    bytes = (records && rng.chance(0.8) ? recordsCodec : plainCodec).pack(value);
  } catch {
    bytes = randomBytes(rng);
  }
  if (how !== 'bytes') return { bytes, text, how };
  const changed = mutateBytes(rng, bytes);
  if (fix) {
    let back: unknown;
    try {
      back = recordsCodec.unpack(changed);
    } catch {
      return { bytes: changed, text, how };
    }
    if (!fix.holds(back)) return { bytes, text, how: 'valid' };
  }
  return { bytes: changed, text, how };
}

/** The receiver's term and log, refreshed at most every second (terms only grow: stale stays stale). */
const views = new Map<string, { at: number; view: RaftView }>();
async function raftView(m: MasterProc): Promise<RaftView> {
  const cached = views.get(m.url);
  if (cached && Date.now() - cached.at < 1000) return cached.view;
  const s = await statusOf(m.url);
  const view: RaftView = s
    ? { term: s.term, index: s.last_applied, commit: s.commit_index, ids: IDS }
    : (cached?.view ?? { term: 1, index: 1, commit: 1, ids: IDS });
  views.set(m.url, { at: Date.now(), view });
  return view;
}

const EXPECT_FOR_PEER: Record<TokenKind, Expect> = {
  none: 'refused',
  garbage: 'refused',
  client: 'refused',
  admin: 'refused',
  'worker-bare': 'refused',
  'worker-other': 'refused',
  'worker-own': 'refused',
  'peer-member': 'any',
  'peer-stranger': '1008',
  'peer-bare': '1008',
};

async function fuzzPeerStream(rng: Rng): Promise<string> {
  const i = rng.int(0, masters.length - 1);
  const m = masters[i]!;
  const kind = rng.weighted<TokenKind>([
    [8, 'peer-member'],
    [1, 'peer-stranger'],
    [1, 'peer-bare'],
    ...ALL_KINDS.filter((k) => !k.startsWith('peer')).map((k) => [0.5, k] as const),
  ]);
  const from = kind === 'peer-member' ? rng.pick(IDS) : kind === 'peer-stranger' ? STRANGER : rng.pick(IDS);
  const view = await raftView(m);
  const auth = authOf(rng, kind, { node: from });
  const hows: string[] = [];
  const r = await runSocket({
    url: `${wsOf(m.url)}/raft/stream`,
    headers: {
      ...(auth ? { authorization: auth } : {}),
      ...(rng.chance(0.5) ? { 'x-weir-node-id': String(from) } : {}),
    },
    frames: rng.int(1, 4),
    gapMs: rng.int(0, 20),
    holdMs: rng.int(50, 300),
    next: () => {
      const f = frameBytes(
        rng,
        peerFrame(rng, from, IDS[i]!, view),
        true,
        kind === 'peer-member'
          ? { apply: (v) => staleTerms(v, view.term), holds: (v) => hasStaleTerms(v, view.term) }
          : undefined,
      );
      hows.push(f.how);
      return f;
    },
  });
  const bad = judgeSocket(EXPECT_FOR_PEER[kind], r.outcome, r.body);
  if (bad) violation(`peer stream: ${bad}`, `${m.url}/raft/stream as ${kind} (node ${from}), frames ${hows.join(',')}`);
  return `peer ${kind}: ${r.outcome}`;
}

/** A worker registered by the fuzzer for one channel of its own (a worker's channel closing declares it dead). */
async function decoy(rng: Rng): Promise<string | undefined> {
  const m = rng.pick(masters);
  const t0 = Date.now();
  const r = await http(
    'POST',
    `${m.url}/api/workers/register`,
    { address: '127.0.0.159:1', max_tasks: 1 },
    bearer(tokens.workerBare),
  );
  if (r.status !== 201) {
    // In an election a master has no leader to register with, and says so.
    if (r.status === 503 && r.json?.error?.code === 'no_leader') count('channel decoy: no leader to register with');
    else if (r.status === 0 && stalledSince(t0, 15_000)) count('channel decoy: the fuzzer stalled');
    else violation(`registering a worker: ${r.status} ${r.text.slice(0, 200)}`, `POST ${m.url}/api/workers/register`);
    return undefined;
  }
  const id = r.json.worker_id as string;
  pushCapped(pools.workers, id, 100);
  tokens.workerOf.set(id, await jwt({ role: 'worker', worker_id: id }));
  return id;
}

/** The master that led when last asked: only the leader reads a channel's frames (a follower closes it, 4503). */
let leaderUrl: string | undefined;

async function fuzzWorkerChannel(rng: Rng): Promise<string> {
  const leader = masters.find((x) => x.url === leaderUrl);
  const m = leader && rng.chance(0.75) ? leader : rng.pick(masters);
  const target = rng.weighted([
    [3, 'real'],
    [5, 'decoy'],
    [1, 'unknown'],
    [1, 'badpath'],
  ] as const);
  let workerId: string;
  let kind: TokenKind;
  let expect: Expect;
  let own: string | undefined;
  if (target === 'real') {
    // A real worker's own token or an admin's would take its channel over: only tokens that
    // must be refused are tried there (the decoys take the rest).
    workerId = rng.pick(realWorkerIds);
    kind = rng.pick<TokenKind>([
      'none',
      'garbage',
      'client',
      'worker-bare',
      'worker-other',
      'peer-member',
      'peer-stranger',
    ]);
    expect = 'refused';
  } else if (target === 'decoy') {
    const id = await decoy(rng);
    if (!id) return 'channel decoy: not registered';
    workerId = id;
    kind = rng.weighted<TokenKind>([
      [6, 'worker-own'],
      [2, 'admin'],
      [1, 'worker-other'],
      [1, rng.pick(ALL_KINDS.filter((k) => k !== 'worker-own' && k !== 'admin'))],
    ]);
    own = id;
    expect = kind === 'worker-own' || kind === 'admin' ? 'any' : 'refused';
  } else if (target === 'unknown') {
    workerId = randomId(rng, 'w-');
    kind = rng.pick<TokenKind>(['worker-own', 'admin', 'client']);
    tokens.workerOf.set(workerId, await jwt({ role: 'worker', worker_id: workerId }));
    own = workerId;
    expect = kind === 'client' ? 'refused' : 'any';
  } else {
    workerId = rng.pick(['..', '%2e%2e', 'a%2Fb', 'x'.repeat(65), '%00', '%E0%A4%A', 'w-%20x', '']);
    kind = rng.pick(ALL_KINDS);
    expect = 'any';
  }
  const auth = authOf(rng, kind, { ...(own ? { worker: own } : {}) });
  const hows: string[] = [];
  const r = await runSocket({
    url: `${wsOf(m.url)}/api/workers/${workerId}/channel`,
    headers: auth ? { authorization: auth } : {},
    frames: rng.int(1, 4),
    gapMs: rng.int(10, 60),
    holdMs: rng.int(50, 300),
    onMessage: (data) => {
      try {
        const msg = recordsCodec.unpack(data) as { t?: string; tasks?: Ref[] };
        if (msg.t) count(`channel: a master sent ${msg.t}`);
        if (msg.t === 'assign')
          for (const t of msg.tasks ?? [])
            pushCapped(pools.assigned, { job_id: t.job_id, idx: t.idx, attempt: t.attempt }, 200);
      } catch {
        count('channel: a frame from a master the fuzzer could not decode');
      }
    },
    next: (n) => {
      // A worker says hello first; a fuzzer with the worker's token mostly does too.
      const valid =
        n === 0 && rng.chance(0.7)
          ? { t: 'hello', running: [], unacked: [] }
          : toMasterFrame(rng, pools.assigned, [...acked, ...pools.victimJobs]);
      const f = frameBytes(rng, valid, true);
      hows.push(`${String(valid.t)}:${f.how}`);
      return f;
    },
  });
  const bad = judgeSocket(expect, r.outcome, r.body);
  if (bad)
    violation(
      `worker channel: ${bad}`,
      `${m.url}/api/workers/${workerId}/channel as ${kind}, frames ${hows.join(',')}`,
    );
  return `channel ${target} ${kind}: ${r.outcome}`;
}

const EXPECT_FOR_LINK: Record<TokenKind, Expect> = {
  none: 'refused',
  garbage: 'refused',
  client: 'refused',
  admin: 'any',
  'worker-bare': 'any',
  'worker-other': 'any',
  'worker-own': 'any',
  'peer-member': 'refused',
  'peer-stranger': 'refused',
  'peer-bare': 'refused',
};

async function fuzzStreamLink(rng: Rng): Promise<string> {
  const w = rng.pick(workers);
  const kind = rng.weighted<TokenKind>([
    [4, 'worker-own'],
    [2, 'worker-bare'],
    [2, 'worker-other'],
    [1, 'admin'],
    ...ALL_KINDS.filter((k) => !k.startsWith('worker') && k !== 'admin').map((k) => [0.4, k] as const),
  ]);
  const auth = authOf(rng, kind, { worker: rng.pick(realWorkerIds) });
  const hows: string[] = [];
  const r = await runSocket({
    url: `${wsOf(w.url)}/api/stream/link`,
    headers: auth ? { authorization: auth } : {},
    frames: rng.int(1, 4),
    gapMs: rng.int(0, 20),
    holdMs: rng.int(50, 300),
    next: () => {
      const valid = linkFrame(rng, streams, [...acked, ...pools.victimJobs]);
      const f = frameBytes(rng, valid, false);
      hows.push(`${String(valid.t)}:${f.how}`);
      return f;
    },
  });
  const bad = judgeSocket(EXPECT_FOR_LINK[kind], r.outcome, r.body);
  if (bad) violation(`stream link: ${bad}`, `${w.url}/api/stream/link as ${kind}, frames ${hows.join(',')}`);
  return `link ${kind}: ${r.outcome}`;
}

// ---------------------------------------------------------------- HTTP

interface Answer {
  status: number;
  type: string;
  text: string;
  error?: string;
}

/** One request with its path and bytes exactly as given (no client-side normalising). */
function send(url: string, req: FuzzRequest): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve) => {
    // A connection of its own (a reused one may be closed under a request by the server's idle
    // timeout), kept alive as clients keep them: a server closes a `Connection: close` one as it
    // answers, and a body still being sent then breaks off before the answer is read.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const t0 = Date.now();
    let settled = false;
    const done = (a: Answer) => {
      if (settled) return;
      settled = true;
      agent.destroy();
      resolve(a);
    };
    let r;
    try {
      r = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          method: req.method,
          path: req.path,
          // Without a length, Node sends a DELETE's or OPTIONS's body unframed, as the next request.
          headers:
            req.body === undefined
              ? req.headers
              : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
          timeout: 20_000,
          agent,
        },
        (res) => {
          let text = '';
          let cut = false;
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            if (text.length < 4_000_000) text += s;
            else cut = true;
          });
          // A body too long to keep is not judged as JSON (a streaming job's rows grow all run long).
          res.on('end', () =>
            done({ status: res.statusCode ?? 0, type: cut ? 'cut' : String(res.headers['content-type'] ?? ''), text }),
          );
          res.on('error', (err) => done({ status: res.statusCode ?? 0, type: '', text, error: err.message }));
        },
      );
    } catch (err) {
      // The client would not send it (a character Node refuses in a path or header).
      return done({ status: -1, type: '', text: '', error: (err as Error).message });
    }
    r.on('timeout', () => {
      if (stalledSince(t0, 20_000)) done({ status: -1, type: '', text: '', error: 'the fuzzer stalled' });
      else done({ status: 0, type: '', text: '', error: 'no answer within 20 s' });
      r.destroy();
    });
    r.on('error', (err) => done({ status: 0, type: '', text: '', error: err.message }));
    r.end(req.body);
  });
}

/** Bytes over a bare TCP connection; the answer as the server wrote it (until it closes). */
function sendRaw(url: string, bytes: Buffer): Promise<{ text: string; stalled: boolean }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let stalled = false;
    const t0 = Date.now();
    const sock = connect({ host: u.hostname, port: Number(u.port) });
    const timer = setTimeout(() => {
      stalled = stalledSince(t0, 10_000);
      sock.destroy();
    }, 10_000);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('utf8'), stalled });
    });
  });
}

/** The answers in what a server wrote back, each framed by its Content-Length. */
function responses(text: string): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  let rest = text;
  while (out.length < 5) {
    const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n/.exec(rest);
    if (!m) break;
    const length = /^content-length:\s*(\d+)/im.exec(m[2]!);
    const start = m[0].length;
    const end = length ? start + Number(length[1]) : rest.length;
    out.push({ status: Number(m[1]), body: rest.slice(start, end) });
    rest = rest.slice(end);
  }
  return out;
}

const decoded = (path: string): string | undefined => {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
};

function judgeAnswer(req: FuzzRequest, a: Answer): string | undefined {
  // A request Node could not parse is answered with a body; the client, told it sent a HEAD,
  // reads none and trips on it. The bytes are checked by the raw requests instead.
  if (a.status === 0 && req.method === 'HEAD' && a.error?.startsWith('Parse Error')) return undefined;
  if (a.status === 0) return `no answer: ${a.error}`;
  // Not a refusal: a load balancer's answer, by its status.
  if (a.status === 503 && decoded(req.path.split(/[?#;]/)[0]!) === '/ready' && (parse(a.text) as Json)?.ready === false)
    return undefined;
  if (a.status === 500) return `500: ${a.text.slice(0, 300)}`;
  if (a.status >= 400) {
    if (req.method === 'HEAD') return undefined;
    const json = parse(a.text);
    if (!isCatalogue(json)) return `${a.status} not in the catalogue shape: ${a.text.slice(0, 300)}`;
    if ((json as { error: { code: string } }).error.code === 'internal') return `${a.status} internal`;
    return undefined;
  }
  if (a.status < 200 || a.status >= 300) return `unexpected status ${a.status}`;
  if (a.error) return `the answer broke off: ${a.error}`;
  if (req.method !== 'HEAD' && a.type.startsWith('application/json') && parse(a.text) === undefined)
    return `2xx with a JSON content type and a body that is not JSON: ${a.text.slice(0, 200)}`;
  return undefined;
}

const describeRequest = (url: string, req: FuzzRequest) => {
  const body =
    req.body === undefined
      ? ''
      : ` body(${req.body.length}${typeof req.body === 'string' ? `): ${req.body.slice(0, 200)}` : ' bytes)'}`;
  return `${req.method} ${url}${req.path.slice(0, 300)} ${JSON.stringify({ ...req.headers, authorization: req.headers.authorization?.slice(0, 40) })}${body}`;
};

async function fuzzHttp(rng: Rng): Promise<string> {
  const onWorker = rng.chance(0.25);
  const node = onWorker ? rng.pick(workers) : rng.pick(masters);
  const kind = rng.pick(ALL_KINDS);
  const own = { worker: rng.pick(realWorkerIds), node: rng.pick([...IDS, ...FAKE_MEMBERS]) };
  const req = fuzzRequest(
    rng,
    onWorker ? WORKER_ROUTES : MASTER_ROUTES,
    idPools(),
    authOf(rng, kind, own),
    kind === 'admin',
  );
  if (rng.chance(0.04)) {
    const raw = rawHttp(rng, req.path.split('?')[0]!.slice(0, 200));
    const { text, stalled } = await sendRaw(node.url, raw);
    if (stalled) return 'http raw: the fuzzer stalled';
    const shown = `raw ${node.url}: ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`;
    const answers = responses(text);
    if (!answers.length)
      violation(`no HTTP answer to a malformed request: ${JSON.stringify(text.slice(0, 100))}`, shown);
    // A request refused before its body was read may be followed by a second answer, to that body.
    for (const a of answers) {
      if (a.status >= 400 && !isCatalogue(parse(a.body)))
        violation(`${a.status} to a malformed request, not in the catalogue shape: ${a.body.slice(0, 200)}`, shown);
    }
    return `http raw: ${answers[0]?.status ?? 'none'}`;
  }
  const a = await send(node.url, req);
  if (a.status === -1) return `http: ${a.error?.startsWith('the fuzzer') ? 'the fuzzer stalled' : 'not sent'}`;
  const bad = judgeAnswer(req, a);
  if (bad) violation(`http: ${bad}`, `as ${kind}: ${describeRequest(node.url, req)}`);
  // What the cluster gave out becomes something to name in later requests.
  const json = a.status >= 200 && a.status < 300 ? (parse(a.text) as Json) : undefined;
  if (json?.job_id && req.method === 'POST') pushCapped(pools.victimJobs, json.job_id as string, 200);
  if (json?.upload_id) pushCapped(pools.uploads, json.upload_id as string, 100);
  if (json?.worker_id && req.path.startsWith('/api/workers/register')) pushCapped(pools.workers, json.worker_id, 100);
  return `http ${onWorker ? 'worker' : 'master'}: ${a.status}`;
}

// ---------------------------------------------------------------- jobs the test waits for

const MULTIPLY = { operation: 'multiply', factor: 2, task_count: 3, data: [1, 2, 3, 4, 5, 6] };

/** Submits like a client that retries: on no answer or a 503, again with the same key. */
async function submitOne(rng: Rng, n: number): Promise<void> {
  const key = `fuzz-${SEED}-${n}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    const m = rng.pick(masters);
    const r = await http(
      'POST',
      `${m.url}/api/jobs`,
      { name: `acked-${n}`, type: 'batch', config: MULTIPLY },
      { ...bearer(tokens.client), 'Idempotency-Key': key },
      20_000,
    );
    if ((r.status === 201 || r.status === 200) && r.json?.job_id) {
      if (!acked.includes(r.json.job_id)) acked.push(r.json.job_id);
      return;
    }
    if (r.status !== 0 && r.status !== 503) {
      violation(`a valid submit refused: ${r.status} ${r.text.slice(0, 200)}`, `POST ${m.url}/api/jobs key ${key}`);
      return;
    }
    count(`submit: ${r.status || r.error} (retried)`);
    await sleep(100);
  }
  violation('a valid submit never acknowledged after 10 tries', `key ${key}`);
}

// ---------------------------------------------------------------- the run

const STREAM_TOPOLOGY = {
  spouts: [{ id: 'gen', type: 'generator', rate: 20, keys: 3, parallelism: 2 }],
  bolts: [
    {
      id: 'win',
      op: 'window',
      aggregate: 'count',
      key: 'key',
      window: { type: 'tumbling', size_ms: 1000 },
      parallelism: 2,
      inputs: [{ from: 'gen', grouping: 'fields', fields: ['key'] }],
    },
    { id: 'out', op: 'collect', inputs: [{ from: 'win', grouping: 'global' }] },
  ],
};

/** What the fuzzer names changes as the cluster works: the streaming job's attempts, the leader. */
async function refreshTargets(): Promise<void> {
  leaderUrl = (await statusOf(masters[0]!.url))?.leader_address ?? leaderUrl;
  for (const s of streams) {
    const r = await http('GET', `${masters[0]!.url}/api/jobs/${s.job_id}/tasks`, undefined, admin());
    if (r.status === 200) s.instances = r.json.tasks.map((t: Json) => ({ idx: t.idx, attempt: t.attempt }));
  }
}

describe(`the trust boundary under fuzzing (FUZZ_SEED=${SEED} FUZZ_SECONDS=${SECONDS})`, () => {
  beforeAll(async () => {
    tokens = await mintTokens();
    ports = await freePorts(HOSTS);
    peers = HOSTS.map((h, i) => `http://${h}:${ports[i]}`).join(',');
    await Promise.all(HOSTS.map((_, i) => startMaster(i)));
    await untilOneLeader();
    for (const h of WORKER_HOSTS) {
      workers.push(await c.worker(h, masters[0]!, { env, maxTasks: 8, token: tokens.admin, masters: urls() }));
    }
    const listed = (await http('GET', `${masters[0]!.url}/api/workers`, undefined, admin())).json.workers as Json[];
    for (const w of workers) {
      const id = listed.find((x) => x.address === w.address)!.worker_id as string;
      realWorkerIds.push(id);
      tokens.workerOf.set(id, await jwt({ role: 'worker', worker_id: id }));
    }
    const s = await http(
      'POST',
      `${masters[0]!.url}/api/jobs`,
      { name: 'fuzz-stream', type: 'streaming', config: { topology: STREAM_TOPOLOGY } },
      bearer(tokens.client),
    );
    expect(s.status, s.text).toBe(201);
    streams.push({ job_id: s.json.job_id, instances: [] });
    await waitFor('the streaming job’s five instances to run', async () => {
      await refreshTargets();
      const r = await http('GET', `${masters[0]!.url}/api/jobs/${s.json.job_id}`, undefined, admin());
      return r.json?.progress?.running === 5;
    });
    baseline = {
      ...Object.fromEntries(Object.entries(await refusedFrames(urls())).map(([k, v]) => [`m:${k}`, v])),
      ...Object.fromEntries(
        Object.entries(await refusedFrames(workers.map((w) => w.url))).map(([k, v]) => [`w:${k}`, v]),
      ),
    };
  });
  afterAll(() => c.cleanup());

  let fuzzedMs = 0;

  it(
    `for ${SECONDS} s, frames on every socket and requests on every route get refusals in the catalogue, sockets open only for their roles, and a client's jobs are acknowledged`,
    async () => {
      const root = new Rng(SEED);
      // The fuzzer's own stalls, to tell a slow cluster from a starved fuzzer.
      const loop = monitorEventLoopDelay({ resolution: 20 });
      loop.enable();
      const unwatch = watchStalls();
      const termBefore = (await statusOf(masters[0]!.url))?.term;
      const t0 = Date.now();
      const deadline = t0 + SECONDS * 1000;
      const lane = async (rng: Rng, round: (rng: Rng) => Promise<string>, max: number) => {
        for (let n = 0; n < max && Date.now() < deadline; n++) {
          try {
            count(await round(rng));
          } catch (err) {
            violation(`the fuzzer itself failed: ${(err as Error).stack}`, 'a lane');
          }
        }
      };
      const sockets = (rng: Rng) =>
        rng.weighted<(r: Rng) => Promise<string>>([
          [4, fuzzPeerStream],
          [4, fuzzWorkerChannel],
          [3, fuzzStreamLink],
        ])(rng);
      const submitter = async (rng: Rng) => {
        for (let n = 0; n < 10_000 && Date.now() < deadline; n++) {
          await submitOne(rng, n);
          if (n % 8 === 0) await refreshTargets();
          await sleep(rng.int(150, 400));
        }
      };
      await Promise.all([
        lane(root.fork(), sockets, 100_000),
        lane(root.fork(), sockets, 100_000),
        lane(root.fork(), sockets, 100_000),
        lane(root.fork(), fuzzHttp, 1_000_000),
        lane(root.fork(), fuzzHttp, 1_000_000),
        lane(root.fork(), fuzzHttp, 1_000_000),
        submitter(root.fork()),
      ]);
      fuzzedMs = Date.now() - t0;
      loop.disable();
      unwatch();
      // Elections are allowed (a starved machine can miss heartbeats) but worth seeing.
      const termAfter = (await statusOf(masters[0]!.url))?.term;
      const summary = [...tally.entries()].sort(([a], [b]) => a.localeCompare(b));
      const byKind = new Map<string, number>();
      for (const [k, n] of summary) {
        const kindKey = k.split(' ')[0]!.replace(/:$/, '');
        byKind.set(kindKey, (byKind.get(kindKey) ?? 0) + n);
      }
      console.log(
        [
          `FUZZ_SEED=${SEED}: ${(fuzzedMs / 1000).toFixed(1)} s of fuzzing; ${acked.length} jobs acknowledged; ${violationCount()} violations; term ${termBefore} → ${termAfter}`,
          `by kind: ${[...byKind.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}; the fuzzer's longest stall ${Math.round(loop.max / 1e6)} ms`,
          ...summary.map(([k, n]) => `  ${String(n).padStart(6)}  ${k}`),
        ].join('\n'),
      );
      const found = [...violations.entries()].map(([what, v]) => ({ what, ...v }));
      expect(found, `FUZZ_SEED=${SEED}: ${violationCount()} violations`).toEqual([]);
      expect(acked.length).toBeGreaterThan(0);
    },
    (SECONDS + 120) * 1000,
  );

  it('every master and worker process is alive, answers /health, and logged no error', async () => {
    for (const p of [...masters, ...workers]) {
      expect(p.exitCode, `${p.name} exited:\n${c.tail(p)}`).toBeUndefined();
      expect((await http('GET', `${p.url}/health`, undefined, {}, 5000)).status, p.name).toBe(200);
      const errors = c
        .log(p)
        .split('\n')
        .filter((line) => /"level":(50|60)/.test(line));
      expect(
        errors.map((l) => l.slice(0, 500)),
        `${p.name} logged errors`,
      ).toEqual([]);
    }
  });

  it('the frames reached the decoders: weir_refused_frames_total grew for the peer stream, worker channels and stream links', async () => {
    const m = await refusedFrames(urls());
    const w = await refusedFrames(workers.map((x) => x.url));
    expect(m.peer ?? 0).toBeGreaterThan(baseline['m:peer'] ?? 0);
    expect(m.worker_channel ?? 0).toBeGreaterThan(baseline['m:worker_channel'] ?? 0);
    expect(w.stream_link ?? 0).toBeGreaterThan(baseline['w:stream_link'] ?? 0);
    console.log(`weir_refused_frames_total: masters ${JSON.stringify(m)}, workers ${JSON.stringify(w)}`);
  });

  it('every job the cluster acknowledged completes, and its results are served', async () => {
    // What the fuzzer submitted itself is cancelled: sleeps and long jobs would only keep the slots.
    const mine = new Set(acked);
    for (const j of (await jobsOn(masters[0]!.url)).values()) {
      if (!mine.has(j.job_id) && (j.status === 'pending' || j.status === 'running')) {
        const r = await http('POST', `${masters[0]!.url}/api/jobs/${j.job_id}/cancel`, undefined, admin());
        expect([200, 409], r.text).toContain(r.status);
      }
    }
    await waitFor(
      `${acked.length} acknowledged jobs to complete`,
      async () => {
        const jobs = await jobsOn(masters[0]!.url);
        const open = acked.filter((id) => jobs.get(id)?.status !== 'completed');
        const ended = open.filter((id) => ['failed', 'cancelled'].includes(jobs.get(id)?.status));
        if (ended.length)
          throw new GiveUp(`ended otherwise: ${ended.map((id) => JSON.stringify(jobs.get(id))).join('\n')}`);
        if (open.length)
          throw new Error(`not completed: ${open.slice(0, 10).join(', ')}${open.length > 10 ? '…' : ''}`);
        return true;
      },
      90_000,
      250,
    );
    for (const id of acked) {
      const r = await http('GET', `${masters[0]!.url}/api/jobs/${id}/results`, undefined, bearer(tokens.client));
      expect(r.status, `${id}: ${r.text}`).toBe(200);
      expect(Array.isArray(r.json.results)).toBe(true);
    }
  }, 120_000);

  it('each master, SIGKILLed and restarted on its data dir and port, becomes ready having applied its whole log; the masters agree', async () => {
    const took: string[] = [];
    for (let i = 0; i < masters.length; i++) {
      const m = masters[i]!;
      const before = await statusOf(m.url);
      expect(before, `${m.name} answers /cluster/status`).toBeDefined();
      await c.stop(m, 'SIGKILL');
      const t0 = Date.now();
      await startMaster(i, { dataDir: m.dataDir });
      took.push(`${IDS[i]} ready in ${Date.now() - t0} ms`);
      // Ready means every entry it knows committed is applied or queued for its next batch.
      await waitFor(
        `${m.name} to apply the ${before.commit_index} entries committed before it was killed`,
        async () => ((await statusOf(masters[i]!.url))?.last_applied ?? 0) >= before.commit_index,
        10_000,
      );
      await untilConverged(before.commit_index);
    }
    await untilOneLeader();
    const applied = await untilConverged();
    console.log(`after three restarts (${took.join(', ')}) every master applied ${applied} entries`);
  }, 180_000);

  it('after the restarts every master holds every acknowledged job completed, the workers are back, and a new job completes', async () => {
    for (const url of urls()) {
      const jobs = await jobsOn(url);
      const notCompleted = acked.filter((id) => jobs.get(id)?.status !== 'completed');
      expect(notCompleted, `on ${url}`).toEqual([]);
    }
    for (const w of workers) {
      await waitFor(`${w.name} back on its channel`, async () => {
        const s = await http('GET', `${w.url}/api/status`, undefined, admin());
        return s.json?.connected === true;
      });
    }
    const r = await http(
      'POST',
      `${masters[0]!.url}/api/jobs`,
      { name: 'after', type: 'batch', config: MULTIPLY },
      bearer(tokens.client),
    );
    expect(r.status, r.text).toBe(201);
    await untilJobStatus(masters[0]!.url, r.json.job_id, 'completed', 60_000, bearer(tokens.client));
  }, 120_000);
});
