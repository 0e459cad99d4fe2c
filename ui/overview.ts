import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { ErrorNote, memoBy, Meter, ProgressBar, sameData, Status } from './bits.js';
import { addPoint, Chart } from './chart.js';
import { ago, between, clock, duration, num } from './format.js';
import { useEachFrame, useLive, useWake, type Live, type LiveFrame } from './live.js';
import { POLL_MS, usePoll } from './poll.js';
import type { ClusterStatus, Job, MasterView, Worker } from './types.js';

/** The masters as the one serving the page sees them; its own figures are its own. */
export function mastersOf(s: ClusterStatus): MasterView[] {
  return s.nodes.map((n) => ({
    ...n,
    ...(n.id === s.current_node_id
      ? { term: s.term, commit_index: s.commit_index, last_applied: s.last_applied, alarms: s.alarms ?? [] }
      : {}),
  }));
}

/** Whether this master has the route that gathers every master's figures (an older one has not). */
let gathers = true;

/** While the stream is up the masters are read every this many frames; this master's own figures come with each. */
const MASTERS_EVERY_FRAMES = 5;

export function Masters({ live }: { live: Live }) {
  const { data, error } = usePoll(
    async () => {
      // Every master's own figures when the API gathers them; else this master's view.
      if (gathers) {
        try {
          return await api<{ masters: MasterView[] }>('GET', '/api/cluster/masters', { stale: true });
        } catch (err) {
          if (!(err instanceof ApiError) || err.status !== 404) throw err;
          gathers = false;
        }
      }
      return { masters: mastersOf(await api<ClusterStatus>('GET', '/cluster/status')) };
    },
    [],
    POLL_MS,
    { live: live.up, ready: live.ready, key: Math.floor(live.count / MASTERS_EVERY_FRAMES) },
  );
  const own = live.up ? live.frame?.master : undefined;
  const masters = (data?.masters ?? []).map((m) =>
    own && m.id === own.id
      ? { ...m, term: own.term, commit_index: own.commit_index, last_applied: own.last_applied }
      : m,
  );
  return html`<section class="panel" id="masters">
    <h2>Masters <span class="sub">${masters.length || ''}</span></h2>
    <${ErrorNote} error=${error} />
    <table>
      <thead>
        <tr>
          <th>Address</th>
          <th>Role</th>
          <th class="num">Term</th>
          <th class="num">Commit</th>
          <th class="num">Applied</th>
          <th>Health</th>
        </tr>
      </thead>
      <tbody>
        ${masters.map(
          (m) =>
            html`<tr key=${m.id} data-master=${m.address}>
              <td><span class="mono">${m.address}</span> <span class="dim">#${m.id}</span></td>
              <td><span class=${`role r-${m.role}`}>${m.is_leader ? '★ ' : ''}${m.role}</span></td>
              <td class="num">${num(m.term)}</td>
              <td class="num">${num(m.commit_index)}</td>
              <td class="num">${num(m.last_applied)}</td>
              <td>
                ${m.healthy ? html`<span class="ok-dot">healthy</span>` : html`<span class="bad-dot">${m.error ?? 'unreachable'}</span>`}
                ${(m.alarms ?? []).map((a) => html` <span class="pill s-failed">${a}</span>`)}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** One worker's row: drawn again only when its figures changed. */
const WorkerRow = memoBy<{ w: Worker }>(({ w }) => {
  const m = w.metrics ?? {};
  return html`<tr class=${w.status === 'dead' ? 'dead' : ''} data-worker=${w.address}>
    <td>
      <span class="mono">${w.address}</span>
      <div class="dim mono small">${w.worker_id}</div>
    </td>
    <td><${Status} status=${w.status} /></td>
    <td>
      <${Meter} value=${w.active_tasks / w.max_tasks} warn=${1} label=${`${w.active_tasks} of ${w.max_tasks} slots`} />
      <span class="dim">${w.max_tasks}</span>
    </td>
    <td class="num">${w.active_tasks}</td>
    <td class="num">${m.cpu_percent === undefined ? '—' : `${num(m.cpu_percent, 0)}%`}</td>
    <td class="num">${m.memory_rss_mb === undefined ? '—' : `${num(m.memory_rss_mb)} MB`}</td>
    <td class="num">${num(m.task_rate, 1)}</td>
    <td class="num">
      ${num(m.tasks_done)}${m.tasks_failed ? html` <span class="bad-text">(${m.tasks_failed} failed)</span>` : ''}
    </td>
    <td class="dim">${w.status === 'dead' ? 'dead' : ago(w.last_heartbeat)}</td>
  </tr>`;
}, sameData('w'));

/**
 * What a list shows: the stream's copy when it came after the last read was sent (it is the
 * same view as the route's), else that read's answer.
 */
function newest<T>(read: T | undefined, readAt: number, streamed: { v: T; at: number } | undefined): T | undefined {
  return streamed && streamed.at >= readAt ? streamed.v : read;
}

export function Workers({ live }: { live: Live }) {
  const { data, at, error } = usePoll(
    () => api<{ workers: Worker[] }>('GET', '/api/workers', { stale: true }),
    [],
    POLL_MS,
    useWake(live, 'workers'),
  );
  // The frames carry the workers when they moved: the route is read only when a frame says so.
  const streamed = useRef<{ v: { workers: Worker[] }; at: number } | undefined>(undefined);
  useEachFrame(live, (f) => {
    if (f.workers) streamed.current = { v: { workers: f.workers }, at: Date.now() };
  });
  const shown = newest(data, at, streamed.current);
  const all = shown?.workers ?? [];
  // The dead ones at the end: they are history.
  const workers = [...all].sort((a, b) => Number(a.status === 'dead') - Number(b.status === 'dead'));
  const alive = all.filter((w) => w.status !== 'dead');
  const slots = alive.reduce((s, w) => s + w.max_tasks, 0);
  const busy = alive.reduce((s, w) => s + w.active_tasks, 0);
  const rate = alive.reduce((s, w) => s + (w.metrics?.task_rate ?? 0), 0);
  return html`<section class="panel" id="workers">
    <h2>
      Workers <span class="sub">${alive.length} alive · ${busy}/${slots} slots busy · ${num(rate, 1)} tasks/s</span>
    </h2>
    <${ErrorNote} error=${error} />
    ${
      workers.length === 0 && shown
        ? html`<p class="empty">No workers yet. Start one with <code>weir worker --master URL</code>.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Address</th>
                <th>Status</th>
                <th>Slots</th>
                <th class="num">Running</th>
                <th class="num">CPU</th>
                <th class="num">Memory</th>
                <th class="num">Tasks/s</th>
                <th class="num">Done</th>
                <th>Heartbeat</th>
              </tr>
            </thead>
            <tbody>
              ${workers.map((w) => html`<${WorkerRow} key=${w.worker_id} w=${w} />`)}
            </tbody>
          </table>`
    }
  </section>`;
}

/** The newest jobs the list reads (and filters). */
const JOB_ROWS = 100;
/**
 * Rows drawn at first, and added by each "show more": while jobs stream in, every drawn row
 * may change each second, and the page's cost follows the rows it draws.
 */
const JOB_PAGE = 25;
const STATUSES = ['', 'pending', 'running', 'completed', 'failed', 'cancelled'];

/**
 * The jobs list: read from GET /api/jobs, then kept up to date by the stream's rows (a row
 * streamed after the last read was sent is newer than that read's) until a frame says the
 * list must be read again.
 */
export function mergeJobs(
  read: Job[],
  readAt: number,
  streamed: Map<string, { job: Job; at: number }>,
  gone: Map<string, number>,
  status: string,
): Job[] {
  const rows = new Map(read.map((j) => [j.job_id, j]));
  for (const [id, s] of streamed) {
    if (s.at < readAt) streamed.delete(id);
    else rows.set(id, s.job);
  }
  for (const [id, at] of gone) {
    if (at < readAt - 60_000) gone.delete(id);
    rows.delete(id);
  }
  return [...rows.values()]
    .filter((j) => !status || j.status === status)
    .sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? '') || b.job_id.localeCompare(a.job_id))
    .slice(0, JOB_ROWS);
}

