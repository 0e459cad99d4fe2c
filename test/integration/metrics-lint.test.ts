// /metrics passes Prometheus' own linter (`promtool check metrics`, Debian's `prometheus`
// package) on masters and workers, after they have run jobs so every series has values
// (addresses 127.0.0.241–242 belong to this file).
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, http, submitJob, untilJobStatus, type MasterProc, type WorkerProc } from '../helpers/cluster.js';
import { bearer, cliToken } from '../helpers/tokens.js';

const PROMTOOL = spawnSync('promtool', ['--version']).status === 0;
const c = new Cluster('metrics-lint');
const env = { JWT_SECRET: 'metrics-lint-secret-of-32-bytes-or-more' };
let m: MasterProc;
let w: WorkerProc;
let auth: Record<string, string>;

beforeAll(async () => {
  if (!PROMTOOL) return;
  m = await c.master('127.0.0.241', { env });
  auth = bearer(cliToken(env, 'admin'));
  w = await c.worker('127.0.0.242', m, { env, maxTasks: 2, token: cliToken(env) });
  const job = await submitJob(m.url, { name: 'x', type: 'batch', config: { operation: 'noop', task_count: 4 } }, auth);
  await untilJobStatus(m.url, job, 'completed', 30_000, auth);
});

afterAll(() => c.cleanup());

/** What promtool says of a scrape: nothing, and exit 0, when it is clean. */
async function lint(url: string): Promise<{ status: number | null; says: string }> {
  const scrape = await http('GET', `${url}/metrics`, undefined, auth);
  expect(scrape.status).toBe(200);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: scrape.text, encoding: 'utf8' });
  return { status: r.status, says: `${r.stdout}${r.stderr}`.trim() };
}

describe.skipIf(!PROMTOOL)('promtool check metrics (skipped: promtool is not installed; .ci/run installs it)', () => {
  it('accepts a master’s /metrics, the event loop delay a summary', async () => {
    const r = await lint(m.url);
    expect(r.says).toBe('');
    expect(r.status).toBe(0);
    const text = (await http('GET', `${m.url}/metrics`, undefined, auth)).text;
    expect(text).toContain('# TYPE weir_event_loop_delay_seconds summary');
    expect(text).toMatch(/^weir_event_loop_delay_seconds_count \d+/m);
  });

  it('accepts a worker’s /metrics, which counts the tasks and messages sent to its executors', async () => {
    const r = await lint(w.url);
    expect(r.says).toBe('');
    expect(r.status).toBe(0);
    const text = (await http('GET', `${w.url}/metrics`, undefined, auth)).text;
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1]);
    expect(value('weir_executor_tasks_sent_total')).toBeGreaterThanOrEqual(4);
    expect(value('weir_executor_messages_total')).toBeGreaterThanOrEqual(1);
    expect(value('weir_executor_messages_total')).toBeLessThanOrEqual(value('weir_executor_tasks_sent_total'));
    expect(value('weir_executor_late_writes_dropped_total')).toBe(0);
  });
});
