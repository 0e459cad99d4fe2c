// A master's store of uploads: an upload is whole and durable or absent, and one whose sender
// goes silent half way is dropped rather than held open for good.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uploadMadeAt } from '../../src/common/ids.js';
import { UploadStore } from '../../src/master/uploads.js';

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'weir-upload-store-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const files = () => readdirSync(join(dataDir, 'uploads'));
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an upload whose sender goes silent', () => {
  it('is dropped once no byte has come for the idle time: refused saying so, its partial file gone', async () => {
    const store = new UploadStore(dataDir, 200);
    const body = new PassThrough();
    const saving = store.save(body);
    body.write('the first ten');
    await expect(saving).rejects.toMatchObject({
      code: 'bad_request',
      message: 'the upload stalled: no byte of it arrived for 0.2 s; send it again',
    });
    expect(files()).toEqual([]);
  });

  it('is kept when it is slow but never silent for that long', async () => {
    // Twice the idle time in all, in gaps of a tenth of it.
    const store = new UploadStore(dataDir, 500);
    const body = new PassThrough();
    const saving = store.save(body);
    for (let i = 0; i < 20; i++) {
      body.write(`line ${i}\n`);
      await tick(50);
    }
    body.end();
    const saved = await saving;
    expect(saved.bytes).toBe(150);
    expect(files()).toEqual([saved.upload_id]);
    expect(readFileSync(store.pathOf(saved.upload_id), 'utf8')).toBe(
      Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(''),
    );
  });
});

describe("an upload's id", () => {
  it('carries the time its body was whole, not the time it began: a slow upload is not taken for an old one', async () => {
    const store = new UploadStore(dataDir);
    const body = new PassThrough();
    const began = Date.now();
    const saving = store.save(body);
    body.write('slow ');
    await tick(300);
    const lastByte = Date.now();
    body.end('upload');
    const { upload_id } = await saving;
    expect(uploadMadeAt(upload_id)).toBeGreaterThanOrEqual(lastByte);
    expect(uploadMadeAt(upload_id)! - began).toBeGreaterThanOrEqual(300);
    expect(readFileSync(store.pathOf(upload_id), 'utf8')).toBe('slow upload');
  });
});
