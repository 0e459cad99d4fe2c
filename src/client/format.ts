import { CONTROL_CHARS } from '../common/control-chars.js';
import type { ClusterStatus, JobView, LogLineView, WorkerView } from './sdk.js';

/**
 * Text from the cluster as a terminal shows it safely: a control character (a newline that
 * would forge a table row, an escape that would clear the screen) is printed as its escape.
 */
export const printable = (s: string): string =>
  s.replace(CONTROL_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function progressLine(j: JobView): string {
  const p = j.progress;
  const line = `${p.completed}/${p.total} completed, ${p.running} running, ${p.pending} pending, ${p.failed} failed`;
  const current = j.stages?.find((s) => s.status === 'running' || s.status === 'pending');
  return current ? `${line} (stage ${current.name}: ${current.completed}/${current.total})` : line;
}

export function formatJob(j: JobView): string {
  const lines = [
    `job ${j.job_id}  "${printable(j.name)}"  ${j.type}${j.operation ? `/${j.operation}` : ''}  ${j.status.toUpperCase()}`,
    `progress: ${progressLine(j)}`,
    `created ${when(j.created_at)}  started ${when(j.started_at)}  finished ${when(j.finished_at)}`,
  ];
  if (j.stages) {
    lines.push(
      table(
        ['STAGE', 'STATUS', 'DONE', 'RUNNING', 'PENDING', 'FAILED'],
        j.stages.map((s) => [
          s.name,
          s.status,
          `${s.completed}/${s.total}`,
          String(s.running),
          String(s.pending),
          String(s.failed),
        ]),
      ),
    );
  }
  if (j.components) {
    lines.push(
      table(
        ['COMPONENT', 'KIND', '#', 'WORKER', 'IN/S', 'OUT/S', 'BUFFER', 'PENDING', 'BACKPRESSURE'],
        j.components.flatMap((c) =>
          c.instances.map((i) => [
            c.id,
            c.kind,
            String(i.index),
            i.address ?? i.status,
            String(i.in_per_s),
            String(i.out_per_s),
            `${Math.round(i.queue_fill * 100)}%`,
            String(i.pending),
            i.backpressure ? 'yes' : 'no',
          ]),
        ),
      ),
    );
  }
  if (j.output) {
    const bytes = j.output.parts.reduce((n, p) => n + p.bytes, 0);
    lines.push(
      `output: ${j.output.parts.length} part file(s), ${(bytes / 1048576).toFixed(1)} MiB in ${j.output.path}`,
    );
  }
  if (j.error) {
    lines.push(
      `error: task ${j.error.task} failed${j.error.attempts ? ` after ${j.error.attempts} attempt${j.error.attempts === 1 ? '' : 's'}` : ''}: ${printable(j.error.message)}`,
    );
    if (j.error.stack) {
      const stack = j.error.stack.split('\n');
      // Its first line is "Name: message", the message just printed (a permission_denied
      // message, which names its code, read twice over).
      if (stack[0]?.endsWith(j.error.message)) stack.shift();
      // What user code threw is printed as text, never as terminal commands.
      if (stack.length) lines.push(stack.map((l) => `  ${printable(l)}`).join('\n'));
    }
  }
  return lines.join('\n');
}

/** Left-aligned columns; the last column may be ragged. */
export function table(header: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatJobs(jobs: JobView[]): string {
  if (jobs.length === 0) return 'no jobs yet; submit one with: weir submit batch NAME';
  return table(
    ['JOB', 'NAME', 'STATUS', 'DONE', 'CREATED'],
    jobs.map((j) => [j.job_id, j.name, j.status, `${j.progress.completed}/${j.progress.total}`, when(j.created_at)]),
  );
}

export function formatWorkers(workers: WorkerView[]): string {
  if (workers.length === 0) return 'no workers registered; start one with: weir worker --master URL';
  return table(
    ['WORKER', 'ADDRESS', 'STATUS', 'TASKS', 'LAST HEARTBEAT'],
    workers.map((w) => [w.worker_id, w.address, w.status, `${w.active_tasks}/${w.max_tasks}`, when(w.last_heartbeat)]),
  );
}

export function formatCluster(c: ClusterStatus): string {
  const head = `node ${c.current_node_id} is ${c.current_role}; leader ${c.leader_id ?? 'unknown'} (${c.leader_address ?? '-'}); term ${c.term}, commit ${c.commit_index}, applied ${c.last_applied}`;
  // An older master has no alarms field: none then.
  const alarms = c.alarms?.length
    ? `\nALARM: ${c.alarms.join(', ')} (writes that add data are refused; free space or delete jobs)`
    : '';
  return `${head}${alarms}\n${table(
    ['ID', 'ADDRESS', 'ROLE', 'HEALTHY'],
    c.nodes.map((n) => [String(n.id), n.address, n.role + (n.is_leader ? ' *' : ''), n.healthy ? 'yes' : 'no']),
  )}`;
}

/**
 * A line a task printed, as `weir logs` shows it: `task 3 #1 stderr 12:00:01.123 text` (time
 * of day in UTC); a streaming instance's names its component and instance too.
 */
export function formatLogLine(l: LogLineView): string {
  const who = l.component === undefined ? `task ${l.task}` : `task ${l.task} (${l.component}[${l.instance}])`;
  const time = /T(\d\d:\d\d:\d\d\.\d\d\d)/.exec(l.time)?.[1] ?? l.time;
  return `${who} #${l.attempt} ${l.stream} ${time} ${l.text}`;
}
