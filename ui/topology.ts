import { html } from 'htm/preact';
import { num } from './format.js';
import { layout } from './topology-layout.js';
import type { Component, Instance } from './types.js';

const HEADER = 46;
const ROW = 22;

const sum = (is: Instance[], f: (i: Instance) => number) => is.reduce((s, i) => s + (f(i) || 0), 0);

/** A streaming job's components as a graph, each instance with its rates, buffer and backpressure. */
export function Topology({ components }: { components: Component[] }) {
  const nodes = components.map((c) => ({
    id: c.id,
    inputs: (c.inputs ?? []).map((i) => i.from),
    height: HEADER + c.instances.length * ROW + 8,
  }));
  const g = layout(nodes);
  const byId = new Map(components.map((c) => [c.id, c]));
  const pressured = new Set(components.filter((c) => c.instances.some((i) => i.backpressure)).map((c) => c.id));
  return html`<div class="topology" style=${{ width: `${g.width}px`, height: `${g.height}px` }}>
    <svg width=${g.width} height=${g.height} class="edges">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" class="arrow" />
        </marker>
      </defs>
      ${g.edges.map((e) => {
        const grouping = byId.get(e.to)?.inputs?.find((i) => i.from === e.from)?.grouping ?? '';
        return html`<path d=${e.path} class=${pressured.has(e.to) ? 'edge hot' : 'edge'} marker-end="url(#arrow)"
          ><title>${e.from} → ${e.to} (${grouping})</title></path
        >`;
      })}
    </svg>
    ${g.nodes.map((p) => {
      const c = byId.get(p.id)!;
      const is = c.instances;
      return html`<div
        class=${`node ${pressured.has(c.id) ? 'hot' : ''}`}
        data-component=${c.id}
        style=${{ left: `${p.x}px`, top: `${p.y}px`, width: `${p.width}px`, height: `${p.height}px` }}
      >
        <div class="node-head">
          <b>${c.id}</b> <span class="dim">${c.kind} ×${c.parallelism}</span>
          <div class="small">
            ${`in ${num(
              sum(is, (i) => i.in_per_s),
              1,
            )}/s · out ${num(
              sum(is, (i) => i.out_per_s),
              1,
            )}/s`}
            ${sum(is, (i) => i.errors) ? html` · <span class="bad-text">${num(sum(is, (i) => i.errors))} errors</span>` : ''}
          </div>
        </div>
        ${is.map(
          (i) =>
            html`<div
              class="inst small"
              title=${`instance ${i.index} on ${i.address ?? 'no worker'}: ${num(i.events_in)} in, ${num(i.events_out)} out, ${i.pending} pending`}
            >
              <span class="mono">#${i.index}</span>
              <span class="mono dim addr"
                >${i.status === 'running' ? (i.address ?? '').replace(/^https?:\/\//, '') : i.status}</span
              >
              <span class="num">${num(i.in_per_s, 0)}→${num(i.out_per_s, 0)}</span>
              <span class="buf" title=${`buffer ${Math.round((i.queue_fill || 0) * 100)}% full`}
                ><span
                  class=${i.backpressure ? 'hot' : ''}
                  style=${{ width: `${Math.min(100, (i.queue_fill || 0) * 100)}%` }}
                ></span
              ></span>
              ${i.backpressure ? html`<span class="bp" title="backpressure">BP</span>` : ''}
            </div>`,
        )}
      </div>`;
    })}
  </div>`;
}
