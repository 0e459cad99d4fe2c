import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Line {
  label: string;
  color: string;
  /** Filled below the line (an area), for counts such as running tasks. */
  fill?: boolean;
}

const stepped = uPlot.paths.stepped!({ align: 1 });

/** Points kept in a chart's columns: 10 minutes at one a second. */
export const MAX_POINTS = 600;

/**
 * A time chart (uPlot): x in seconds since the epoch, one column per line. The plot is made
 * once and given new columns as they come (setData), never rebuilt, so a chart that moves
 * every second costs little; its width follows its box.
 */
export function Chart({
  id,
  lines,
  data,
  height = 140,
}: {
  id: string;
  lines: Line[];
  data: number[][];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: {
        // No points yet, or one: the last minute up to now (uPlot's own range for them spans years).
        x: {
          time: true,
          range: (_u, min, max) => {
            if (min == null || max == null || max - min < 1) {
              const end = max ?? Date.now() / 1000;
              return [end - 60, end];
            }
            return [min, max];
          },
        },
        y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 0) * 1.1)] },
      },
      axes: [
        { stroke: '#6b7385', grid: { stroke: '#e3e6ec' } },
        { stroke: '#6b7385', grid: { stroke: '#e3e6ec' }, size: 56 },
      ],
      series: [
        {},
        ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 1.5,
          points: { show: false },
          // A figure holds until the next point (frames come only when something changed): a
          // line drawn straight between two points minutes apart showed a climb that never was.
          paths: stepped,
          ...(l.fill ? { fill: `${l.color}22` } : {}),
        })),
      ],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const seen = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    seen.observe(el);
    return () => {
      seen.disconnect();
      u.destroy();
      plot.current = undefined;
    };
  }, []);

  useEffect(() => plot.current?.setData(data as uPlot.AlignedData), [data]);

  return html`<div class="chart" id=${id} data-points=${data[0]?.length ?? 0} ref=${box}></div>`;
}

/** Appends one point to columns (a new array, so that Preact sees the change), keeping the last MAX_POINTS. */
export function addPoint(cols: number[][], point: number[]): number[][] {
  return cols.map((c, i) => {
    const next = [...c, point[i]!];
    return next.length > MAX_POINTS ? next.slice(next.length - MAX_POINTS) : next;
  });
}
