import { OPEN, OWN_WORKER, type AccessRule, type AccessTable } from '../common/access.js';
import { PEER_PATH } from '../consensus/peer-transport.js';

/** What the CLI shows and a user does with jobs. */
const USERS: AccessRule = { roles: ['client'] };
/** Read-only views every node role may also ask for. */
const VIEWS: AccessRule = { roles: ['client', 'worker', 'peer'] };

/**
 * Every route of a master and who may call it (admins every one but the peer stream; a route
 * missing here is for admins alone). The README's Security section prints this table.
 */
export const MASTER_ACCESS: AccessTable = {
  'GET /health': OPEN,
  'GET /ready': OPEN,
  'GET /metrics': OPEN,
  // The id is unguessable: workers read a job's input with it and nothing else.
  'GET /uploads/:id': OPEN,
  // The API's description and the page that renders it hold no data.
  'GET /openapi.json': OPEN,
  'GET /docs': OPEN,
  'GET /docs/static/index.html': OPEN,
  'GET /docs/static/swagger-initializer.js': OPEN,
  'GET /docs/static/*': OPEN,
  'GET /docs/json': OPEN,
  'GET /docs/yaml': OPEN,
  // The dashboard: a page and its assets, no data (it asks the API with the user's token).
  'GET /': OPEN,
  'GET /jobs/:job_id': OPEN,
  'GET /assets/*': OPEN,
  'GET /cluster/status': VIEWS,
  'POST /api/jobs': USERS,
  'GET /api/jobs': USERS,
  'GET /api/jobs/:job_id': USERS,
  'GET /api/jobs/:job_id/tasks': USERS,
  'GET /api/jobs/:job_id/results': USERS,
  'GET /api/jobs/:job_id/logs': USERS,
  'POST /api/jobs/:job_id/cancel': USERS,
  'DELETE /api/jobs/:job_id': USERS,
  'POST /api/jobs/:job_id/events': USERS,
  'POST /api/uploads': USERS,
  // An upload no job reads: its uploader's, or a master's whose copy went unclaimed too long.
  'DELETE /api/uploads/:id': {
    roles: ['client', 'peer'],
    owns: (p) => p.role !== 'peer' || p.node_id !== undefined,
    ownsWhy: 'forget an upload without a node_id (only a master forgets the copies it holds)',
    ownsRoles: ['peer'],
  },
  'GET /api/workers': USERS,
  'GET /api/cluster/masters': USERS,
  // The dashboard's change stream: what the reads above show, summarised.
  'GET /api/live': USERS,
  'POST /api/workers/register': { roles: ['worker'] },
  'POST /api/workers/heartbeat': { roles: ['worker'], ...OWN_WORKER },
  'GET /api/workers/:worker_id/channel': { roles: ['worker'], ...OWN_WORKER },
  // A streaming job's collect sink, on a worker.
  'POST /api/jobs/:job_id/rows': { roles: ['worker'] },
  // What a streaming job's instances printed, from their worker.
  'POST /api/jobs/:job_id/logs': { roles: ['worker'] },
  'PUT /api/uploads/:id': {
    roles: ['peer'],
    owns: (p) => p.role !== 'peer' || p.node_id !== undefined,
    ownsWhy: 'copy an upload without a node_id (only a master copies them)',
  },
  // A master joining by itself; any other change of membership is an operator's.
  'POST /api/cluster/members': {
    roles: ['peer'],
    owns: (p, req) => p.role !== 'peer' || p.node_id === (req.body as { id?: unknown } | undefined)?.id,
    ownsWhy: 'add a master other than itself (its token carries another node_id)',
  },
  'DELETE /api/cluster/members/:id': { roles: [] },
  // A copy of everything the cluster holds: an operator's.
  'GET /api/cluster/backup': { roles: [] },
  // Which members may open it is the transport's to say (a frame counts only from its sender).
  [`GET ${PEER_PATH}`]: { roles: ['peer'], notAdmin: true },
};
