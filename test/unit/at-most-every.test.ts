import { describe, expect, it } from 'vitest';
import { AtMostEvery } from '../../src/common/at-most-every.js';

describe('a line said at most once an interval', () => {
  it('is said at once, held back within the interval, and said again after it with how many were held back', () => {
    let now = 1_000;
    const lines = new AtMostEvery(100, () => now);
    const said: number[] = [];
    const say = () => lines.say((heldBack) => said.push(heldBack));
    say();
    now += 50;
    say();
    say();
    expect(said).toEqual([0]);
    now += 50;
    say();
    expect(said).toEqual([0, 2]);
  });

  it('keeps each key to its own interval', () => {
    const lines = new AtMostEvery(100, () => 0);
    const said: string[] = [];
    for (const key of ['a', 'b', 'a', 'b']) lines.say(() => said.push(key), key);
    expect(said).toEqual(['a', 'b']);
  });

  it('takes the time from its caller when given', () => {
    const lines = new AtMostEvery(100, () => {
      throw new Error('the clock is not read when the caller says what time it is');
    });
    const said: number[] = [];
    lines.say(() => said.push(0), '', 0);
    lines.say(() => said.push(200), '', 200);
    expect(said).toEqual([0, 200]);
  });
});
