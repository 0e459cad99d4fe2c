// Streaming topologies on real workers: events worker to worker, windows, at-least-once
// through a SIGKILL, backpressure, and refusals (addresses 127.0.0.121–129 belong to this file).
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  GiveUp,
  http,
  submitJob,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('stream');
let m: MasterProc;
let workers: WorkerProc[];

const words = `export function words(e) {
  return e.line.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean).map((word) => ({ word }));
}`;

const wordCount = (windowMs = 300) => ({
  spouts: [{ id: 'lines', type: 'http', parallelism: 2 }],
  bolts: [
    { id: 'split', op: 'flat_map', fn: 'words', parallelism: 2, inputs: [{ from: 'lines', grouping: 'shuffle' }] },
    {
      id: 'count',
      op: 'window',
      aggregate: 'count',
      key: 'word',
      window: { type: 'tumbling', size_ms: windowMs },
      parallelism: 2,
      inputs: [{ from: 'split', grouping: 'fields', fields: ['word'] }],
    },
    { id: 'out', op: 'collect', inputs: [{ from: 'count', grouping: 'global' }] },
  ],
});

const VOCAB = ['river', 'weir', 'water', 'dam', 'flow', 'stone', 'fish', 'mill'];
const lineOf = (i: number) => `${VOCAB[i % 8]} ${VOCAB[(i * 3) % 8]} ${VOCAB[(i * 5 + 1) % 8]}`;

function truth(lines: string[]): Map<string, number> {
  const t = new Map<string, number>();
  for (const l of lines) for (const w of l.split(' ')) t.set(w, (t.get(w) ?? 0) + 1);
  return t;
}

const submitStream = (config: unknown) => submitJob(m.url, { name: 'stream', type: 'streaming', config });

async function untilPlaced(id: string, n: number): Promise<Json> {
  return waitFor(`every instance of ${id} to run`, async () => {
    const job = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
    const placed = (job.components as Json[]).flatMap((c) => c.instances).filter((i: Json) => i.status === 'running');
    return placed.length === n ? job : undefined;
  });
}

/** Sums each key's window counts from the collected rows. */
async function counted(id: string): Promise<Map<string, number>> {
  const rows = (await http('GET', `${m.url}/api/jobs/${id}/results?limit=100000`)).json.results as Json[];
  const sum = new Map<string, number>();
  for (const r of rows) sum.set(r.key, (sum.get(r.key) ?? 0) + r.value);
  return sum;
}

/**
 * POSTs `lines` as events in batches of `batch`, all at once; a batch refused as saturated
 * (429) or leaderless (503) goes again.
 */
async function send(id: string, lines: string[], batch = 50): Promise<void> {
  const posts = [];
  for (let i = 0; i < lines.length; i += batch) {
    const events = lines.slice(i, i + batch).map((line) => ({ line }));
    posts.push(
      waitFor(
        `events ${i}–${i + events.length - 1} to be accepted`,
        async () => {
          const r = await http('POST', `${m.url}/api/jobs/${id}/events`, events, {}, 60_000);
          if (r.status !== 202 && r.status !== 429 && r.status !== 503) {
            throw new GiveUp(`events: ${r.status} ${r.text}`);
          }
          return r.status === 202;
        },
        60_000,
        200,
      ),
    );
  }
  await Promise.all(posts);
}

/** Waits for every worker to run no task (a cancelled job's instances all stopped). */
async function untilWorkersIdle(timeoutMs: number): Promise<void> {
  await waitFor(
    'the workers to run nothing',
    async () => {
      const all = await Promise.all(workers.map((w) => http('GET', `${w.url}/api/status`)));
      return all.every((r) => r.json.active_tasks === 0);
    },
    timeoutMs,
  );
}

/** Events the instances of job `id` on worker `w` have taken in, as its /metrics shows them. */
async function eventsInOn(w: WorkerProc, id: string): Promise<number> {
  const text = (await http('GET', `${w.url}/metrics`)).text;
  let n = 0;
  for (const [, labels, value] of text.matchAll(/^weir_stream_events_in_total\{([^}]*)\} (\d+)/gm)) {
    if (labels!.includes(`job_id="${id}"`)) n += Number(value);
  }
  return n;
}

