// A layered layout for a streaming topology (a DAG: submission refuses cycles): each
// component in the column after its deepest input, spouts first; columns ordered to keep a
// component near its inputs. Pure: sizes in, positions and edge paths out.

export interface LayoutNode {
  id: string;
  inputs: readonly string[];
  height: number;
}

export interface Placed {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  layer: number;
}

export interface Edge {
  from: string;
  to: string;
  /** An SVG path: a horizontal S-curve from the source's right side to the target's left. */
  path: string;
}

export interface Layout {
  nodes: Placed[];
  edges: Edge[];
  width: number;
  height: number;
}

export interface LayoutOptions {
  nodeWidth: number;
  gapX: number;
  gapY: number;
}

const DEFAULTS: LayoutOptions = { nodeWidth: 240, gapX: 72, gapY: 24 };

/** Each node's column: 0 for sources, else one past its deepest input (inputs it doesn't know are ignored). */
export function layers(nodes: readonly LayoutNode[]): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    // A cycle cannot be submitted; if one came anyway, cut it here rather than loop.
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const ins = (byId.get(id)?.inputs ?? []).filter((i) => byId.has(i) && i !== id);
    const d = ins.length ? Math.max(...ins.map(depth)) + 1 : 0;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  for (const n of nodes) depth(n.id);
  return layer;
}

export function layout(nodes: readonly LayoutNode[], opts: Partial<LayoutOptions> = {}): Layout {
  const o = { ...DEFAULTS, ...opts };
  const layerOf = layers(nodes);
  const columns: LayoutNode[][] = [];
  for (const n of nodes) (columns[layerOf.get(n.id)!] ??= []).push(n);

  const placed = new Map<string, Placed>();
  let height = 0;
  columns.forEach((col, li) => {
    // Order by the mean row of the inputs (barycentre), so edges cross less.
    const centre = (n: LayoutNode) => {
      const ys = n.inputs
        .map((i) => placed.get(i))
        .filter((p): p is Placed => !!p)
        .map((p) => p.y + p.height / 2);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
    };
    const ordered = li === 0 ? col : [...col].sort((a, b) => centre(a) - centre(b));
    let y = 0;
    for (const n of ordered) {
      const want = li === 0 ? y : Math.max(y, centre(n) - n.height / 2);
      placed.set(n.id, {
        id: n.id,
        x: li * (o.nodeWidth + o.gapX),
        y: want,
        width: o.nodeWidth,
        height: n.height,
        layer: li,
      });
      y = want + n.height + o.gapY;
    }
    height = Math.max(height, y - o.gapY);
  });

  const edges: Edge[] = [];
  for (const n of nodes) {
    const to = placed.get(n.id)!;
    for (const from of new Set(n.inputs)) {
      const f = placed.get(from);
      if (!f || from === n.id) continue;
      const x1 = f.x + f.width;
      const y1 = f.y + f.height / 2;
      const x2 = to.x;
      const y2 = to.y + to.height / 2;
      const mid = (x1 + x2) / 2;
      edges.push({ from, to: n.id, path: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` });
    }
  }
  const width = columns.length ? columns.length * o.nodeWidth + (columns.length - 1) * o.gapX : 0;
  return { nodes: nodes.map((n) => placed.get(n.id)!), edges, width, height: Math.max(0, height) };
}
