// Response schemas change what a client gets: Fastify serialises with them, dropping what they
// do not name and coercing what they type otherwise. The reply check (WEIR_CHECK_REPLIES=1,
// on in every integration spec) turns such a change into a 500 that names the field; here it
// is shown on a small app, and the master's own schemas are run over the rarer shapes its
// views make (a failed job's error, a streaming job's components, a dead worker…).
import { Type, type TSchema, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { checkReplies, checkRepliesIfAsked, replyDifference } from '../../src/common/reply-check.js';
import { installErrorHandlers } from '../../src/common/http-errors.js';
import {
  ClusterStatusReply,
  JobReply,
  JobsReply,
  MastersReply,
  ResultsReply,
  TasksReply,
  WorkersReply,
} from '../../src/master/reply-schemas.js';

/** What `GET /x` answers when it returns `body` under response schema `schema`, the check on. */
async function served(schema: TSchema, body: unknown, check = true) {
  const logged: string[] = [];
  const app = Fastify({ logger: { level: 'error', stream: { write: (l: string) => logged.push(l) } } });
  installErrorHandlers(app, 'master');
  if (check) checkReplies(app);
  app.withTypeProvider<TypeBoxTypeProvider>().get('/x', { schema: { response: { 200: schema } } }, async () => body);
  const r = await app.inject('/x');
  await app.close();
  return { status: r.statusCode, json: r.json() as unknown, logged: logged.join('\n') };
}

describe('replyDifference', () => {
  it('finds nothing between equal values, whatever the order of their keys', () => {
    expect(replyDifference({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 })).toBeUndefined();
  });

  it('names a dropped field, a coerced value and a changed length by their path', () => {
    expect(replyDifference({ a: { b: 1, c: 2 } }, { a: { b: 1 } })).toBe(
      '$.a.c: dropped (the schema does not name it)',
    );
    expect(replyDifference({ a: [1, 2] }, { a: [1, '2'] })).toBe('$.a[1]: 2 was sent as "2"');
    expect(replyDifference({ a: null }, { a: '' })).toBe('$.a: null was sent as ""');
    expect(replyDifference([1, 2], [1])).toBe('$: 2 items were sent as 1');
    expect(replyDifference({ a: 1 }, { a: 1, b: 0 })).toBe('$.b: added by the schema');
  });
});

describe('the reply check', () => {
  it('lets a reply its schema sends unchanged through', async () => {
    const r = await served(Type.Object({ n: Type.Integer(), s: Type.Optional(Type.String()) }), { n: 3 });
    expect(r).toMatchObject({ status: 200, json: { n: 3 } });
  });

  it('fails a reply whose schema would drop a field, naming it in the log', async () => {
    const body = { n: 3, extra: 'x' };
    expect((await served(Type.Object({ n: Type.Integer() }), body, false)).json).toEqual({ n: 3 });
    const r = await served(Type.Object({ n: Type.Integer() }), body);
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ error: { code: 'internal' } });
    expect(r.logged).toContain('$.extra: dropped');
  });

  it('fails a reply whose schema would coerce a value', async () => {
    expect((await served(Type.Object({ n: Type.String() }), { n: 3 }, false)).json).toEqual({ n: '3' });
    const r = await served(Type.Object({ n: Type.String() }), { n: 3 });
    expect(r.status).toBe(500);
    expect(r.logged).toContain('$.n: 3 was sent as \\"3\\"');
  });

  it('is on only when WEIR_CHECK_REPLIES=1', () => {
    const hooks: string[] = [];
    const app = { addHook: (name: string) => void hooks.push(name) } as unknown as Parameters<typeof checkReplies>[0];
    checkRepliesIfAsked(app, {});
    checkRepliesIfAsked(app, { WEIR_CHECK_REPLIES: '0' });
    expect(hooks).toEqual([]);
    checkRepliesIfAsked(app, { WEIR_CHECK_REPLIES: '1' });
    expect(hooks).toEqual(['preSerialization', 'onSend']);
  });
});

const at = '2026-01-02T03:04:05.006Z';
const progress = { total: 2, pending: 0, running: 0, completed: 1, failed: 1 };