beforeAll(async () => {
  m = await c.master('127.0.0.121');
  workers = [await c.worker('127.0.0.122', m, { maxTasks: 10 }), await c.worker('127.0.0.123', m, { maxTasks: 10 })];
});

afterAll(() => c.cleanup());

describe('a word-count topology over events POSTed to the job', () => {
  it('counts every word exactly, across workers, and shows its instances in status', async () => {
    const id = await submitStream({ topology: wordCount(), module: words });
    const job = await untilPlaced(id, 7);
    const addresses = new Set(job.components.flatMap((c: Json) => c.instances.map((i: Json) => i.address)));
    expect(addresses.size).toBe(2); // instances on both workers: events cross between them
    const lines = Array.from({ length: 2000 }, (_, i) => lineOf(i));
    await send(id, lines);
    // Every POST was answered once its events were fully processed: the rows are in.
    expect(await counted(id)).toEqual(truth(lines));
    const cancel = await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    expect(cancel.json.status).toBe('cancelled');
  });
});

describe('at-least-once', () => {
  it('loses no event when a worker running instances is SIGKILLed mid-stream', async () => {
    const extra = await c.worker('127.0.0.124', m, { maxTasks: 10 });
    const id = await submitStream({ topology: wordCount(), module: words, ack_timeout_ms: 11_000 });
    const job = await untilPlaced(id, 7);
    const onExtra = job.components.flatMap((c: Json) => c.instances).filter((i: Json) => i.address === extra.address);
    expect(onExtra.length).toBeGreaterThan(0);
    const lines = Array.from({ length: 6000 }, (_, i) => lineOf(i * 7));
    let answered = false;
    const sending = send(id, lines, 30).finally(() => (answered = true));
    // Mid-stream: the worker is killed once its instances have taken events in, while POSTs
    // still wait for theirs to be processed (else the kill would show nothing).
    await waitFor(
      'events to flow through the worker about to be killed',
      async () => {
        if (answered) throw new GiveUp('every POST was answered before the worker took events in');
        return (await eventsInOn(extra, id)) > 0;
      },
      30_000,
      20,
    );
    await c.stop(extra, 'SIGKILL');
    await sending; // every POST answered 202: its events were processed, here or after a replay
    const got = await counted(id);
    for (const [word, n] of truth(lines)) expect(got.get(word) ?? 0, word).toBeGreaterThanOrEqual(n);
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
  }, 90_000);
});

describe('backpressure', () => {
  it('slows an unbounded source to what a slow sink takes, with bounded buffers', async () => {
    let delivered = 0;
    const slow = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () =>
        setTimeout(() => {
          delivered += (JSON.parse(Buffer.concat(chunks).toString()) as unknown[]).length;
          res.end('ok');
        }, 300),
      );
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.129', r));
    const { port } = slow.address() as { port: number };
    try {
      const id = await submitStream({
        topology: {
          spouts: [{ id: 'gen', type: 'generator', keys: 10 }],
          bolts: [
            { id: 'tag', op: 'map', fn: 'tag', inputs: [{ from: 'gen', grouping: 'shuffle' }] },
            {
              id: 'sink',
              op: 'http',
              url: `http://127.0.0.129:${port}/in`,
              inputs: [{ from: 'tag', grouping: 'shuffle' }],
            },
          ],
        },
        module: 'export function tag(e) { return { ...e, tagged: true } }',
        max_pending: 2000,
      });
      await untilPlaced(id, 3);
      const seen = await waitFor(
        'the source to be held back',
        async () => {
          const job = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
          const gen = job.components.find((c: Json) => c.id === 'gen').instances[0];
          return delivered > 0 && gen.events_out > 0 && gen.pending > 0 ? { job, gen } : undefined;
        },
        20_000,
      );
      // The source never runs ahead of the sink by more than its in-flight allowance.
      expect(seen.gen.pending).toBeLessThanOrEqual(2000);
      const job = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
      const gen = job.components.find((c: Json) => c.id === 'gen').instances[0];
      expect(gen.events_out).toBeLessThanOrEqual(delivered + 2000 + 8192);
      expect(gen.backpressure || gen.pending >= 1000).toBe(true);
      await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    } finally {
      slow.close();
    }
  });
});

