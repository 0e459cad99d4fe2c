// The boundary fuzzer's generators: one seed draws the same things; the valid frames it
// mutates from are valid for the decoders they target (else every mutation would start
// from garbage and none would reach past the schema); and what it sends leaves alone what
// its test waits for (acknowledged jobs, the real masters) and stays on 127.0.0.x.
import { describe, expect, it } from 'vitest';
import { decodeFrame as decodePeerFrame } from '../../src/consensus/peer-frame.js';
import { newCodec } from '../../src/protocol/msgpack.js';
import { decodeFrame as decodeLinkFrame, encodeFrame as encodeLinkFrame } from '../../src/protocol/stream-link.js';
import { decodeToMaster, encode } from '../../src/protocol/worker-channel.js';
import {
  MASTER_ROUTES,
  Rng,
  hasStaleTerms,
  httpRequest,
  linkFrame,
  mutate,
  mutateBytes,
  mutatePath,
  peerFrame,
  randomValue,
  staleTerms,
  toMasterFrame,
  type IdPools,
  type Ref,
} from '../fuzz/generators.js';

const view = { term: 7, index: 120, commit: 118, ids: [151, 152, 153] };

describe('Rng', () => {
  it('draws the same numbers from the same seed, and forks draw their own', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const draws = (r: Rng) => Array.from({ length: 50 }, () => r.int(0, 1000));
    expect(draws(a)).toEqual(draws(b));
    expect(draws(a.fork())).not.toEqual(draws(new Rng(43)));
  });

  it('int stays within its bounds, both included', () => {
    const r = new Rng(1);
    const seen = new Set(Array.from({ length: 2000 }, () => r.int(-2, 2)));
    expect([...seen].sort()).toEqual([-1, -2, 0, 1, 2]);
  });
});

describe('mutate', () => {
  it('leaves its input alone and is the same for the same seed', () => {
    const frame = { t: 'hello', running: [{ job_id: 'j', idx: 0, attempt: 1 }], unacked: [] };
    const copy = structuredClone(frame);
    const a = Array.from({ length: 200 }, () => 0).map((_, i) => mutate(new Rng(i), frame, true));
    const b = Array.from({ length: 200 }, () => 0).map((_, i) => mutate(new Rng(i), frame, true));
    expect(frame).toEqual(copy);
    const packer = newCodec();
    expect(a.map((v) => packer.pack(v).toString('hex'))).toEqual(b.map((v) => packer.pack(v).toString('hex')));
  });

  it('changes what it is given, prototype keys included, and what it makes can be packed', () => {
    const r = new Rng(7);
    const packer = newCodec();
    const frame = { from: 1, msgs: [{ type: 'heartbeat', from: 1, to: 2, term: 3, commit: 4, ctx: 5 }] };
    const original = packer.pack(frame).toString('hex');
    const hasProtoKey = (v: unknown): boolean =>
      !!v &&
      typeof v === 'object' &&
      Object.keys(v).some(
        (k) => ['__proto__', 'constructor', 'prototype'].includes(k) || hasProtoKey((v as Record<string, unknown>)[k]),
      );
    let changed = 0;
    let proto = 0;
    for (let i = 0; i < 300; i++) {
      const m = mutate(r, frame, true);
      if (packer.pack(m).toString('hex') !== original) changed++;
      if (hasProtoKey(m)) proto++;
    }
    expect(changed).toBeGreaterThan(270);
    expect(proto).toBeGreaterThan(10);
  });

  it('mutates any value it can make without throwing (typed arrays, dates, sets, prototype keys)', () => {
    const r = new Rng(8);
    for (let i = 0; i < 2000; i++) mutate(r, { a: randomValue(r, 3, true), b: [randomValue(r, 2, true)] }, true);
  });

  it('mutateBytes gives bytes a decoder refuses, mostly', () => {
    const r = new Rng(3);
    let refused = 0;
    for (let i = 0; i < 500; i++) {
      const bytes = mutateBytes(r, encode({ t: 'hello', running: [{ job_id: 'j', idx: 0, attempt: 1 }], unacked: [] }));
      if (!decodeToMaster(bytes).ok) refused++;
    }
    expect(refused).toBeGreaterThan(300);
  });
});

