import { describe, expect, it } from 'vitest';
import {
  escapedUploadId,
  ID_PATTERN,
  newId,
  newUploadId,
  UPLOAD_ID,
  uploadIdOfUrl,
  uploadMadeAt,
} from '../../src/common/ids.js';

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

describe('an upload URL written with escapes', () => {
  const id = newUploadId(1_796_000_000_000);
  it('is told apart from one written as its upload answered', () => {
    expect(uploadIdOfUrl(`http://m:1/uploads/${id}`)).toBe(id);
    expect(escapedUploadId(`http://m:1/uploads/${id}`)).toBeUndefined();
    for (const path of [
      `/%75ploads/${id}`,
      `/uploads/up%5F${id.slice(3)}`,
      `/uploads/${id.slice(0, 10)}%${id.charCodeAt(10).toString(16)}${id.slice(11)}`,
    ]) {
      expect(uploadIdOfUrl(`http://m:1${path}`), path).toBeUndefined();
      expect(escapedUploadId(`http://m:1${path}`), path).toBe(id);
    }
  });

  it('names nothing when it decodes to no upload, or cannot be decoded', () => {
    for (const url of ['http://m:1/data/%41.txt', 'http://m:1/uploads/%E0%A4%A', 'not a url', 7, undefined]) {
      expect(escapedUploadId(url)).toBeUndefined();
    }
  });
});
