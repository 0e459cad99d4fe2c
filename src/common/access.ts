import type { Principal, Role } from './auth.js';
import { WeirError } from './errors.js';

/**
 * Who may call a route: the roles let through, and for some a check of whom the caller is
 * (a worker reaches only its own channel). Everything a table does not name is for admins.
 */
export interface AccessRule {
  roles: readonly Role[];
  /** Given the route's params and body (validated), whether this caller may act on them. */
  owns?: (p: Principal, req: { params: unknown; body: unknown }) => boolean;
  /** Why `owns` refused, for the 403. */
  ownsWhy?: string;
  /** The roles `owns` ever refuses, where not all of `roles` (for the README's table). */
  ownsRoles?: readonly Role[];
  /** Admins may not call it either (the peer stream speaks only for a master). */
  notAdmin?: true;
  /** Scoped tokens it takes; a scoped token is refused everywhere else. */
  scopes?: readonly string[];
}

/** Routes open to anyone: they hold no data (health, metrics, uploads by unguessable id). */
export const OPEN: AccessRule = { roles: [] };

/** A route table: `METHOD /path/:param` as the router matched it → its rule. */
export type AccessTable = Readonly<Record<string, AccessRule>>;

const forbidden = (p: Principal, what: string) =>
  new WeirError('forbidden', `a ${p.role} token may not ${what}; ask an operator for a token with the right role`);

/**
 * Whether `principal`'s role may call the route `key` (`GET /api/jobs/:job_id`) at all;
 * throws 403 `forbidden` otherwise. Decided before anything of the request is read: a role
 * that may not call a route learns nothing about its body's checks. Admins may call every
 * route of the table but where it says; routes outside it are for admins alone.
 */
export function authorizeRole(table: AccessTable, key: string, principal: Principal): void {
  const rule = table[key];
  if (rule === OPEN) return;
  if (principal.scope !== undefined && !rule?.scopes?.includes(principal.scope)) {
    throw forbidden(principal, `call ${key} (it is scoped to ${principal.scope})`);
  }
  if (principal.role === 'admin' && !rule?.notAdmin) return;
  if (!rule || !rule.roles.includes(principal.role)) throw forbidden(principal, `call ${key}`);
}

/** Once the route's params and body are validated: whether the caller acts for itself. */
export function authorizeOwner(
  table: AccessTable,
  key: string,
  principal: Principal,
  req: { params: unknown; body: unknown },
): void {
  const rule = table[key];
  if (!rule?.owns || principal.role === 'admin') return;
  if (!rule.owns(principal, req)) throw forbidden(principal, rule.ownsWhy ?? `call ${key} for another`);
}

/** Both checks at once (for callers that hold the whole request). */
export function authorize(
  table: AccessTable,
  key: string,
  principal: Principal,
  req: { params: unknown; body: unknown },
): void {
  authorizeRole(table, key, principal);
  authorizeOwner(table, key, principal, req);
}

/** Whom a worker's route is about: its params' or body's `worker_id`. */
const workerIdOf = (req: { params: unknown; body: unknown }): unknown =>
  (req.params as { worker_id?: unknown } | undefined)?.worker_id ??
  (req.body as { worker_id?: unknown } | undefined)?.worker_id;

/** A worker acts for itself only: its token's `worker_id` is the one in the request. */
export const OWN_WORKER: Pick<AccessRule, 'owns' | 'ownsWhy'> = {
  owns: (p, req) => p.role !== 'worker' || (p.worker_id !== undefined && p.worker_id === workerIdOf(req)),
  ownsWhy: 'act for another worker (its token carries another worker_id)',
};

/** The rules as rows for people: route, who may call it (admins always but where said), what else is checked. */
export function describeTable(table: AccessTable): { route: string; roles: string; checked: string }[] {
  return Object.entries(table).map(([route, rule]) => ({
    route,
    roles: rule === OPEN ? 'anyone' : [...rule.roles, ...(rule.notAdmin ? [] : ['admin'])].join(', '),
    checked: [
      rule.ownsWhy ? `a ${(rule.ownsRoles ?? rule.roles).join('/')} token may not ${rule.ownsWhy}` : '',
      rule.scopes ? `takes a task's token (scope ${rule.scopes.join(', ')}), good for nothing else` : '',
    ]
      .filter(Boolean)
      .join('; '),
  }));
}