describe('valid frames are valid for the socket they are sent on', () => {
  it('peer frames, with the sender the frame names', () => {
    const r = new Rng(11);
    for (let i = 0; i < 500; i++) {
      const f = peerFrame(r, 152, 151, view);
      const d = decodePeerFrame(newCodec().pack(f));
      expect(d, JSON.stringify(f).slice(0, 300)).toHaveProperty('frame');
    }
  });

  it('frames a worker sends its master', () => {
    const r = new Rng(12);
    const assigned = [{ job_id: 'job-a', idx: 1, attempt: 1 }];
    for (let i = 0; i < 500; i++) {
      const f = toMasterFrame(r, assigned, ['job-a', 'job-b']);
      const d = decodeToMaster(newCodec().pack(f));
      expect(d.ok, `${JSON.stringify(f).slice(0, 300)}: ${d.ok ? '' : d.error}`).toBe(true);
    }
  });

  it('a worker reports the tasks it was really given only as done (a failure would spend the job’s retries)', () => {
    const r = new Rng(13);
    const assigned = [{ job_id: 'job-a', idx: 1, attempt: 1 }];
    for (let i = 0; i < 500; i++) {
      const f = toMasterFrame(r, assigned, ['job-b']) as { t: string; reports?: { job_id: string; ok: boolean }[] };
      for (const rep of f.reports ?? []) if (rep.job_id === 'job-a') expect(rep.ok).toBe(true);
    }
  });

  it('a worker never says it began a task it was really given (its loss would count against it)', () => {
    const r = new Rng(15);
    const assigned = [{ job_id: 'job-a', idx: 1, attempt: 1 }];
    const kinds = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const f = toMasterFrame(r, assigned, ['job-b']) as { t: string; running?: Ref[]; tasks?: Ref[] };
      kinds.add(f.t);
      for (const t of [...(f.running ?? []), ...(f.tasks ?? [])]) expect(t.job_id).not.toBe('job-a');
    }
    expect(kinds).toContain('began');
  });

  it('frames on a stream link', () => {
    const r = new Rng(14);
    const streams = [{ job_id: 'job-s', instances: [{ idx: 0, attempt: 1 }] }];
    for (let i = 0; i < 200; i++) {
      const f = linkFrame(r, streams, ['job-a']);
      const d = decodeLinkFrame(encodeLinkFrame(f as never));
      expect(d.ok, `${JSON.stringify(f).slice(0, 300)}: ${d.ok ? '' : d.error}`).toBe(true);
    }
  });

  it('staleTerms keeps every message of a member’s frame below the current term', () => {
    const f = { from: 1, msgs: [{ term: 9 }, { term: 7 }, { term: 3 }, { term: 'x' }] };
    expect(hasStaleTerms(f, 7)).toBe(false);
    expect(staleTerms(f, 7)).toEqual({ from: 1, msgs: [{ term: 6 }, { term: 6 }, { term: 3 }, { term: 'x' }] });
    expect(hasStaleTerms(f, 7)).toBe(true);
  });
});

describe('HTTP requests', () => {
  const ids: IdPools = {
    readJobs: ['job-read'],
    victimJobs: ['job-victim'],
    workers: ['w-1'],
    uploads: ['u1'],
    fakeMembers: [9001],
    realMembers: [151],
  };

  it('paths are what a client puts on a request line: printable ASCII, no spaces', () => {
    const r = new Rng(21);
    for (let i = 0; i < 2000; i++) expect(mutatePath(r, '/api/jobs/job-1/results')).toMatch(/^[\x21-\x7e]+$/);
  });

  const decoded = (path: string) => {
    try {
      return decodeURIComponent(path);
    } catch {
      return path;
    }
  };

  it('never act on a job the test only reads, never remove a real master as an admin, and name no host off 127.0.0.x', () => {
    const r = new Rng(22);
    for (let i = 0; i < 5000; i++) {
      const admin = r.chance(0.5);
      const req = httpRequest(r, MASTER_ROUTES, ids, 'Bearer x', admin);
      if (req.path.includes('job-read')) expect(['GET', 'HEAD', 'OPTIONS', 'POST']).toContain(req.method);
      // A POST there is events or rows, or a mutated path no route acts on; never a cancel
      // (a mutated path may spell a segment in %-escapes: '%63ancel' is 'cancel').
      if (req.path.includes('job-read') && req.method === 'POST') expect(decoded(req.path)).not.toMatch(/cancel/i);
      if (admin && req.method === 'DELETE') expect(req.path).not.toMatch(/members\/151/);
      const text = `${req.path} ${typeof req.body === 'string' ? req.body : ''}`;
      // A body cut short may end inside the host: a prefix of a local one is local too.
      for (const [, host] of text.matchAll(/:\/\/([^/"\s:]*)/g))
        expect('127.0.0.159'.startsWith(host!) || /^127\.0\.0\.\d+$/.test(host!), host).toBe(true);
    }
  });
});
