// Streaming topologies on real workers: events worker to worker, windows, at-least-once
// through a SIGKILL, backpressure, and refusals (addresses 127.0.0.121–129 belong to this file).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, http, waitFor, type Json, type MasterProc, type WorkerProc } from '../helpers/cluster.js';

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

async function submitStream(config: unknown): Promise<string> {
  const r = await http('POST', `${m.url}/api/jobs`, { name: 'stream', type: 'streaming', config });
  expect(r.status, r.text).toBe(201);
  return r.json.job_id as string;
}

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

async function send(id: string, lines: string[], batch = 50): Promise<void> {
  const posts = [];
  for (let i = 0; i < lines.length; i += batch) {
    const events = lines.slice(i, i + batch).map((line) => ({ line }));
    posts.push(
      (async () => {
        for (;;) {
          const r = await http('POST', `${m.url}/api/jobs/${id}/events`, events, {}, 60_000);
          if (r.status === 202) return;
          if (r.status !== 429 && r.status !== 503) throw new Error(`events: ${r.status} ${r.text}`);
          await new Promise((res) => setTimeout(res, 200));
        }
      })(),
    );
  }
  await Promise.all(posts);
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
