import { html } from 'htm/preact';
import { Component } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { pct } from './format.js';
import type { Progress } from './types.js';

export function Status({ status }: { status: string }) {
  return html`<span class=${`pill s-${status}`} data-status=${status}>${status}</span>`;
}

/** Completed, failed and running parts of the whole, with the count beside. */
export function ProgressBar({ p }: { p: Progress }) {
  // Completed of total, as the CLI counts; failed tasks show in red on the bar and in the tooltip.
  const done = p.completed;
  return html`<div
    class="progress"
    title=${`${p.completed} completed, ${p.failed} failed, ${p.running} running, ${p.pending} pending`}
  >
    <div class="bar">
      <span class="ok" style=${{ width: `${pct(p.completed, p.total)}%` }}></span>
      <span class="bad" style=${{ width: `${pct(p.failed, p.total)}%` }}></span>
      <span class="busy" style=${{ width: `${pct(p.running, p.total)}%` }}></span>
    </div>
    <span class="count" data-progress=${`${done}/${p.total}`}>${done}/${p.total}</span>
  </div>`;
}

/** A gauge from 0 to 1 (slots used, a buffer's fill). */
export function Meter({ value, warn = 0.8, label }: { value: number; warn?: number; label?: string }) {
  const v = Math.max(0, Math.min(1, value || 0));
  return html`<span class="meter" title=${label ?? `${Math.round(v * 100)}%`}>
    <span class=${v >= warn ? 'hot' : ''} style=${{ width: `${v * 100}%` }}></span>
  </span>`;
}

/** A button that asks once more before it acts (no browser dialog): a second click within 4 s does it. */
export function ConfirmButton({
  label,
  confirm,
  onConfirm,
  danger = false,
  disabled = false,
}: {
  label: string;
  confirm: string;
  onConfirm: () => void;
  danger?: boolean;
  disabled?: boolean;
}) {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const t = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(t);
  }, [armed]);
  return html`<button
    class=${`btn ${danger ? 'danger' : ''} ${armed ? 'armed' : ''}`}
    disabled=${disabled}
    onClick=${() => {
      if (armed) {
        setArmed(false);
        onConfirm();
      } else setArmed(true);
    }}
  >
    ${armed ? confirm : label}
  </button>`;
}

export function ErrorNote({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return html`<div class="note error">${error.message}</div>`;
}

/**
 * A component that renders again only when `same` says its props differ: a table's row that
 * did not change costs nothing when the frame that came every second changed another.
 */
type Rendered = ReturnType<typeof html>;

export function memoBy<P extends object>(render: (p: P) => Rendered, same: (a: P, b: P) => boolean) {
  return class Memo extends Component<P> {
    override shouldComponentUpdate(next: P): boolean {
      return !same(this.props as P, next);
    }
    override render(): Rendered {
      return render(this.props as P);
    }
  };
}

/** Props equal when their data fields are (functions and the like are not compared). */
export const sameData =
  <P extends object>(...keys: (keyof P)[]) =>
  (a: P, b: P): boolean =>
    keys.every((k) => a[k] === b[k] || JSON.stringify(a[k]) === JSON.stringify(b[k]));
