import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { ErrorNote, Meter, ProgressBar, Status } from './bits.js';
import { ago, between, clock, duration, num } from './format.js';
import { usePoll } from './poll.js';
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

export function Masters() {
  const { data, error } = usePoll(async () => {
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
  }, []);
  const masters = data?.masters ?? [];
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

export function Workers() {
  const { data, error } = usePoll(() => api<{ workers: Worker[] }>('GET', '/api/workers', { stale: true }), []);
  const all = data?.workers ?? [];
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
      workers.length === 0 && data
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
              ${workers.map((w) => {
                const m = w.metrics ?? {};
                return html`<tr key=${w.worker_id} class=${w.status === 'dead' ? 'dead' : ''} data-worker=${w.address}>
                  <td>
                    <span class="mono">${w.address}</span>
                    <div class="dim mono small">${w.worker_id}</div>
                  </td>
                  <td><${Status} status=${w.status} /></td>
                  <td>
                    <${Meter}
                      value=${w.active_tasks / w.max_tasks}
                      warn=${1}
                      label=${`${w.active_tasks} of ${w.max_tasks} slots`}
                    />
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
              })}
            </tbody>
          </table>`
    }
  </section>`;
}

/** The newest jobs the list shows (and filters). */
const JOB_ROWS = 100;
const STATUSES = ['', 'pending', 'running', 'completed', 'failed', 'cancelled'];

export function Jobs() {
  const [status, setStatus] = useState('');
  const [text, setText] = useState('');
  const { data, error } = usePoll(
    () =>
      api<{ jobs: Job[] }>('GET', `/api/jobs?limit=${JOB_ROWS}${status ? `&status=${status}` : ''}`, { stale: true }),
    [status],
  );
  const needle = text.trim().toLowerCase();
  const jobs = (data?.jobs ?? []).filter(
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
              ${jobs.map(
                (j) =>
                  html`<tr key=${j.job_id} data-job=${j.job_id}>
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
              )}
            </tbody>
          </table>`
    }
  </section>`;
}

export function Overview() {
  return html`<div class="overview">
    <div class="row"><${Masters} /></div>
    <div class="row"><${Workers} /></div>
    <div class="row"><${Jobs} /></div>
  </div>`;
}