/** One job's row: drawn again only when the job changed. */
const JobRow = memoBy<{ j: Job }>(
  ({ j }) =>
    html`<tr data-job=${j.job_id}>
      <td>
        <a href=${`/jobs/${j.job_id}`} class="job-link">${j.name}</a>
        <div class="dim mono small">${j.job_id}</div>
      </td>
      <td><${Status} status=${j.status} /></td>
      <td>
        ${j.type === 'streaming' ? html`<span class="dim">streaming</span>` : html`<${ProgressBar} p=${j.progress} />`}
      </td>
      <td class="mono">${j.operation ?? ''}</td>
      <td class="dim">${clock(j.created_at)}</td>
      <td class="num">${duration(between(j.started_at, j.finished_at))}</td>
    </tr>`,
  sameData('j'),
);

export function Jobs({ live }: { live: Live }) {
  const [status, setStatus] = useState('');
  const [text, setText] = useState('');
  const [drawn, setDrawn] = useState(JOB_PAGE);
  // A filtered list reads again when the frame could not carry every changed row (the
  // unfiltered one needs only the newest, which it has).
  const wake = useWake(live, 'jobs', status ? (f) => f.jobs_more === true : undefined);
  const { data, at, error } = usePoll(
    () =>
      api<{ jobs: Job[] }>('GET', `/api/jobs?limit=${JOB_ROWS}${status ? `&status=${status}` : ''}`, { stale: true }),
    [status],
    POLL_MS,
    wake,
  );
  const streamed = useRef(new Map<string, { job: Job; at: number }>());
  const gone = useRef(new Map<string, number>());
  useEachFrame(live, (f) => {
    const now = Date.now();
    for (const j of f.jobs ?? []) streamed.current.set(j.job_id, { job: j, at: now });
    for (const id of f.jobs_gone ?? []) gone.current.set(id, now);
  });
  const needle = text.trim().toLowerCase();
  const listed = data ? mergeJobs(data.jobs, at, streamed.current, gone.current, status) : [];
  const jobs = listed.filter(
    (j) =>
      !needle ||
      j.name.toLowerCase().includes(needle) ||
      j.job_id.toLowerCase().includes(needle) ||
      (j.operation ?? '').includes(needle),
  );
  return html`<section class="panel" id="jobs">
    <h2>
      Jobs <span class="sub">${data ? `${jobs.length}${jobs.length === JOB_ROWS ? '+' : ''}` : ''}</span>
      <span class="filters">
        <input
          type="search"
          placeholder="Filter by name, id or operation"
          value=${text}
          onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)}
          aria-label="filter jobs"
        />
        <select
          value=${status}
          onChange=${(e: Event) => setStatus((e.target as HTMLSelectElement).value)}
          aria-label="status"
        >
          ${STATUSES.map((s) => html`<option value=${s}>${s || 'any status'}</option>`)}
        </select>
      </span>
    </h2>
    <${ErrorNote} error=${error} />
    ${
      jobs.length === 0 && data
        ? html`<p class="empty">
            ${needle || status ? 'No job matches.' : html`No jobs yet. Try <code>weir submit batch "Multiplicar" '{"operation":"multiply","factor":3,"task_count":5}'</code>.`}
          </p>`
        : html`<table class="jobs">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Status</th>
                  <th>Progress</th>
                  <th>Operation</th>
                  <th>Submitted</th>
                  <th class="num">Duration</th>
                </tr>
              </thead>
              <tbody>
                ${jobs.slice(0, drawn).map((j) => html`<${JobRow} key=${j.job_id} j=${j} />`)}
              </tbody>
            </table>
            ${
              jobs.length > drawn
                ? html`<p class="more">
                    <button class="btn ghost" id="jobs-more" onClick=${() => setDrawn((n) => n + JOB_PAGE)}>
                      Show ${Math.min(JOB_PAGE, jobs.length - drawn)} more
                    </button>
                    <span class="dim small">of the newest ${jobs.length}${jobs.length === JOB_ROWS ? '+' : ''}</span>
                  </p>`
                : ''
            }`
    }
  </section>`;
}