describe('flow between workers', () => {
  it('a shuffle into a keyed window across two workers, under sources with no rate, keeps moving with bounded inboxes', async () => {
    // Each worker's maps take from both workers' sources and feed both workers' windows, so
    // each link carries tuples for instances that wait on the other direction. With one credit
    // window per link, both directions filled with tuples for blocked maps and the stream
    // stopped for good within seconds (30,000 events in, then nothing).
    const id = await submitStream({
      topology: {
        spouts: [{ id: 'gen', type: 'generator', parallelism: 2, keys: 1000 }],
        bolts: [
          { id: 'tag', op: 'map', fn: 'tag', parallelism: 2, inputs: [{ from: 'gen', grouping: 'shuffle' }] },
          {
            id: 'count',
            op: 'window',
            aggregate: 'count',
            key: 'key',
            window: { type: 'tumbling', size_ms: 1000 },
            parallelism: 4,
            inputs: [{ from: 'tag', grouping: 'fields', fields: ['key'] }],
          },
          { id: 'out', op: 'collect', inputs: [{ from: 'count', grouping: 'global' }] },
        ],
      },
      module: 'export function tag(e) { return { ...e, tagged: true } }',
    });
    const job = await untilPlaced(id, 9);
    const on = (component: string) =>
      new Set(job.components.find((c: Json) => c.id === component).instances.map((i: Json) => i.address));
    expect(on('tag').size, 'maps on both workers').toBe(2);
    expect(on('count').size, 'windows on both workers').toBe(2);
    const windowsIn = async () => {
      const now = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
      const count = now.components.find((c: Json) => c.id === 'count');
      return count.instances.reduce((n: number, i: Json) => n + (i.events_in ?? 0), 0) as number;
    };
    const since = await waitFor(
      'the windows to take in 100,000 events',
      async () => {
        const n = await windowsIn();
        return n >= 100_000 ? n : undefined;
      },
      30_000,
      200,
    );
    await waitFor(
      'the windows to take in 1,000,000 more',
      async () => (await windowsIn()) >= since + 1_000_000,
      60_000,
      200,
    );
    // An inbox holds 64 batches from its own worker, and 16 from each other worker's link.
    const now = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
    for (const c of now.components)
      for (const i of c.instances) expect(i.queue_fill, `${c.id} ${i.index}`).toBeLessThanOrEqual((64 + 2 + 16) / 64);
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    await untilWorkersIdle(30_000);
  }, 120_000);
});

