import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { ConfirmButton, ErrorNote, memoBy, ProgressBar, sameData, Status } from './bits.js';
import { addPoint, Chart } from './chart.js';
import { between, clock, duration, num } from './format.js';
import { useEachFrame, useLive, useWake, type Live, type LiveFrame } from './live.js';
import { POLL_MS, usePoll, type Wake } from './poll.js';
import { navigate } from './router.js';
import { LogsPanel } from './logs-panel.js';
import { Timeline } from './timeline.js';
import { Topology } from './topology.js';
import { TERMINAL, type Job, type Task, type Worker } from './types.js';

const TASK_LIMIT = 1000;
/** Task rows drawn at first, and added by each "show more": each drawn row may change every second. */
const TASK_PAGE = 50;
const PREVIEW_ROWS = 20;
/** How often what no longer changes is asked again (a finished job's tasks and results). */
const SETTLED_MS = 60_000;

const taskError = (t: Task) => (typeof t.error === 'string' ? t.error : (t.error?.message ?? ''));

function Actions({ job, refresh }: { job: Job; refresh: () => void }) {
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const act = async (what: string, call: () => Promise<unknown>, after?: () => void) => {
    try {
      await call();
      setNote({ ok: true, text: `${what}: done` });
      after?.();
    } catch (err) {
      const e = err as ApiError;
      let text = `${what} failed: ${e.message}`;
      // A master without DELETE /api/jobs/{id} answers 404 (no route) or 405 while the job is there.
      if (what === 'Delete' && (e.status === 404 || e.status === 405)) {
        const still = await api('GET', `/api/jobs/${job.job_id}`).then(
          () => true,
          () => false,
        );
        text = still
          ? 'This cluster cannot delete jobs yet (no DELETE /api/jobs/{id} route).'
          : 'The job is already gone.';
      }
      setNote({ ok: false, text });
    }
    refresh();
  };
  const done = TERMINAL.has(job.status);
  return html`<div class="actions">
    <${ConfirmButton}
      label="Cancel job"
      confirm="Click again to cancel"
      disabled=${done}
      onConfirm=${() => act('Cancel', () => api('POST', `/api/jobs/${job.job_id}/cancel`))}
    />
    <${ConfirmButton}
      label="Delete"
      confirm="Click again to delete"
      danger=${true}
      onConfirm=${() =>
        act(
          'Delete',
          () => api('DELETE', `/api/jobs/${job.job_id}`),
          () => navigate('/'),
        )}
    />
    ${note ? html`<span class=${`note inline ${note.ok ? '' : 'error'}`} data-action-note>${note.text}</span>` : ''}
  </div>`;
}

