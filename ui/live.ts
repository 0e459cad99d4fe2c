// The page's one stream of changes (GET /api/live, server-sent events): while it is up the
// panels read the REST routes only when a frame says their part changed; when it breaks they
// poll as before, and it is opened again after a while.
import { useEffect, useRef, useState } from 'preact/hooks';
import { token } from './api.js';
import type { Job, Task, Worker } from './types.js';

export interface LiveFrame {
  seq: number;
  at: string;
  /** Which REST reads are out of date: 'workers', 'jobs' (the list), 'job' (the page's job's tasks), 'logs'. */
  changed?: string[];
  cluster?: { tasks_completed: number; tasks_failed: number; running: number; pending: number };
  master?: { id: number; role: string; term: number; commit_index: number; last_applied: number };
  /** Rows of the jobs list that changed, as GET /api/jobs shows them. */
  jobs?: Job[];
  jobs_gone?: string[];
  /** More jobs changed than the frame carries (the newest are there): a filtered list reads again. */
  jobs_more?: boolean;
  /** The workers as GET /api/workers lists them, when they moved (and every few frames). */
  workers?: Worker[];
  /** The open job's tasks that moved since the last frame, as GET /api/jobs/{job_id}/tasks shows them. */
  tasks?: Task[];
  /** The first frame's: the overview's last minutes, [ms, tasks completed, running]. */
  history?: [number, number, number][];
  job_id?: string;
  job?: Job;
  gone?: boolean;
}

/** Waits between attempts to open the stream again: it grows, so a master that refuses is not hammered. */
const RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];

/**
 * Opens the stream and hands each frame to `onFrame`; `onState(true)` once it answers 200,
 * `onState(false)` when it breaks or is refused (then it is tried again). Read with fetch rather than
 * EventSource, which cannot send the token. Returns a function that closes it.
 */
export function openLive(path: string, onFrame: (f: LiveFrame) => void, onState: (up: boolean) => void): () => void {
  let stopped = false;
  let ctrl: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let running = false;

  const run = async () => {
    running = true;
    ctrl = new AbortController();
    let up = false;
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      const t = token();
      if (t) headers.authorization = `Bearer ${t}`;
      const res = await fetch(path, { headers, cache: 'no-store', signal: ctrl.signal });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      up = true;
      failures = 0;
      onState(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = event
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (data && !stopped) onFrame(JSON.parse(data) as LiveFrame);
        }
      }
    } catch {
      // Refused, cut or aborted: the panels poll meanwhile.
    }
    running = false;
    if (stopped) return;
    // Down (again): the panels poll meanwhile.
    onState(false);
    if (!up) failures++;
    // A hidden tab holds no stream (it costs the master a frame a second for nobody); it opens
    // again when shown.
    if (!document.hidden) timer = setTimeout(() => void run(), RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]);
  };
  const onVisibility = () => {
    if (stopped) return;
    clearTimeout(timer);
    if (document.hidden) ctrl?.abort();
    else if (!running) {
      failures = 0;
      void run();
    }
  };
  document.addEventListener('visibilitychange', onVisibility);
  if (!document.hidden) void run();
  return () => {
    stopped = true;
    document.removeEventListener('visibilitychange', onVisibility);
    clearTimeout(timer);
    ctrl?.abort();
  };
}

export interface Live {
  /** Whether frames arrive now (the panels then poll only when told to). */
  up: boolean;
  /**
   * Whether the stream has answered (up or refused), or has taken too long to: the panels'
   * first reads wait for it, so that they are sent once the stream follows what they read
   * (nothing moves unseen in between) and are not sent twice.
   */
  ready: boolean;
  /** The last frame, and how many arrived (a key that changes with each). */
  frame: LiveFrame | undefined;
  count: number;
}

/** The stream for the overview (no job) or for one job's page, while the component is shown. */
/** How long the panels' first reads wait for the stream to answer. */
const READY_WAIT_MS = 2000;

export function useLive(jobId?: string, onFrame?: (f: LiveFrame) => void): Live {
  const [state, setState] = useState<Live>({ up: false, ready: false, frame: undefined, count: 0 });
  useEffect(() => {
    const path = jobId ? `/api/live?job=${encodeURIComponent(jobId)}` : '/api/live';
    const late = setTimeout(() => setState((s) => (s.ready ? s : { ...s, ready: true })), READY_WAIT_MS);
    const close = openLive(
      path,
      (f) => {
        onFrame?.(f);
        setState((s) => ({ up: true, ready: true, frame: f, count: s.count + 1 }));
      },
      (up) => setState((s) => ({ ...s, up, ready: true })),
    );
    return () => {
      clearTimeout(late);
      close();
    };
  }, [jobId]);
  return state;
}

/**
 * A key for usePoll's `wake`: it changes with each frame that says `topic` changed (or that
 * `also` picks), so the panel reads its route again then (and only then, while the stream is up).
 */
export function useWake(
  live: Live,
  topic: string,
  also?: (f: LiveFrame) => boolean,
): { live: boolean; ready: boolean; key: number } {
  const [key, setKey] = useState(0);
  useEffect(() => {
    const f = live.frame;
    if (f && (f.changed?.includes(topic) || also?.(f))) setKey((k) => k + 1);
  }, [live.count]);
  return { live: live.up, ready: live.ready, key };
}

/**
 * Hands each new frame to `take` as the component renders it — not in an effect after the
 * render, whose change would show only with the next frame (and a job's page gets none once
 * its job is still).
 */
export function useEachFrame(live: Live, take: (f: LiveFrame) => void): void {
  const seen = useRef(0);
  if (live.frame && live.count !== seen.current) {
    seen.current = live.count;
    take(live.frame);
  }
}