describe("the master's reply schemas send its views unchanged", () => {
  const cases: [string, TSchema, unknown][] = [
    [
      'a failed multi-stage job with its error (extra fields included) and stages',
      JobReply,
      {
        job_id: 'job-1',
        name: 'wc',
        type: 'batch',
        status: 'failed',
        operation: 'map',
        progress,
        created_at: at,
        started_at: at,
        finished_at: at,
        stages: [{ name: 'map', status: 'failed', total: 2, pending: 0, running: 0, completed: 1, failed: 1 }],
        error: { task: 1, attempts: 4, message: 'boom', stack: 'Error: boom\n    at map', name: 'Error' },
      },
    ],
    [
      'a job failed for its results’ size (an error without a task) and a field added later',
      JobReply,
      {
        job_id: 'job-2',
        name: 'big',
        type: 'batch',
        status: 'failed',
        operation: 'multiply',
        progress,
        created_at: at,
        started_at: null,
        finished_at: null,
        error: { message: 'over 64 MiB; write them to config.output', name: 'results_too_large' },
        some_future_field: { a: [1] },
      },
    ],
    [
      'a completed job that wrote part files',
      JobReply,
      {
        job_id: 'job-3',
        name: 'out',
        type: 'batch',
        status: 'completed',
        operation: 'map',
        progress,
        created_at: at,
        started_at: at,
        finished_at: at,
        output: { path: '/tmp/out', parts: ['/tmp/out/part-0', { file: 'part-1', rows: 3 }] },
      },
    ],
    [
      'a streaming job with its components, placed and not',
      JobReply,
      {
        job_id: 'job-4',
        name: 's',
        type: 'streaming',
        status: 'running',
        progress,
        created_at: at,
        started_at: at,
        finished_at: null,
        components: [
          {
            id: 'lines',
            kind: 'spout/http',
            parallelism: 1,
            instances: [
              {
                index: 0,
                status: 'running',
                worker_id: 'w-1',
                address: '127.0.0.1:8081',
                in_per_s: 12.5,
                out_per_s: 0.25,
                events_in: 100,
                events_out: 99,
                queue_fill: 0.5,
                backpressure: true,
                pending: 3,
                errors: 0,
              },
            ],
          },
          {
            id: 'out',
            kind: 'bolt/collect',
            parallelism: 1,
            inputs: [{ from: 'lines', grouping: 'global' }],
            instances: [
              {
                index: 0,
                status: 'unplaced',
                worker_id: null,
                address: null,
                in_per_s: 0,
                out_per_s: 0,
                events_in: 0,
                events_out: 0,
                queue_fill: 0,
                backpressure: false,
                pending: 0,
                errors: 0,
              },
            ],
          },
        ],
      },
    ],
    ['an empty page of jobs', JobsReply, { jobs: [], next_cursor: null }],
    [
      'tasks, one never run and one failed',
      TasksReply,
      {
        tasks: [
          {
            idx: 0,
            status: 'pending',
            attempt: 0,
            failures: 0,
            losses: 0,
            worker_id: null,
            started_at: null,
            finished_at: null,
          },
          {
            idx: 1,
            status: 'failed',
            attempt: 4,
            failures: 4,
            losses: 1,
            worker_id: 'w-1',
            started_at: at,
            finished_at: at,
            error: { message: 'memory_limit', code: 'memory_limit' },
          },
        ],
      },
    ],
    [
      'results of every kind, and a streaming page',
      ResultsReply,
      { results: [1, 2.5, 'x', null, { key: 'a', value: { n: [1] } }, [1]], next_cursor: 's9', follow_cursor: 's9' },
    ],
    [
      'a live worker with its metrics and a dead one',
      WorkersReply,
      {
        workers: [
          {
            worker_id: 'w-1',
            address: '127.0.0.1:8081',
            status: 'active',
            max_tasks: 10,
            active_tasks: 2,
            last_heartbeat: at,
            registered_at: at,
            metrics: { cpu_percent: 1.5, stream: [{ job_id: 'job-4', idx: 0, in_per_s: 1 }], note: 'x' },
          },
          {
            worker_id: 'w-2',
            address: '127.0.0.2:8081',
            status: 'dead',
            max_tasks: 10,
            active_tasks: 0,
            last_heartbeat: null,
            registered_at: at,
            dead_at: at,
          },
        ],
        next_cursor: '1767322445006.w-2',
      },
    ],
    [
      'a follower that knows no leader, with an alarm',
      ClusterStatusReply,
      {
        current_node_id: 2,
        current_role: 'candidate',
        leader_id: null,
        leader_address: null,
        total_nodes: 1,
        nodes: [{ id: 2, address: 'http://127.0.0.2:8080', role: 'candidate', is_leader: false, healthy: true }],
        term: 7,
        commit_index: 10,
        last_applied: 10,
        rules_version: 2,
        alarms: ['no_space'],
      },
    ],
    [
      'masters, one not reached',
      MastersReply,
      {
        masters: [
          {
            id: 1,
            address: 'http://127.0.0.1:8080',
            role: 'leader',
            is_leader: true,
            healthy: true,
            term: 3,
            commit_index: 9,
            last_applied: 9,
            alarms: [],
          },
          {
            id: 2,
            address: 'http://127.0.0.2:8080',
            role: 'follower',
            is_leader: false,
            healthy: false,
            error: 'not reached: timeout',
          },
        ],
      },
    ],
  ];
  it.each(cases)('%s', async (_what, schema, body) => {
    const r = await served(schema, body);
    expect(r.logged).toBe('');
    expect(r.status).toBe(200);
    expect(r.json).toEqual(body);
  });
});
