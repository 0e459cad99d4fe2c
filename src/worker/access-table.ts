import { OPEN, type AccessTable } from '../common/access.js';

/**
 * What a task's token is good for: reading map outputs from other workers. User code runs
 * beside it, so it must not be able to open channels, register workers or deliver rows.
 */
export const TASK_SCOPE = 'shuffle';

/** Every route of a worker and who may call it (admins every one). */
export const WORKER_ACCESS: AccessTable = {
  'GET /health': OPEN,
  'GET /metrics': OPEN,
  'GET /api/status': { roles: ['client', 'worker', 'peer'] },
  // Reduce tasks on other workers read map outputs, and stream instances send tuples.
  'GET /api/shuffle/:job_id/:task/:partition': { roles: ['worker'], scopes: [TASK_SCOPE] },
  'GET /api/stream/link': { roles: ['worker'] },
  // The leader hands a streaming job's events to its source instances.
  'POST /api/stream/:job_id/:idx/events': { roles: ['peer'] },
};
