import type { AppliedListener } from '../consensus/consensus.js';
import type { Command, Results } from '../state/commands.js';
import type { JobWatch } from './job-watch.js';
import type { MasterMetrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';

/**
 * What this master does once commands are applied, on every master in log order: wake long
 * polls of jobs that ended, stop attempts that lost their reason to run, count outcomes, and
 * ask the scheduler for a pass when slots or tasks appeared. (A follower's scheduler is idle:
 * what it is asked to stop or place waits for it to lead.)
 */
export function appliedEffects(
  scheduler: Scheduler,
  jobWatch: JobWatch,
  metrics: MasterMetrics,
): AppliedListener<Command, Results> {
  return (batch) => {
    let kick = false;
    for (const e of batch) {
      if (!e.result.ok) continue;
      switch (e.type) {
        case 'completeTasks': {
          const { accepted, finished_jobs, to_stop } = e.result;
          for (const a of accepted) if (a.ms !== undefined) metrics.taskDuration.observe(a.ms / 1000);
          metrics.tasksReported.inc({ outcome: 'completed' }, accepted.length);
          // Long polls answer when a job ends: a completion that leaves it running wakes nobody.
          for (const jobId of finished_jobs) jobWatch.notify(jobId);
          scheduler.forgetJobs(finished_jobs);
          // The losers of speculative races.
          scheduler.stopTasks(to_stop);
          kick = true;
          break;
        }
        case 'failTasks':
          scheduler.noteFailures(e.command.failures, e.command.at);
          scheduler.stopTasks(e.result.to_stop);
          scheduler.forgetJobs(e.result.failed_jobs);
          for (const jobId of e.result.failed_jobs) jobWatch.notify(jobId);
          metrics.tasksReported.inc({ outcome: 'failed' }, e.command.failures.length);
          kick = true;
          break;
        case 'cancelJob':
          scheduler.stopTasks(e.result.to_stop);
          scheduler.forgetJobs([e.command.job_id]);
          jobWatch.notify(e.command.job_id);
          kick = true;
          break;
        case 'deleteJob':
          // A running job deleted is cancelled first; its workers' map outputs go too.
          scheduler.stopTasks(e.result.to_stop);
          scheduler.forgetJobs([e.command.job_id]);
          jobWatch.notify(e.command.job_id);
          kick = true;
          break;
        case 'markWorkerDead':
          // Consumers of map outputs lost with the worker stop; the maps run again.
          scheduler.stopTasks(e.result.to_stop);
          // Streaming instances that ran there are unplaced until the scheduler places them again.
          scheduler.announcePlacements(e.result.jobs);
          // Jobs with a task that lost one worker too many (rules.ts).
          scheduler.forgetJobs(e.result.failed_jobs);
          for (const jobId of e.result.failed_jobs) jobWatch.notify(jobId);
          kick = true;
          break;
        case 'submitJob':
        case 'registerWorker':
          kick = true;
          break;
        case 'purgeJob':
          // A deleted job's pending rows hid other jobs' tasks from the scheduler until now.
          if (!e.result.more) kick = true;
          break;
        case 'assignTasks':
        case 'speculateTasks':
        case 'drainWorker':
        case 'collectRows':
        case 'forgetWorker':
        case 'forgetUpload':
        case 'setRules':
        case 'pruneDeletedUploads':
          break;
      }
    }
    if (kick) scheduler.kick();
  };
}