function Stages({ job }: { job: Job }) {
  if (!job.stages?.length) return null;
  return html`<section class="panel">
    <h2>Stages</h2>
    <table>
      <thead>
        <tr>
          <th>Stage</th>
          <th>Status</th>
          <th>Progress</th>
          <th class="num">Running</th>
          <th class="num">Failed</th>
        </tr>
      </thead>
      <tbody>
        ${job.stages.map(
          (s, i) =>
            html`<tr key=${i}>
              <td><span class="dim">${i + 1}.</span> ${s.name}</td>
              <td><${Status} status=${s.status} /></td>
              <td><${ProgressBar} p=${s} /></td>
              <td class="num">${s.running}</td>
              <td class="num">${s.failed}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** One task's row: drawn again only when it moved (or, while it runs, as its duration grows). */
const TaskRow = memoBy<{ t: Task; worker: string; now: number }>(
  ({ t, worker, now }) =>
    html`<tr>
      <td class="num mono">${t.idx}</td>
      <td><${Status} status=${t.status} /></td>
      <td class="num">
        ${t.attempt}${t.failures ? html` <span class="bad-text">(${t.failures} failed)</span>` : ''}${
          t.losses
            ? html` <span class="bad-text">(${t.losses} ${t.losses === 1 ? 'worker' : 'workers'} lost)</span>`
            : ''
        }
      </td>
      <td class="mono">${worker}</td>
      <td class="num">${duration(between(t.started_at, t.finished_at, now || Date.now()))}</td>
      <td class="err" title=${taskError(t)}>${taskError(t)}</td>
    </tr>`,
  sameData('t', 'worker', 'now'),
);

/**
 * A job's tasks: read from GET …/tasks, with the tasks each frame says moved laid over (a
 * task streamed after the last read was sent is newer than that read's).
 */
export function mergeTasks(read: Task[], readAt: number, streamed: Map<number, { task: Task; at: number }>): Task[] {
  let out: Task[] | undefined;
  const at = new Map(read.map((t, i) => [t.idx, i]));
  for (const [idx, s] of streamed) {
    if (s.at < readAt) {
      streamed.delete(idx);
      continue;
    }
    const i = at.get(idx);
    // A task past the read's limit is not shown: the page lists the first ones.
    if (i === undefined) continue;
    out ??= [...read];
    out[i] = s.task;
  }
  return out ?? read;
}

/** The tasks the stream's frames said moved, kept until a read newer than them comes. */
function useStreamedTasks(live: Live, jobId: string): Map<number, { task: Task; at: number }> {
  const streamed = useRef(new Map<number, { task: Task; at: number }>());
  useEachFrame(live, (f: LiveFrame) => {
    if (f.job_id !== jobId || !f.tasks) return;
    const now = Date.now();
    for (const t of f.tasks) streamed.current.set(t.idx, { task: t, at: now });
  });
  return streamed.current;
}

function Tasks({ tasks, workerName, now }: { tasks: Task[]; workerName: (id: string) => string; now: number }) {
  const [show, setShow] = useState<'all' | 'failed'>('all');
  const [drawn, setDrawn] = useState(TASK_PAGE);
  const shown = show === 'failed' ? tasks.filter((t) => t.status === 'failed' || t.failures > 0 || t.error) : tasks;
  return html`<section class="panel" id="tasks">
    <h2>
      Tasks <span class="sub">${tasks.length === TASK_LIMIT ? `first ${TASK_LIMIT}` : tasks.length}</span>
      <span class="filters">
        <select
          value=${show}
          onChange=${(e: Event) => setShow((e.target as HTMLSelectElement).value as 'all')}
          aria-label="tasks shown"
        >
          <option value="all">all tasks</option>
          <option value="failed">with errors</option>
        </select>
      </span>
    </h2>
    <div class="scroll">
      <table class="tasks">
        <thead>
          <tr>
            <th class="num">Task</th>
            <th>Status</th>
            <th class="num">Attempt</th>
            <th>Worker</th>
            <th class="num">Duration</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          ${shown
            .slice(0, drawn)
            .map(
              (t) =>
                html`<${TaskRow}
                  key=${t.idx}
                  t=${t}
                  worker=${t.worker_id ? workerName(t.worker_id) : '—'}
                  now=${t.finished_at ? 0 : now}
                />`,
            )}
        </tbody>
      </table>
      ${
        shown.length > drawn
          ? html`<p class="more">
              <button class="btn ghost" id="tasks-more" onClick=${() => setDrawn((n) => n + TASK_PAGE)}>
                Show ${Math.min(TASK_PAGE, shown.length - drawn)} more
              </button>
              <span class="dim small">of ${shown.length}</span>
            </p>`
          : ''
      }
    </div>
  </section>`;
}

function Results({ job }: { job: Job }) {
  const ready = job.type === 'streaming' || job.status === 'completed';
  const { data, error } = usePoll(
    async () =>
      ready
        ? api<{ results: unknown[] }>('GET', `/api/jobs/${job.job_id}/results?limit=${PREVIEW_ROWS}`, { stale: true })
        : null,
    [job.job_id, ready],
    job.type === 'streaming' && !TERMINAL.has(job.status) ? 2000 : SETTLED_MS,
  );
  return html`<section class="panel" id="results">
    <h2>Results <span class="sub">${ready ? `first ${PREVIEW_ROWS}` : ''}</span></h2>
    ${
      job.output
        ? html`<p class="small">
            Written to <span class="mono">${job.output.path}</span>: ${job.output.parts.length} part files.
          </p>`
        : ''
    }
    ${
      !ready
        ? html`<p class="empty">
            ${
              TERMINAL.has(job.status)
                ? `The job ${job.status === 'cancelled' ? 'was cancelled' : 'failed'}: it has no results.`
                : 'Results are shown once the job has completed.'
            }
          </p>`
        : error
          ? html`<${ErrorNote} error=${error} />`
          : !data
            ? html`<p class="empty">Loading…</p>`
            : data.results.length === 0
              ? html`<p class="empty">No rows.</p>`
              : html`<pre class="results">${data.results.map((r) => JSON.stringify(r)).join('\n')}</pre>
                  <p class="dim small">
                    All of them: <code>weir results ${job.job_id}</code> or${' '}
                    <a href=${`/api/jobs/${job.job_id}/results`} target="_blank">GET /api/jobs/${job.job_id}/results</a
                    >.
                  </p>`
    }
  </section>`;
}

/**
 * The job as the page shows it: the stream's frame when it came after the last read was sent
 * (it is the same view as GET /api/jobs/{job_id}), else that read's answer.
 */
function useJob(jobId: string, live: Live) {
  // A streaming job's rates reach the leader alone (in its workers' heartbeats): read from any
  // other master, stale, they would be zeros. Its reads go to the leader.
  const streaming = useRef(false);
  const job = usePoll(
    async () => {
      const j = await api<Job>('GET', `/api/jobs/${jobId}`, { stale: !streaming.current });
      streaming.current = j.type === 'streaming';
      return j;
    },
    [jobId],
    POLL_MS,
    { live: live.up, ready: live.ready, key: 0 },
  );
  const streamed = useRef<{ job?: Job; gone?: boolean; at: number }>({ at: 0 });
  useEachFrame(live, (f) => {
    if (f.job_id === jobId)
      streamed.current = { ...(f.job ? { job: f.job } : {}), ...(f.gone ? { gone: true } : {}), at: Date.now() };
  });
  const s = streamed.current;
  const fresh = s.at >= job.at;
  const gone = fresh && s.gone === true;
  return { ...job, data: gone ? undefined : fresh && s.job ? s.job : job.data, gone };
}

/** Tasks completed, failed and running over time, from each new view of the job the page got. */
function ProgressChart({ job }: { job: Job }) {
  const [cols, setCols] = useState<number[][]>([[], [], [], []]);
  useEffect(() => {
    const p = job.progress;
    setCols((c) => addPoint(c, [Date.now() / 1000, p.completed, p.failed, p.running]));
  }, [job.progress.completed, job.progress.failed, job.progress.running, job.status]);
  return html`<section class="panel" id="progress-chart">
    <h2>Progress <span class="sub">tasks over time, since this page opened</span></h2>
    <${Chart}
      id="chart-progress"
      lines=${[
        { label: 'completed', color: '#1f9d55' },
        { label: 'failed', color: '#d64545' },
        { label: 'running', color: '#2f6fed', fill: true },
      ]}
      data=${cols}
    />
  </section>`;
}

export function JobPage({ jobId }: { jobId: string }) {
  const live = useLive(jobId);
  const job = useJob(jobId, live);
  const j = job.data;
  const settled = j ? TERMINAL.has(j.status) : false;
  // The tasks that moved come in the frames; the route is read when a frame could not carry them.
  const changed: Wake = useWake(live, 'job');
  const printed: Wake = useWake(live, 'logs');
  const tasks = usePoll(
    () => api<{ tasks: Task[] }>('GET', `/api/jobs/${jobId}/tasks?limit=${TASK_LIMIT}`, { stale: true }),
    [jobId, settled],
    settled ? SETTLED_MS : 1000,
    changed,
  );
  const streamedTasks = useStreamedTasks(live, jobId);
  // Only for the workers' names (an address rather than an id): they seldom change.
  const workers = usePoll(() => api<{ workers: Worker[] }>('GET', '/api/workers', { stale: true }), [], 30_000);
  const names = new Map((workers.data?.workers ?? []).map((w) => [w.worker_id, w.address.replace(/^https?:\/\//, '')]));
  const workerName = (id: string) => names.get(id) ?? id;
  const now = Date.now();

  if (job.gone || (job.error instanceof ApiError && job.error.status === 404 && !j)) {
    return html`<div class="panel">
      <h2>No job ${jobId}</h2>
      <p>It may have been deleted. <a href="/">Back to the jobs</a>.</p>
    </div>`;
  }
  if (!j)
    return html`<div class="panel">
      <${ErrorNote} error=${job.error} />
      <p class="empty">Loading ${jobId}…</p>
    </div>`;
  const ts = mergeTasks(tasks.data?.tasks ?? [], tasks.at, streamedTasks);
  return html`<div class="job-page" data-job-page=${j.job_id}>
    <div class="crumbs">
      <a href="/">Jobs</a> / <span class="mono">${j.job_id}</span>
      ${live.up ? html` <span class="ok-dot" id="live-state">live</span>` : html` <span class="dim" id="live-state">polling</span>`}
    </div>
    <section class="panel job-head">
      <div class="title">
        <h1>${j.name}</h1>
        <${Status} status=${j.status} />
        <${Actions} job=${j} refresh=${job.refresh} />
      </div>
      <${ErrorNote} error=${job.error} />
      <dl class="facts">
        <div>
          <dt>Type</dt>
          <dd>${j.type}</dd>
        </div>
        <div>
          <dt>Operation</dt>
          <dd class="mono">${j.operation ?? '—'}</dd>
        </div>
        <div>
          <dt>Submitted</dt>
          <dd>${clock(j.created_at)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>${clock(j.started_at)}</dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>${clock(j.finished_at)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>${duration(between(j.started_at, j.finished_at, now))}</dd>
        </div>
        ${
          j.type === 'batch'
            ? html`<div>
                <dt>Tasks</dt>
                <dd>${num(j.progress.total)} · ${j.progress.running} running · ${j.progress.failed} failed</dd>
              </div>`
            : ''
        }
      </dl>
      ${j.type === 'batch' ? html`<div class="big-progress"><${ProgressBar} p=${j.progress} /></div>` : ''}
      ${
        j.error
          ? html`<div class="note error">
              <b>${j.error.task !== undefined ? `Task ${j.error.task}: ` : ''}</b>${j.error.message}${
                j.error.stack
                  ? html`<details>
                      <summary>stack</summary>
                      <pre>${j.error.stack}</pre>
                    </details>`
                  : ''
              }
            </div>`
          : ''
      }
    </section>
    ${
      j.components
        ? html`<section class="panel" id="topology">
            <h2>Topology</h2>
            <div class="scroll"><${Topology} components=${j.components} /></div>
          </section>`
        : ''
    }
    ${j.type === 'batch' ? html`<${ProgressChart} job=${j} />` : ''}
    <${Stages} job=${j} />
    ${
      j.type === 'batch'
        ? html`<section class="panel" id="timeline">
            <h2>Timeline <span class="sub">task runs per worker</span></h2>
            <${Timeline} tasks=${ts} workerName=${workerName} now=${now} />
          </section>`
        : ''
    }
    ${j.type === 'batch' ? html`<${Tasks} tasks=${ts} workerName=${workerName} now=${now} />` : ''}
    <${Results} job=${j} />
    <${LogsPanel} job=${j} wake=${printed} />
  </div>`;
}
