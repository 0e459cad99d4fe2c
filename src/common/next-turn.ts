/**
 * Returns a function that asks for `fn` to run on the next turn of the event loop: however
 * many times it is asked before then, `fn` runs once — so whatever arrives in one turn is
 * handled together (one Ready, one frame, one proposal). Asked while `fn` runs, it runs again
 * on the turn after.
 */
export function onNextTurn(fn: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      fn();
    });
  };
}
