import { html } from 'htm/preact';
import { duration } from './format.js';
import type { Task } from './types.js';

/**
 * Task runs per worker on one time axis: a lane per worker, a bar per task from its start to
 * its end (to now while it runs), coloured by status. A task's latest attempt is what the API
 * keeps, so that is what is drawn.
 */
export function Timeline({
  tasks,
  workerName,
  now,
}: {
  tasks: Task[];
  workerName: (id: string) => string;
  now: number;
}) {
  const runs = tasks.filter((t) => t.started_at && t.worker_id);
  if (runs.length === 0) return html`<p class="empty">No task has started yet.</p>`;
  const start = Math.min(...runs.map((t) => Date.parse(t.started_at!)));
  const end = Math.max(...runs.map((t) => (t.finished_at ? Date.parse(t.finished_at) : now)), start + 1);
  const span = end - start;
  const lanes = new Map<string, Task[]>();
  for (const t of runs) {
    const l = lanes.get(t.worker_id!) ?? [];
    l.push(t);
    lanes.set(t.worker_id!, l);
  }
  return html`<div class="timeline">
    <div class="axis"><span>0</span><span>${duration(span / 2)}</span><span>${duration(span)}</span></div>
    ${[...lanes.entries()].map(([worker, ts]) => {
      // Overlapping runs on one worker (its slots) are stacked in rows.
      const rows: number[] = [];
      const placed = ts
        .sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!))
        .map((t) => {
          const s = Date.parse(t.started_at!);
          const e = t.finished_at ? Date.parse(t.finished_at) : now;
          let row = rows.findIndex((freeAt) => freeAt <= s);
          if (row < 0) row = rows.push(0) - 1;
          rows[row] = e;
          return { t, s, e, row };
        });
      return html`<div class="lane" data-lane=${worker}>
        <div class="lane-name mono" title=${worker}>${workerName(worker)}</div>
        <div class="lane-runs" style=${{ height: `${Math.max(1, rows.length) * 10 + 4}px` }}>
          ${placed.map(
            ({ t, s, e, row }) =>
              html`<span
                class=${`run s-${t.status}`}
                title=${`task ${t.idx} · attempt ${t.attempt} · ${t.status} · ${duration(e - s)}`}
                style=${{ left: `${((s - start) / span) * 100}%`, width: `max(2px, ${((e - s) / span) * 100}%)`, top: `${row * 10 + 2}px` }}
              ></span>`,
          )}
        </div>
      </div>`;
    })}
  </div>`;
}
