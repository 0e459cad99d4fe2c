import { describe, expect, it } from 'vitest';
import {
  deathCause,
  executorFlags,
  isUnder,
  memoryUsedMb,
  netAllowed,
  outermost,
  parseStatm,
  permissionMessage,
  permissionFlags,
  rootsWithout,
  withRoot,
} from '../../src/worker/executor-rules.js';

describe('an executor’s rules', () => {
  it('starts it under the permission model, one flag per root, without processes or threads', () => {
    const flags = executorFlags(256, ['/app/dist', '/in,put'], ['/tmp']);
    expect(flags).toContain('--experimental-permission');
    expect(flags).toContain('--allow-fs-read=/in,put');
    expect(flags).toContain('--allow-fs-write=/tmp');
    expect(flags).toContain('--max-old-space-size=256');
    expect(flags.some((f) => /allow-(child-process|worker)/.test(f))).toBe(false);
  });

  it('gives each root once, and none that another holds (Node aborts on a path given twice)', () => {
    expect(outermost(['/tmp', '/app', '/tmp/', '/tmp/data/shuffle', '/tmpx'])).toEqual(['/tmp', '/app', '/tmpx']);
    expect(outermost(['/t/a', '/t/a*', '/t/ab*', '/t/b/c', '/t/a/x', '/t/b', '/t/bc*', '/'])).toEqual(['/']);
    expect(outermost(['/t/a', '/t/a*', '/t/ab*', '/t/b/c', '/t/a/x', '/t/b', '/t/bc*'])).toEqual([
      '/t/a*',
      '/t/b',
      '/t/bc*',
    ]);
    expect(executorFlags(64, ['/tmp', '/tmp'], []).filter((f) => f.startsWith('--allow-fs-read'))).toEqual([
      '--allow-fs-read=/tmp',
    ]);
  });

  it("leaves a worker's data dir out of a root that holds it, and nothing else (names made later included)", () => {
    const roots = outermost(rootsWithout('/tmp', '/tmp/weir-it/worker-1'));
    const readable = (path: string) => roots.some((r) => isUnder(path, r));
    for (const path of ['/tmp/weir-it/worker-1', '/tmp/weir-it/worker-1/LOCK', '/tmp/weir-it/worker-1/shuffle/j/0']) {
      expect(readable(path), path).toBe(false);
    }
    for (const path of [
      '/tmp/x.txt',
      '/tmp/w',
      '/tmp/weir',
      '/tmp/weir-it2/a',
      '/tmp/weir-i/a',
      '/tmp/weir-it/worker-10/LOCK',
      '/tmp/weir-it/worker-',
      '/tmp/weir-it/worker-2/x',
      '/tmp/weir-it/inside.txt',
      '/tmp/weir-it/a b,c',
    ]) {
      expect(readable(path), path).toBe(true);
    }
    // Node reads a `*` anywhere as a wildcard: only the last character may be one.
    expect(roots.filter((r) => r.slice(0, -1).includes('*'))).toEqual([]);
    expect(rootsWithout('/tmp', '/srv/data')).toEqual(['/tmp']);
    expect(rootsWithout('/srv/data/w/x', '/srv/data')).toEqual([]);
  });

  it("adds a job's own directory to the flags once, and not when a root holds it", () => {
    const base = permissionFlags(['/app', '/data/w'], ['/tmp']);
    expect(withRoot(base, '/srv/shuffle/job-a').slice(base.length)).toEqual([
      '--allow-fs-read=/srv/shuffle/job-a',
      '--allow-fs-write=/srv/shuffle/job-a',
    ]);
    expect(withRoot(base, '/data/w/shuffle/job-a').slice(base.length)).toEqual([
      '--allow-fs-write=/data/w/shuffle/job-a',
    ]);
  });

  it('counts memory mapped but not yet touched, over its resident baseline', () => {
    const base = parseStatm('182059 10240 8515 6802 0 20480 0')!;
    expect(base).toEqual({ residentMb: 40, dataMb: 80 });
    // A 1 GiB Buffer: zeroed pages, nothing resident yet, all of it mapped.
    expect(memoryUsedMb({ residentMb: 41, dataMb: 80 + 1024 }, base)).toBe(40 + 1024);
    expect(memoryUsedMb({ residentMb: 90, dataMb: 90 }, base)).toBe(90);
    expect(parseStatm('nonsense')).toBeUndefined();
  });

  it('tells how a process ended', () => {
    expect(deathCause(3, null)).toMatch(/exited with code 3$/);
    expect(deathCause(null, 'SIGKILL')).toMatch(/killed by SIGKILL$/);
  });

  it('names the path and the flag of a refusal', () => {
    const denied = (permission: string, resource?: string) => ({ code: 'ERR_ACCESS_DENIED', permission, resource });
    expect(permissionMessage(denied('FileSystemRead', '/etc/shadow'))).toBe(
      'permission_denied: /etc/shadow is outside --allow-read',
    );
    expect(permissionMessage(denied('FileSystemWrite', '/x'))).toBe('permission_denied: /x is outside --allow-write');
    expect(permissionMessage(denied('ChildProcess'))).toMatch(/cannot start processes/);
    expect(permissionMessage(new Error('ENOENT'))).toBeUndefined();
  });

  it('judges paths by whole segments', () => {
    expect(isUnder('/data/in/x.txt', '/data/in')).toBe(true);
    expect(isUnder('/data/in', '/data/in')).toBe(true);
    expect(isUnder('/data/input', '/data/in')).toBe(false);
    expect(isUnder('/etc', '/data')).toBe(false);
  });

  it('allows a URL by host, and by port when one is named', () => {
    expect(netAllowed('http://example.com/x', undefined)).toBe(true);
    expect(netAllowed('http://example.com/x', ['example.com'])).toBe(true);
    expect(netAllowed('https://example.com/x', ['example.com:443'])).toBe(true);
    expect(netAllowed('http://example.com:8080/x', ['example.com:80'])).toBe(false);
    expect(netAllowed('http://10.0.0.1/x', ['example.com'])).toBe(false);
    expect(netAllowed('http://[::1]:9/x', ['[::1]:9'])).toBe(true);
  });
});
