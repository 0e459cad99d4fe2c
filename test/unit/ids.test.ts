import { describe, expect, it } from 'vitest';
import { ID_PATTERN, newId, newUploadId, UPLOAD_ID, uploadMadeAt } from '../../src/common/ids.js';

describe('newId', () => {
  it('gives no two ids alike, across many refills of its pool of random bytes', () => {
    const ids = Array.from({ length: 10_000 }, () => newId('job', 1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).toMatch(ID_PATTERN);
      expect(id).toMatch(/^job-[0-9a-z]{8}[0-9a-f]{16}$/);
    }
  });

  it('sorts ids of later moments after earlier ones', () => {
    const [a, b] = [newId('job', 1_700_000_000_000), newId('job', 1_700_000_000_001)];
    expect(a.slice(0, 12) < b.slice(0, 12)).toBe(true);
  });
});

describe('upload ids', () => {
  it('are unguessable, and say when their upload began', () => {
    const ids = Array.from({ length: 1000 }, () => newUploadId(1_796_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).toMatch(UPLOAD_ID);
      expect(id).toMatch(/^up_[0-9a-f]{44}$/);
      expect(uploadMadeAt(id)).toBe(1_796_000_000_000);
    }
  });

  it('made before they carried a time are still ids, of no known age', () => {
    const older = `up_${'ab'.repeat(16)}`;
    expect(older).toMatch(UPLOAD_ID);
    expect(uploadMadeAt(older)).toBeUndefined();
    for (const bad of [
      'up_',
      `up_${'a'.repeat(33)}`,
      `up_${'g'.repeat(44)}`,
      `UP_${'a'.repeat(32)}`,
      `up_${'a'.repeat(45)}`,
    ]) {
      expect(bad).not.toMatch(UPLOAD_ID);
      expect(uploadMadeAt(bad)).toBeUndefined();
    }
  });
});