/** [seconds, tasks completed/s, running] columns from the stream's frames (its history first). */
export function clusterPoints(cols: number[][], prev: { at: number; done: number } | undefined, f: LiveFrame) {
  let next = cols;
  let last = prev;
  const add = (atMs: number, done: number, running: number) => {
    if (last && atMs > last.at)
      next = addPoint(next, [atMs / 1000, Math.max(0, ((done - last.done) * 1000) / (atMs - last.at)), running]);
    if (!last || atMs > last.at) last = { at: atMs, done };
  };
  for (const [atMs, done, running] of f.history ?? []) add(atMs, done, running);
  if (f.cluster && !f.history) add(Date.parse(f.at), f.cluster.tasks_completed, f.cluster.running);
  return { cols: next, last };
}

/** Tasks completed per second and tasks running, over the last minutes (as this master applied them). */
export function ClusterCharts({ live }: { live: Live }) {
  const [cols, setCols] = useState<number[][]>([[], [], []]);
  const last = useRef<{ at: number; done: number } | undefined>(undefined);
  useEffect(() => {
    if (!live.frame?.cluster) return;
    const r = clusterPoints(cols, last.current, live.frame);
    last.current = r.last;
    setCols(r.cols);
  }, [live.count]);
  const c = live.frame?.cluster;
  return html`<section class="panel" id="charts">
    <h2>
      Cluster
      <span class="sub">
        ${live.up ? html`<span class="ok-dot" id="live-state">live</span>` : html`<span class="dim" id="live-state">polling</span>`}
        ${c ? ` · ${num(c.running)} running · ${num(c.pending)} pending` : ''}
      </span>
    </h2>
    <div class="charts">
      <figure>
        <figcaption>Tasks completed / s</figcaption>
        <${Chart}
          id="chart-throughput"
          lines=${[{ label: 'tasks/s', color: '#1f9d55' }]}
          data=${[cols[0]!, cols[1]!]}
        />
      </figure>
      <figure>
        <figcaption>Tasks running</figcaption>
        <${Chart}
          id="chart-running"
          lines=${[{ label: 'running', color: '#2f6fed', fill: true }]}
          data=${[cols[0]!, cols[2]!]}
        />
      </figure>
    </div>
  </section>`;
}

export function Overview() {
  const live = useLive();
  return html`<div class="overview">
    <div class="row"><${ClusterCharts} live=${live} /></div>
    <div class="row"><${Masters} live=${live} /></div>
    <div class="row"><${Workers} live=${live} /></div>
    <div class="row"><${Jobs} live=${live} /></div>
  </div>`;
}
