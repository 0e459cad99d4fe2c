import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installRoot } from '../../src/common/install-root.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('the install root', () => {
  it('is the same from the sources, from tsc’s output and from the bundle', () => {
    expect(installRoot()).toBe(ROOT);
    expect(installRoot(join(ROOT, 'dist/src/worker'))).toBe(ROOT);
    expect(installRoot(join(ROOT, 'dist/bundle'))).toBe(ROOT);
  });

  it('is refused, naming where it was looked for, when no package.json lies above', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-no-root-'));
    try {
      expect(() => installRoot(dir)).toThrow(`no package.json above ${dir}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
