import { chownSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutorUser } from './executor-user.js';

/** One executor's view: the directory it may write map outputs under, and the jobs linked in it. */
export interface ShuffleView {
  dir: string;
  jobs: Set<string>;
}

/**
 * What of the worker's shuffle directory each executor reaches. Node's permission model fixes
 * an executor's roots when it starts, so an executor's only shuffle root is a view of its own
 * (`shuffle/.views/N`), in which the worker puts a link to a job's directory (`shuffle/JOB`)
 * before it sends that job's tasks there. An executor given user code keeps its job's link
 * alone, so it reaches no other job's map outputs; tasks cannot make links themselves (the
 * permission model refuses symlink). Links are made by the worker only, between chunks; a
 * job's links are removed when the job is over on this worker, even from a view whose
 * executor still runs one of its tasks (cancelled, or sent before the job was deleted).
 */
export class ShuffleViews {
  private n = 0;
  private readonly root: string;

  constructor(
    private readonly shuffleDir: string,
    private readonly user: ExecutorUser | undefined,
  ) {
    this.root = join(shuffleDir, '.views');
  }

  /** A new, empty view (a job id never starts with a dot, so no job's directory is here). */
  create(): ShuffleView {
    const dir = join(this.root, String(++this.n));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return { dir, jobs: new Set() };
  }

  /** Links `job`'s directory into the view (made for the job if need be, and the executor user's). */
  link(view: ShuffleView, job: string): void {
    if (view.jobs.has(job)) return;
    const target = join(this.shuffleDir, job);
    mkdirSync(target, { recursive: true });
    if (this.user) chownSync(target, this.user.uid, this.user.gid);
    // A directory may stand where the link was: the map outputs of a task that ran on after
    // its job's link was removed (the job forgotten while it ran). They are the forgotten
    // job's, and go; removed recursively, a link is removed, never what it points to.
    rmSync(join(view.dir, job), { recursive: true, force: true });
    symlinkSync(target, join(view.dir, job));
    view.jobs.add(job);
  }

  /** Leaves `job`'s link alone in the view: its executor is about to run that job's code. */
  keepOnly(view: ShuffleView, job: string): void {
    // Everything the view holds, not only the links it made: a directory a task wrote after
    // its job's link was removed is another job's map outputs too.
    for (const other of readdirSync(view.dir)) {
      if (other === job) continue;
      rmSync(join(view.dir, other), { recursive: true, force: true });
      view.jobs.delete(other);
    }
    this.link(view, job);
  }

  /** Forgets a job in a view (its directory is being deleted). */
  unlink(view: ShuffleView, job: string): void {
    if (!view.jobs.delete(job)) return;
    rmSync(join(view.dir, job), { recursive: true, force: true });
  }

  /** Deletes a view whose executor has ended (the links, never what they point to). */
  drop(view: ShuffleView): void {
    rmSync(view.dir, { recursive: true, force: true });
  }
}
