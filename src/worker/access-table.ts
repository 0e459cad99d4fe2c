import { OPEN, type AccessRule, type AccessTable } from '../common/access.js';

/**
 * What a task's token is good for: reading map outputs from other workers. User code runs
 * beside it, so it must not be able to open channels, register workers or deliver rows.
 */
export const TASK_SCOPE = 'shuffle';

/**
 * A task's token (scoped) reads only the map outputs of the job it was minted for: user code
 * can reach the token its task fetches with, and must not read other jobs' data with it.
 */
const OWN_JOB: Pick<AccessRule, 'owns' | 'ownsWhy'> = {
  owns: (p, req) =>
    p.scope !== TASK_SCOPE ||
    (p.job_id !== undefined && p.job_id === (req.params as { job_id?: unknown } | undefined)?.job_id),
  ownsWhy: "read another job's map outputs when it is a task's token (scoped to one job_id)",
};

/** Every route of a worker and who may call it (admins every one). */
export const WORKER_ACCESS: AccessTable = {
  'GET /health': OPEN,
  'GET /metrics': OPEN,
  // The worker's API description holds no data.
  'GET /openapi.json': OPEN,
  'GET /api/status': { roles: ['client', 'worker', 'peer'] },
  // Reduce tasks on other workers read map outputs, and stream instances send tuples.
  'GET /api/shuffle/:job_id/:task/:partition': { roles: ['worker'], scopes: [TASK_SCOPE], ...OWN_JOB },
  'GET /api/stream/link': { roles: ['worker'] },
  // The leader hands a streaming job's events to its source instances.
  'POST /api/stream/:job_id/:idx/events': { roles: ['peer'] },
};
