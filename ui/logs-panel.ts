// The job page's logs: what the job's tasks printed, filtered by task, live while it runs.
import { html } from 'htm/preact';
import { useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { ErrorNote } from './bits.js';
import { usePoll, type Wake } from './poll.js';
import { TERMINAL, type Job } from './types.js';

/** A line a task printed (GET /api/jobs/{id}/logs). */
export interface LogLine {
  task: number;
  attempt: number;
  stream: 'stdout' | 'stderr';
  time: string;
  text: string;
  component?: string;
  instance?: number;
}

/** Lines kept on the page (the last ones): the CLI and the API have them all. */
const SHOWN = 2000;
/** Pages asked for per poll, so a big log arrives over a few seconds rather than in one go. */
const PAGES_PER_POLL = 5;

/**
 * The lines after `cursor` (all of them up to PAGES_PER_POLL pages), and where to ask from
 * next time: the one fetch helper of the logs panel.
 */
export async function fetchLogs(
  jobId: string,
  task: number | undefined,
  cursor: string | undefined,
): Promise<{ lines: LogLine[]; cursor: string | undefined }> {
  const lines: LogLine[] = [];
  for (let i = 0; i < PAGES_PER_POLL; i++) {
    const q = new URLSearchParams({ limit: '1000' });
    if (task !== undefined) q.set('task', String(task));
    if (cursor) q.set('cursor', cursor);
    const page = await api<{ lines: LogLine[]; next_cursor: string | null; follow_cursor: string }>(
      'GET',
      `/api/jobs/${jobId}/logs?${q}`,
      { stale: true },
    );
    lines.push(...page.lines);
    cursor = page.follow_cursor;
    if (!page.next_cursor) break;
  }
  return { lines, cursor };
}

const who = (l: LogLine) => (l.component === undefined ? `task ${l.task}` : `${l.component}[${l.instance}]`);
const timeOf = (iso: string) => /T(\d\d:\d\d:\d\d\.\d\d\d)/.exec(iso)?.[1] ?? iso;

export function LogsPanel({ job, wake }: { job: Job; wake?: Wake }) {
  const [taskText, setTaskText] = useState('');
  const task = /^\d+$/.test(taskText) ? Number(taskText) : undefined;
  const settled = TERMINAL.has(job.status);
  // What this panel has read so far, for the filter it was read with.
  const seen = useRef<{ key: string; cursor: string | undefined; lines: LogLine[] }>({
    key: '',
    cursor: undefined,
    lines: [],
  });
  const key = `${job.job_id}/${task ?? ''}`;
  const { data, error } = usePoll(
    async () => {
      if (seen.current.key !== key) seen.current = { key, cursor: undefined, lines: [] };
      const s = seen.current;
      const got = await fetchLogs(job.job_id, task, s.cursor);
      if (seen.current !== s) return s.lines;
      s.cursor = got.cursor;
      if (got.lines.length) s.lines = [...s.lines, ...got.lines].slice(-SHOWN);
      return s.lines;
    },
    [key, settled],
    settled ? 60_000 : 1000,
    wake,
  );
  const lines = data ?? [];
  return html`<section class="panel" id="logs">
    <h2>
      Logs <span class="sub">${settled ? '' : job.type === 'streaming' ? 'live' : 'each attempt’s, as it ends'}</span>
      <span class="filters">
        <input
          type="search"
          inputmode="numeric"
          placeholder="task (all)"
          value=${taskText}
          onInput=${(e: Event) => setTaskText((e.target as HTMLInputElement).value.trim())}
          aria-label="only this task"
          data-logs-task
        />
      </span>
    </h2>
    <${ErrorNote} error=${error} />
    ${
      data === undefined
        ? html`<p class="empty">Loading…</p>`
        : lines.length === 0
          ? html`<p class="empty">
              Nothing printed${task === undefined ? '' : ` by task ${task}`}${settled ? '' : ' yet'}.
            </p>`
          : html`<pre class="results logs" data-logs>
${lines.map(
                (l) =>
                  html`<span class=${l.stream === 'stderr' ? 'bad-text' : ''}
                    ><span class="dim">${timeOf(l.time)} ${who(l)} #${l.attempt}</span> ${l.text}${'\n'}</span
                  >`,
              )}</pre>`
    }
    <p class="dim small">
      ${lines.length >= SHOWN ? `The last ${SHOWN} lines. ` : ''}All of them: <code>weir logs ${job.job_id}</code>
      ${task === undefined ? '' : html` <code>--task ${task}</code>`}.
    </p>
  </section>`;
}
