// The task of the in-process pool baseline: does nothing, like Weir's `noop` (which returns
// its index), so the pool row measures only the cost of handing work to a thread and back.
export default function noop(idx: number): number[] {
  return [idx];
}
