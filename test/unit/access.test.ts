import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { authorize, authorizeRole, describeTable, OPEN } from '../../src/common/access.js';
import type { Principal } from '../../src/common/auth.js';
import { MASTER_ACCESS } from '../../src/master/access-table.js';
import { TASK_SCOPE, WORKER_ACCESS } from '../../src/worker/access-table.js';

const who = (role: Principal['role'], extra: Partial<Principal> = {}): Principal => ({ role, subject: 't', ...extra });
const allowed = (key: string, p: Principal, req: { params?: unknown; body?: unknown } = {}) => {
  try {
    authorize(MASTER_ACCESS, key, p, { params: req.params, body: req.body });
    return true;
  } catch (err) {
    expect(err).toMatchObject({ code: 'forbidden', status: 403 });
    return false;
  }
};

const authorizeWorker = (key: string, p: Principal, params: unknown) => {
  try {
    authorize(WORKER_ACCESS, key, p, { params, body: undefined });
    return true;
  } catch (err) {
    expect(err).toMatchObject({ code: 'forbidden', status: 403 });
    return false;
  }
};

describe('the access table of a master', () => {
  it('lets a client work with jobs, and nothing of the cluster’s own', () => {
    expect(allowed('POST /api/jobs', who('client'))).toBe(true);
    expect(allowed('GET /api/jobs/:job_id/results', who('client'))).toBe(true);
    expect(allowed('POST /api/workers/register', who('client'))).toBe(false);
    expect(allowed('POST /api/cluster/members', who('client'), { body: { id: 2 } })).toBe(false);
    expect(allowed('GET /raft/stream', who('client'))).toBe(false);
    expect(allowed('PUT /api/uploads/:id', who('client'))).toBe(false);
  });

  it('lets a client or a master delete an upload no job reads, and no worker (nor a task’s token)', () => {
    expect(allowed('DELETE /api/uploads/:id', who('client'))).toBe(true);
    expect(allowed('DELETE /api/uploads/:id', who('peer', { node_id: 2 }))).toBe(true);
    // As for copying one (PUT): a peer token that names no master is no master's.
    expect(allowed('DELETE /api/uploads/:id', who('peer'))).toBe(false);
    expect(allowed('DELETE /api/uploads/:id', who('worker', { worker_id: 'w-1' }))).toBe(false);
    expect(allowed('DELETE /api/uploads/:id', who('worker', { scope: TASK_SCOPE }))).toBe(false);
  });

  it('lets a worker act for its own worker_id only', () => {
    const w = who('worker', { worker_id: 'w-1' });
    expect(allowed('GET /api/workers/:worker_id/channel', w, { params: { worker_id: 'w-1' } })).toBe(true);
    expect(allowed('GET /api/workers/:worker_id/channel', w, { params: { worker_id: 'w-2' } })).toBe(false);
    expect(allowed('POST /api/workers/heartbeat', w, { body: { worker_id: 'w-2' } })).toBe(false);
    expect(allowed('GET /api/workers/:worker_id/channel', who('worker'), { params: { worker_id: 'w-1' } })).toBe(false);
    expect(allowed('POST /api/jobs', w)).toBe(false);
  });

  it('lets a master join as itself only, and never change membership otherwise', () => {
    const peer = who('peer', { node_id: 7 });
    expect(allowed('POST /api/cluster/members', peer, { body: { id: 7, address: 'http://x:1' } })).toBe(true);
    expect(allowed('POST /api/cluster/members', peer, { body: { id: 8, address: 'http://x:1' } })).toBe(false);
    expect(allowed('DELETE /api/cluster/members/:id', peer, { params: { id: 7 } })).toBe(false);
  });

  it('lets an admin call every route but the Raft stream, and routes outside the table', () => {
    for (const key of Object.keys(MASTER_ACCESS)) {
      expect(allowed(key, who('admin'))).toBe(key !== 'GET /raft/stream');
    }
    expect(allowed('POST /api/backup', who('admin'))).toBe(true);
    expect(allowed('POST /api/backup', who('client'))).toBe(false);
  });

  it("refuses a task's scoped token everywhere but the routes that name its scope", () => {
    const task = who('worker', { scope: TASK_SCOPE });
    expect(() => authorizeRole(WORKER_ACCESS, 'GET /api/shuffle/:job_id/:task/:partition', task)).not.toThrow();
    expect(() => authorizeRole(WORKER_ACCESS, 'GET /api/stream/link', task)).toThrow(/scoped/);
    expect(allowed('POST /api/workers/register', task)).toBe(false);
    expect(allowed('POST /api/jobs/:job_id/rows', task)).toBe(false);
  });

  it("lets a task's token read its own job's map outputs only", () => {
    const route = 'GET /api/shuffle/:job_id/:task/:partition';
    const read = (p: Principal, job_id: string) => authorizeWorker(route, p, { job_id, task: '0.1', partition: '0' });
    expect(read(who('worker', { scope: TASK_SCOPE, job_id: 'job-a' }), 'job-a')).toBe(true);
    expect(read(who('worker', { scope: TASK_SCOPE, job_id: 'job-a' }), 'job-b')).toBe(false);
    // An old task token, bound to no job, reads none.
    expect(read(who('worker', { scope: TASK_SCOPE }), 'job-a')).toBe(false);
    // A worker's own token and an admin's read any.
    expect(read(who('worker', { worker_id: 'w1' }), 'job-b')).toBe(true);
    expect(read(who('admin'), 'job-b')).toBe(true);
  });

  it('keeps the health, readiness and metrics routes open', () => {
    for (const key of ['GET /health', 'GET /ready', 'GET /metrics']) expect(MASTER_ACCESS[key]).toBe(OPEN);
  });
});

describe("the README's Security section", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Security'), readme.indexOf('## How it works'));
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );

  it.each([
    ['master', MASTER_ACCESS],
    ['worker', WORKER_ACCESS],
  ] as const)('prints every rule of the %s table as it is', (_name, table) => {
    for (const r of describeTable(table)) expect(rows).toContainEqual([`\`${r.route}\``, r.roles, r.checked]);
  });

  it('prints no rule the tables do not have', () => {
    expect(rows).toHaveLength(Object.keys(MASTER_ACCESS).length + Object.keys(WORKER_ACCESS).length);
  });
});
