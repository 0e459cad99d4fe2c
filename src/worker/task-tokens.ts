import type { TokenSource } from '../common/auth.js';
import { TASK_SCOPE } from './access-table.js';

/** Jobs whose tokens are kept; beyond it the oldest go (a token is minted again on need). */
const KEPT = 1024;

/**
 * The tokens a worker hands its data tasks for fetching map outputs from other workers: one per
 * job, scoped to shuffle reads of that job alone (user code runs beside its task's token).
 * Each is minted once and renewed before it expires.
 */
export class TaskTokens {
  private readonly perJob = new Map<string, TokenSource>();

  constructor(private readonly worker: TokenSource) {}

  header(jobId: string): Promise<string | undefined> {
    let source = this.perJob.get(jobId);
    if (!source) {
      source = this.worker.derive({ role: 'worker', scope: TASK_SCOPE, job_id: jobId });
      if (this.perJob.size >= KEPT) this.perJob.delete(this.perJob.keys().next().value!);
      this.perJob.set(jobId, source);
    }
    return source.header();
  }
}
