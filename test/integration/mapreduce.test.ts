// Jobs in stages: map → shuffle → reduce across real workers, the built-in jobs, part files,
// and lineage when a map worker dies (addresses 127.0.0.111–119 belong to this file).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  http,
  submitJob,
  untilJobStatus,
  waitFor,
  type Json,
  type MasterProc,
  type WorkerProc,
} from '../helpers/cluster.js';

const c = new Cluster('mapreduce');
let m: MasterProc;
let workers: WorkerProc[];

const WORDS = ['río', 'weir', 'agua', 'dam', 'flow', 'stone', 'Río', 'WEIR', 'x1', 'Ñandú'];

const countWords = (lines: readonly string[]) => {
  const counts = new Map<string, number>();
  for (const l of lines) {
    for (const w of l.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (w) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
};

const submit = (config: unknown, name = 'job') => submitJob(m.url, { name, type: 'batch', config });

async function results(id: string): Promise<Json[]> {
  const rows: Json[] = [];
  for (let cursor: string | null = null, first = true; first || cursor; first = false) {
    const q: string = cursor ? `&cursor=${cursor}` : '';
    const page = (await http('GET', `${m.url}/api/jobs/${id}/results?limit=2000${q}`)).json;
    rows.push(...page.results);
    cursor = page.next_cursor;
  }
  return rows;
}

/** Waits until no worker runs a task by its own count (user code stopped, slots free). */
const untilWorkersIdle = () =>
  waitFor(
    "every worker's own count of running tasks to drop to 0",
    async () => {
      const all = await Promise.all(workers.map((w) => http('GET', `${w.url}/api/status`)));
      return all.every((r) => r.status !== 200 || r.json.active_tasks === 0);
    },
    10_000,
  );

beforeAll(async () => {
  m = await c.master('127.0.0.111');
  workers = [await c.worker('127.0.0.112', m, { maxTasks: 3 }), await c.worker('127.0.0.113', m, { maxTasks: 3 })];
});

afterAll(() => c.cleanup());

describe('map → shuffle → reduce', () => {
  it('counts words exactly as one process does, through 3 reduce partitions, and shows its stages', async () => {
    const lines = Array.from({ length: 40_000 }, (_, i) => `${WORDS[i % 10]} ${WORDS[(i * 7) % 10]}, line ${i % 17}`);
    const path = join(c.tmp, 'words.txt');
    writeFileSync(path, lines.join('\n') + '\n');
    const id = await submit({
      operation: 'wordcount',
      input: { path, format: 'lines' },
      task_count: 6,
      reduce_tasks: 3,
    });
    const job = await untilJobStatus(m.url, id, 'completed', 60_000);
    expect(job.stages.map((s: Json) => [s.name, s.status, s.total, s.completed])).toEqual([
      ['map', 'completed', 6, 6],
      ['reduce', 'completed', 3, 3],
    ]);
    const rows = await results(id);
    expect(rows.map((r) => r.key)).toEqual([...rows.map((r) => r.key)].sort());
    expect(new Map(rows.map((r) => [r.key, r.value]))).toEqual(countWords(lines));
  });

  it("runs a user module's map, combine and reduce, and writes part files listed in the status", async () => {
    const out = join(c.tmp, 'out-lengths');
    const module = `
      export function map(word, emit) { emit(word.length, 1) }
      export function combine(len, ones, emit) { emit(len, ones.reduce((a, b) => a + b, 0)) }
      export function reduce(len, counts, emit) { emit(len, counts.reduce((a, b) => a + b, 0)) }`;
    const data = Array.from({ length: 500 }, (_, i) => 'w'.repeat(1 + (i % 9)));
    const id = await submit({ module, data, task_count: 5, reduce_tasks: 2, output: { path: out } });
    const job = await untilJobStatus(m.url, id, 'completed');
    expect(job.output.parts.map((p: Json) => p.part)).toEqual([join(out, 'part-00000'), join(out, 'part-00001')]);
    expect(readdirSync(out).sort()).toEqual(['part-00000', 'part-00001']);
    const rows = readdirSync(out).flatMap((f) =>
      readFileSync(join(out, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { key: number; value: number }),
    );
    expect(new Map(rows.map((r) => [r.key, r.value]))).toEqual(
      new Map(Array.from({ length: 9 }, (_, i) => [i + 1, i < 500 % 9 ? 56 : 55])),
    );
    expect((await results(id)).length).toBe(2); // the part files themselves
  });

  it('sorts lines into a total order by sampled ranges: ordered, and a permutation of the input', async () => {
    const lines = Array.from(
      { length: 20_000 },
      (_, i) => `${((i * 7919) % 20_011).toString(36).padStart(4, '0')}-${i}`,
    );
    const path = join(c.tmp, 'unsorted.txt');
    writeFileSync(path, lines.join('\n') + '\n');
    const id = await submit({ operation: 'sort', input: { path, format: 'lines' }, task_count: 4, reduce_tasks: 3 });
    const job = await untilJobStatus(m.url, id, 'completed');
    expect(job.stages.map((s: Json) => s.name)).toEqual(['sample', 'map', 'reduce']);
    const sorted = await results(id);
    expect(sorted).toEqual([...lines].sort());
  });

  it('sums and averages a csv field by group, and estimates pi', async () => {
    const path = join(c.tmp, 'sales.csv');
    const rows = Array.from({ length: 3000 }, (_, i) => `${['north', 'south', 'east'][i % 3]},${i % 10},item ${i}`);
    writeFileSync(path, `region,amount,label\n${rows.join('\n')}\n`);
    const sum = await submit({
      operation: 'sum',
      field: 'amount',
      group_by: 'region',
      input: { path, format: 'csv' },
      task_count: 4,
    });
    const avg = await submit({ operation: 'avg', field: 'amount', input: { path, format: 'csv' }, task_count: 4 });
    const pi = await submit({ operation: 'pi', samples: 200_000, task_count: 4 });
    await untilJobStatus(m.url, sum, 'completed');
    const totals = new Map<string, number>();
    rows.forEach((r, i) => totals.set(r.split(',')[0]!, (totals.get(r.split(',')[0]!) ?? 0) + (i % 10)));
    expect(new Map((await results(sum)).map((r) => [r.key, r.value]))).toEqual(totals);
    await untilJobStatus(m.url, avg, 'completed');
    expect(await results(avg)).toEqual([{ key: null, value: 4.5 }]);
    await untilJobStatus(m.url, pi, 'completed');
    const [estimate] = await results(pi);
    expect(estimate.key).toBe('pi');
    expect(Math.abs(estimate.value - Math.PI)).toBeLessThan(0.01);
  });

  it('counts regular expression matches (grep) in a file the workers fetch by URL with range requests', async () => {
    const text = Array.from({ length: 5000 }, (_, i) => `id-${i % 7} says hello to id-${i % 3}`).join('\n');
    const server: Server = createServer((req, res) => {
      const body = Buffer.from(text);
      const range = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      if (req.method === 'HEAD' || !range) {
        res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
      const [from, to] = [Number(range[1]), Math.min(body.length - 1, Number(range[2]))];
      res.writeHead(206, { 'content-length': to - from + 1, 'content-range': `bytes ${from}-${to}/${body.length}` });
      res.end(body.subarray(from, to + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.119', r));
    try {
      const { port } = server.address() as { port: number };
      const url = `http://127.0.0.119:${port}/text`;
      const id = await submit({
        operation: 'grep',
        pattern: 'id-[0-2]',
        input: { url, format: 'lines' },
        task_count: 3,
      });
      await untilJobStatus(m.url, id, 'completed');
      const expected = new Map<string, number>();
      for (const match of text.matchAll(/id-[0-2]/g)) expected.set(match[0], (expected.get(match[0]) ?? 0) + 1);
      expect(new Map((await results(id)).map((r) => [r.key, r.value]))).toEqual(expected);
    } finally {
      server.close();
    }
  });

  it('re-runs the map tasks of a worker SIGKILLed after they finished, before the reduce fetched them', async () => {
    // Partition 0 holds a record that keeps its map task busy, so the reduce stage cannot
    // start before the other worker's map tasks are done and it is killed.
    const data = ['SLOW', ...Array.from({ length: 3999 }, (_, i) => `k${i % 50}`)];
    const module = `
      export function map(r, emit) {
        if (r === 'SLOW') { const t = Date.now(); while (Date.now() - t < 2500); return; }
        emit(r, 1);
      }
      export function reduce(k, ones, emit) { emit(k, ones.length) }`;
    const extra = await c.worker('127.0.0.114', m, { maxTasks: 3 });
    const id = await submit({ module, data, task_count: 6, reduce_tasks: 2 });
    // Wait until the slow task runs on one worker and some other worker finished map tasks.
    const { victim, slowOn } = await waitFor(
      'a worker with finished map tasks besides the slow one',
      async () => {
        const tasks = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks as Json[];
        const slow = tasks.find((t) => t.idx === 0 && t.status === 'running');
        if (!slow) return undefined;
        const done = tasks.find((t) => t.idx < 6 && t.status === 'completed' && t.worker_id !== slow.worker_id);
        return done ? { victim: done.worker_id as string, slowOn: slow.worker_id as string } : undefined;
      },
      20_000,
    );
    expect(victim).not.toBe(slowOn);
    const all = [...workers, extra];
    const listed = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    const victimAddress = listed.find((w) => w.worker_id === victim)!.address;
    const proc = all.find((w) => w.address === victimAddress)!;
    await c.stop(proc, 'SIGKILL');
    await untilJobStatus(m.url, id, 'completed', 60_000);
    const tasks = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks as Json[];
    // The lost outputs were made again, elsewhere.
    expect(tasks.filter((t) => t.idx < 6 && t.attempt > 1).length).toBeGreaterThan(0);
    expect(tasks.filter((t) => t.idx < 6).every((t) => t.worker_id !== victim)).toBe(true);
    const expected = new Map(Array.from({ length: 50 }, (_, i) => [`k${i}`, 0]));
    for (const r of data.slice(1)) expected.set(r, expected.get(r)! + 1);
    expect(new Map((await results(id)).map((r) => [r.key, r.value]))).toEqual(expected);
  });

  it('runs a copy of a straggling task on another worker, and the first to finish wins', async () => {
    // Tasks on this worker take 30 s: the others finish in milliseconds. Its tasks see none of
    // its environment, so what tells it apart is a file only the others may read.
    const marker = join(c.tmp, 'fast-workers-read-this');
    writeFileSync(marker, '');
    const slow = await c.worker('127.0.0.115', m, {
      maxTasks: 2,
      args: ['--allow-read', join(c.tmp, 'elsewhere'), '--allow-write', join(c.tmp, 'elsewhere')],
    });
    const module = `
      import { statSync } from 'node:fs';
      const fast = (() => { try { return !!statSync(${JSON.stringify(marker)}) } catch { return false } })();
      export function map(r, emit) {
        if (!fast) { const t = Date.now(); while (Date.now() - t < 30000); }
        emit(r % 4, 1);
      }
      export function reduce(k, ones, emit) { emit(k, ones.length) }`;
    const started = Date.now();
    const id = await submit({ module, data: Array.from({ length: 80 }, (_, i) => i), task_count: 8, reduce_tasks: 1 });
    await untilJobStatus(m.url, id, 'completed', 25_000);
    expect(Date.now() - started).toBeLessThan(25_000);
    const listed = (await http('GET', `${m.url}/api/workers`)).json.workers as Json[];
    const slowId = listed.find((w) => w.address === slow.address)!.worker_id;
    const tasks = (await http('GET', `${m.url}/api/jobs/${id}/tasks`)).json.tasks as Json[];
    // Map tasks are 0–7; the reduce (8) does not straggle anywhere.
    const maps = tasks.filter((t) => t.idx < 8);
    expect(
      maps.every((t) => t.worker_id !== slowId),
      JSON.stringify(maps),
    ).toBe(true);
    expect(maps.some((t) => t.attempt === 2)).toBe(true);
    expect(await results(id)).toEqual([0, 1, 2, 3].map((k) => ({ key: k, value: 20 })));
    await c.stop(slow, 'SIGKILL');
  });

  it('cancels user code stuck in a loop: its threads stop and the slots are free again', async () => {
    const id = await submit({ module: 'export function map() { for (;;) {} }', data: [1, 2, 3, 4], task_count: 4 });
    await waitFor('the looping tasks to run', async () => {
      const job = (await http('GET', `${m.url}/api/jobs/${id}`)).json;
      return job.progress.running === 4;
    });
    expect((await http('POST', `${m.url}/api/jobs/${id}/cancel`)).json.status).toBe('cancelled');
    await untilWorkersIdle();
    const after = await submit({ operation: 'wordcount', data: ['a b', 'b'], task_count: 2 });
    expect((await untilJobStatus(m.url, after, 'completed', 10_000)).status).toBe('completed');
  });

  it('stops tasks sent out while their job was being cancelled: nothing is left running', async () => {
    // The leader sends tasks as it proposes their assignment; a cancel committed first makes
    // the log refuse it, and those tasks must stop like the job's running ones.
    const ids = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const id = await submit(
          { module: 'export function map() { for (;;) {} }', data: [1, 2, 3], task_count: 3 },
          `c${i}`,
        );
        const r = await http('POST', `${m.url}/api/jobs/${id}/cancel`);
        expect(r.json.status).toBe('cancelled');
        return id;
      }),
    );
    await untilWorkersIdle();
    for (const id of ids) expect((await http('GET', `${m.url}/api/jobs/${id}`)).json.status).toBe('cancelled');
  });

  it('fails the job with the stack of the user code that threw in the reduce', async () => {
    const module = `export function map(r, emit) { emit(r, 1) }
export function reduce(k, v, emit) {
  if (k === 3) throw new RangeError('no threes here');
  emit(k, v.length);
}`;
    const id = await submit({ module, data: [1, 2, 3, 4], task_count: 2, reduce_tasks: 2, max_retries: 0 });
    const job = await untilJobStatus(m.url, id, 'failed');
    expect(job.error.message).toMatch(/no threes here/);
    expect(job.error.stack).toMatch(/RangeError: no threes here\n\s+at reduce/);
  });

  it('uploads a local input file with --input, and shows the stages in status', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `${WORDS[i % 10]} ${WORDS[(i * 3) % 10]}`);
    const file = join(c.tmp, 'local-words.txt');
    writeFileSync(file, lines.join('\n'));
    const config = JSON.stringify({ operation: 'wordcount', task_count: 3, reduce_tasks: 2 });
    const sub = await c.cli(['--master', m.url, 'submit', 'batch', 'wc', config, '--input', file]);
    expect(sub.code, sub.stderr).toBe(0);
    expect(sub.stderr).toMatch(
      /uploaded .*local-words.txt .*workers read it from http:\/\/127.0.0.111:\d+\/uploads\/up_/,
    );
    const id = sub.stdout.trim();
    const wait = await c.cli(['--master', m.url, 'wait', id]);
    expect(wait.code, wait.stderr).toBe(0);
    expect(new Map((await results(id)).map((r) => [r.key, r.value]))).toEqual(countWords(lines));
    const status = await c.cli(['--master', m.url, 'status', id]);
    expect(status.stdout).toMatch(/STAGE\s+STATUS\s+DONE[\s\S]*map\s+completed\s+3\/3[\s\S]*reduce\s+completed\s+2\/2/);
    const missing = await c.cli(['--master', m.url, 'submit', 'batch', 'wc', config, '--input', '/nonexistent/file']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read input file '\/nonexistent\/file'/);
  });

  it('refuses stage configs it cannot run, naming the problem', async () => {
    const bad = async (config: unknown) => {
      const r = await http('POST', `${m.url}/api/jobs`, { name: 'bad', type: 'batch', config });
      expect(r.status).toBe(400);
      return r.json.error.message as string;
    };
    expect(await bad({ module: 'export function map() {}', data: [1], reduce_tasks: 2 })).toMatch(/export reduce/);
    expect(await bad({ operation: 'wordcount', data: ['a'], output: { path: 'rel' } })).toMatch(/config.output/);
    expect(await bad({ operation: 'grep', pattern: '(', data: ['a'] })).toMatch(/not a valid regular expression/);
    expect(await bad({ operation: 'sum', data: [{ a: 1 }] })).toMatch(/config.field/);
    expect(await bad({ operation: 'wordcount' })).toMatch(/config.data|config.input/);
    expect(await bad({ operation: 'sort', input: { path: '/x', format: 'xml' } })).toMatch(/lines, jsonl, csv/);
    expect(await bad({ operation: 'pi', samples: 0 })).toMatch(/config.samples/);
  });
});