describe('operations', () => {
  it("follows a stream's rows with results --follow until the job is cancelled, which frees the workers", async () => {
    const id = await submitStream({
      topology: {
        spouts: [{ id: 'gen', type: 'generator', keys: 3, rate: 2000 }],
        bolts: [
          {
            id: 'per-key',
            op: 'window',
            aggregate: 'sum',
            field: 'value',
            key: 'key',
            window: { type: 'tumbling', size_ms: 200 },
            inputs: [{ from: 'gen', grouping: 'fields', fields: ['key'] }],
          },
          { id: 'out', op: 'collect', inputs: [{ from: 'per-key', grouping: 'global' }] },
        ],
      },
    });
    await untilPlaced(id, 3);
    const follow = c.cli(['--master', m.url, 'results', id, '--follow'], { timeoutMs: 30_000 });
    await waitFor('rows to be collected', async () => {
      const r = (await http('GET', `${m.url}/api/jobs/${id}/results`)).json;
      return r.results.length >= 6;
    });
    const status = await c.cli(['--master', m.url, 'status', id]);
    expect(status.stdout).toMatch(/COMPONENT\s+KIND[\s\S]*gen\s+spout\/generator[\s\S]*per-key\s+bolt\/window/);
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    const out = await follow;
    expect(out.code, out.stderr).toBe(0);
    const rows = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Json);
    expect(rows.length).toBeGreaterThanOrEqual(6);
    expect(rows[0]).toMatchObject({ key: expect.stringMatching(/^k[0-2]$/), window_start: expect.any(Number) });
    await untilWorkersIdle(10_000);
  });

  // A worker stopped past its heartbeat timeout is declared dead, and registers again under a
  // new id once it runs. Its instances had run on under the old id: a source's events twice
  // over, and after a cancel (which names the new attempts) for good.
  it('a worker declared dead and back under a new id stops what it ran under the old one: a cancel then frees it', async () => {
    const id = await submitStream({
      topology: {
        spouts: [{ id: 'gen', type: 'generator', keys: 1, rate: 200 }],
        bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'gen', grouping: 'global' }] }],
      },
    });
    await untilPlaced(id, 2);
    const idOf = async (w: WorkerProc) => (await http('GET', `${w.url}/api/status`)).json.worker_id as string;
    const before = await Promise.all(workers.map(idOf));
    for (const w of workers) c.kill(w, 'SIGSTOP');
    try {
      await waitFor(
        'both workers to be declared dead',
        async () => {
          const listed = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
          return before.every((wid) => listed.some((w) => w.worker_id === wid && w.status === 'dead'));
        },
        20_000,
      );
    } finally {
      for (const w of workers) c.kill(w, 'SIGCONT');
    }
    await waitFor('both workers to register again under new ids', async () => {
      const now = await Promise.all(workers.map(idOf));
      return now.every((wid, i) => wid !== before[i]);
    });
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
    await untilWorkersIdle(15_000);
  });

  it('collects an event nested as deep as a request may be, whole; a function returning deeper fails its instance, saying why', async () => {
    const deep = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);
    const collect = await submitStream({
      topology: {
        spouts: [{ id: 'in', type: 'http' }],
        bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'in', grouping: 'global' }] }],
      },
    });
    await untilPlaced(collect, 2);
    // The body's array, the event, and 98 levels in it: 100, the most a body may nest.
    const r = await http('POST', `${m.url}/api/jobs/${collect}/events`, `[{"a":${deep(98)}}]`);
    expect(r.status, r.text).toBe(202);
    const rows = (await http('GET', `${m.url}/api/jobs/${collect}/results`)).json.results as Json[];
    expect(rows.map((row) => JSON.stringify(row))).toEqual([`{"a":${deep(98)}}`]);
    await http('POST', `${m.url}/api/jobs/${collect}/cancel`);

    const deeper = await submitStream({
      topology: {
        spouts: [{ id: 'in', type: 'http' }],
        bolts: [{ id: 'deeper', op: 'map', fn: 'deeper', inputs: [{ from: 'in', grouping: 'global' }] }],
      },
      module: 'export function deeper(e) { let v = e; for (let i = 0; i < 150; i++) v = [v]; return { v } }',
    });
    await untilPlaced(deeper, 2);
    // Never safe (its function fails at it, again and again): not answered while the test runs.
    void http('POST', `${m.url}/api/jobs/${deeper}/events`, [{ a: 1 }], {}, 5_000);
    await waitFor('the map instance to fail, saying why', async () => {
      const logs = workers.map((w) => c.log(w)).join('\n');
      return /'deeper' returned a value that nests arrays and objects more than 100 deep; flatten it/.test(logs);
    });
    await http('POST', `${m.url}/api/jobs/${deeper}/cancel`);
  });

  it('events under the body limit that grow past it written out again (1e9 as 1000000000) → 413 at once, not 503 after 30 s of resends', async () => {
    const id = await submitStream({
      topology: {
        spouts: [{ id: 'in', type: 'http' }],
        bolts: [{ id: 'out', op: 'collect', inputs: [{ from: 'in', grouping: 'global' }] }],
      },
    });
    const body = `[{"a":[${Array(2_000_000).fill('1e9').join(',')}]}]`;
    expect(body.length).toBeLessThan(16 * 1024 * 1024);
    const r = await http('POST', `${m.url}/api/jobs/${id}/events`, body, {}, 10_000);
    expect(r.status, r.text.slice(0, 300)).toBe(413);
    expect(r.json.error).toMatchObject({ code: 'payload_too_large' });
    expect(r.json.error.message).toMatch(
      /^the event takes 21\.0 MiB as JSON written out, over the 16 MiB a source takes at once; send fewer or smaller events at a time$/,
    );
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
  });

  it('refuses an event with a key __proto__, as NDJSON as in a JSON body (between workers it would be renamed)', async () => {
    const id = await submitStream({ topology: wordCount(), module: words });
    const ndjson = await http(
      'POST',
      `${m.url}/api/jobs/${id}/events`,
      '{"line":"a"}\n{"line":"b","__proto__":{"x":1}}\n',
      {
        'content-type': 'application/x-ndjson',
      },
    );
    expect(ndjson.status).toBe(400);
    expect(ndjson.json.error.message).toBe('line 2 of the NDJSON body has a key __proto__; rename it');
    // In a JSON body Fastify's parser refuses it already.
    const json = await http('POST', `${m.url}/api/jobs/${id}/events`, '[{"line":"a","__proto__":{"x":1}}]');
    expect(json.status).toBe(400);
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
  });

  it('fails the instance of a function that returns an object with a key __proto__, saying why', async () => {
    const id = await submitStream({
      topology: {
        spouts: [{ id: 'in', type: 'http' }],
        bolts: [{ id: 'proto', op: 'map', fn: 'proto', inputs: [{ from: 'in', grouping: 'global' }] }],
      },
      // JSON.parse makes `__proto__` an own key, as a function building its output from text would.
      module: 'export function proto(e) { return JSON.parse(\'{"line":"x","__proto__":{"admin":true}}\') }',
    });
    await untilPlaced(id, 2);
    // Never safe (its function fails at it, again and again): not answered while the test runs.
    void http('POST', `${m.url}/api/jobs/${id}/events`, [{ a: 1 }], {}, 5_000);
    await waitFor('the map instance to fail, saying why', async () => {
      const logs = workers.map((w) => c.log(w)).join('\n');
      return /'proto' returned an object with a key __proto__; rename it/.test(logs);
    });
    await http('POST', `${m.url}/api/jobs/${id}/cancel`);
  });

  it('refuses bad topologies with a message naming the fault', async () => {
    const bad = async (config: unknown) => {
      const r = await http('POST', `${m.url}/api/jobs`, { name: 'bad', type: 'streaming', config });
      expect(r.status, r.text).toBe(400);
      return r.json.error.message as string;
    };
    const spout = { id: 's', type: 'http' };
    expect(
      await bad({
        topology: {
          spouts: [spout],
          bolts: [{ id: 'b', op: 'collect', inputs: [{ from: 'x', grouping: 'shuffle' }] }],
        },
      }),
    ).toMatch(/'x'/);
    expect(
      await bad({
        topology: {
          spouts: [spout],
          bolts: [
            { id: 'a', op: 'map', fn: 'f', inputs: [{ from: 'b', grouping: 'shuffle' }] },
            { id: 'b', op: 'map', fn: 'f', inputs: [{ from: 'a', grouping: 'shuffle' }] },
          ],
        },
        module: 'export function f(e) { return e }',
      }),
    ).toMatch(/cycle/);
    expect(await bad({ topology: { spouts: [spout], bolts: [{ id: 'b', op: 'collect', inputs: [] }] } })).toMatch(
      /input/,
    );
    expect(
      await bad({
        topology: {
          spouts: [spout],
          bolts: [{ id: 'm', op: 'map', fn: 'nope', inputs: [{ from: 's', grouping: 'shuffle' }] }],
        },
        module: 'export function f() {}',
      }),
    ).toMatch(/nope/);
    expect(await bad({ topology: { spouts: [], bolts: [] } })).toMatch(/spout/);
    expect(await bad(undefined)).toMatch(/topology/);
  });
});
