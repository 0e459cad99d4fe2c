/**
 * The rules by which commands are applied. Every master applies every command and they agree
 * only while they apply it alike, so a rule that changes what a command does cannot start with
 * the upgrade of one master: a rolling upgrade's older masters would apply the same entry their
 * way, and the states would part. A state records the rules it follows (`meta.rules_version`),
 * and moves to newer ones through the log (a SetRules entry) once every member has said it
 * knows them (as etcd moves its cluster version once every member runs the newer one).
 *
 * 1. The rules before there were versions of them.
 * 2. A worker's loss counts against the batch tasks it was running: a task whose worker was
 *    lost MAX_WORKER_LOSSES times fails, with its job.
 * 3. The record of a deleted upload goes once it is older than deletedUploadsKeptMs (a
 *    PruneDeletedUploads entry): a flood of deletes of made-up ids no longer grows every
 *    master's state for good.
 * 4. A worker's loss counts against a task only if the worker said it had begun the task (a
 *    `began` frame, or a hello naming it): a worker lost before it took the task up — or one
 *    that never does, registered only to drop its channel — says nothing of the task.
 */
export const RULES_VERSION = 4;

/** The rules of a state that has recorded none (one written before there were versions). */
export const FIRST_RULES = 1;

/** Rules from which a lost worker counts against the tasks it ran. */
export const LOSSES_COUNT_FROM = 2;

/** Rules from which a lost worker counts only against the tasks it said it had begun. */
export const LOSSES_NEED_A_START_FROM = 4;

/** Rules from which the record of deleted uploads is pruned. */
export const PRUNES_DELETED_UPLOADS_FROM = 3;

/**
 * How long the record of a deleted upload is kept: long enough that every master has removed
 * its copy (a master back after longer finds its copy unclaimed, and deletes it through the
 * log again), and that a job submitted with its URL meanwhile is refused at once as reading a
 * deleted upload. A week, or twice the retention when that is longer.
 */
export function deletedUploadsKeptMs(retentionMs: number): number {
  return Math.max(7 * 86_400_000, 2 * retentionMs);
}

/**
 * Workers a batch task may be running on when they are lost before it fails. One lost worker is
 * a machine's bad luck; the same task on three is the task (the kernel's OOM killer choosing
 * its worker, code that escaped the permission model).
 */
export const MAX_WORKER_LOSSES = 3;

/**
 * The rules a cluster may move to: the newest every member knows, if newer than `current`.
 * `known`: this master's RULES_VERSION; `announced`: what every other member said it knows
 * (undefined: it said nothing — a Weir from before the announcement, or one not linked yet).
 */
export function nextRules(
  current: number,
  known: number,
  announced: readonly (number | undefined)[],
): number | undefined {
  let all = known;
  for (const v of announced) all = Math.min(all, v ?? FIRST_RULES);
  return all > current ? all : undefined;
}

/**
 * Why a member may not follow the log of a state applied by `current` rules (undefined: it may).
 * It would apply some entries differently from the others, so it is sent none until upgraded.
 */
export function behindRules(member: number, announced: number | undefined, current: number): string | undefined {
  const knows = announced ?? FIRST_RULES;
  if (knows >= current) return undefined;
  return `master ${member} runs an older Weir: it knows the rules of version ${knows} and this cluster applies version ${current}, which it would apply differently from the others, so it is sent no entries of the log; upgrade it, and it catches up`;
}

/** Why this master cannot apply the log by the rules the state follows (undefined: it can). */
export function aheadOfUs(current: number, known: number): string | undefined {
  if (current <= known) return undefined;
  return `the cluster applies the rules of version ${current}, newer than this Weir knows (${known}): this master applies some entries differently from the others; upgrade it`;
}
