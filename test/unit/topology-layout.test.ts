import { describe, expect, it } from 'vitest';
import { layers, layout } from '../../ui/topology-layout.js';

// The dashboard draws a streaming topology in columns: sources first, each component one column
// after its deepest input.
describe("the dashboard's topology layout", () => {
  const wordcount = [
    { id: 'lines', inputs: [], height: 80 },
    { id: 'split', inputs: ['lines'], height: 80 },
    { id: 'count', inputs: ['split'], height: 80 },
    { id: 'out', inputs: ['count'], height: 50 },
  ];

  it('puts each component one column after its deepest input', () => {
    const diamond = [
      { id: 'a', inputs: [], height: 10 },
      { id: 'b', inputs: ['a'], height: 10 },
      { id: 'c', inputs: ['a', 'b'], height: 10 },
      { id: 'd', inputs: ['c', 'a'], height: 10 },
    ];
    expect(Object.fromEntries(layers(diamond))).toEqual({ a: 0, b: 1, c: 2, d: 3 });
  });

  it('draws one edge per input, from the right side of the source to the left side of the target', () => {
    const g = layout(wordcount, { nodeWidth: 100, gapX: 50, gapY: 10 });
    expect(g.nodes.map((n) => n.x)).toEqual([0, 150, 300, 450]);
    expect(g.edges.map((e) => `${e.from}>${e.to}`)).toEqual(['lines>split', 'split>count', 'count>out']);
    expect(g.edges[0]!.path).toMatch(/^M100,40 C/);
    expect(g.width).toBe(550);
    expect(g.height).toBe(80);
  });

  it('stacks the components of one column without overlap', () => {
    const fan = [
      { id: 's', inputs: [], height: 40 },
      { id: 'x', inputs: ['s'], height: 60 },
      { id: 'y', inputs: ['s'], height: 60 },
    ];
    const [, x, y] = layout(fan, { gapY: 10 }).nodes;
    expect(Math.abs(x!.y - y!.y)).toBeGreaterThanOrEqual(70);
  });

  it('survives what submission refuses: unknown inputs and cycles', () => {
    const bad = [
      { id: 'a', inputs: ['b', 'ghost'], height: 10 },
      { id: 'b', inputs: ['a'], height: 10 },
      { id: 'c', inputs: ['c'], height: 10 },
    ];
    const g = layout(bad);
    expect(g.nodes).toHaveLength(3);
    expect(g.edges.every((e) => e.from !== 'ghost' && e.from !== e.to)).toBe(true);
  });
});
