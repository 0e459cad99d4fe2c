// The test harness's last-chance clean-up (test/helpers/on-cut-short.ts), in a real child
// process ended by a real signal: Node runs no 'exit' listener then.
import { buildSync } from 'esbuild';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'weir-cut-short-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A child that registers two clean-ups (each appends its name to `log`), then waits or exits. */
function child(name: string, then: 'wait' | 'exit'): { script: string; log: string } {
  const log = join(dir, `${name}.log`);
  const entry = join(dir, `${name}.ts`);
  writeFileSync(
    entry,
    `import { appendFileSync } from 'node:fs';
import { onCutShort } from ${JSON.stringify(resolve('test/helpers/on-cut-short.ts'))};
onCutShort(() => appendFileSync(${JSON.stringify(log)}, 'processes '));
onCutShort(() => { throw new Error('one clean-up failing'); });
onCutShort(() => appendFileSync(${JSON.stringify(log)}, 'mounts '));
process.stdout.write('ready\\n');
${then === 'wait' ? 'setInterval(() => {}, 1000);' : 'process.exit(3);'}
`,
  );
  const script = join(dir, `${name}.mjs`);
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: script,
    logLevel: 'error',
  });
  return { script, log };
}

function run(script: string, signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    p.on('error', fail);
    p.stdout.on('data', (d: Buffer) => {
      if (signal && d.toString().includes('ready')) p.kill(signal);
    });
    p.on('exit', (code, sig) => done({ code, signal: sig }));
  });
}

describe('onCutShort', () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`runs every clean-up, in order, when ${signal} ends the process, which then dies of it`, async () => {
      const { script, log } = child(signal, 'wait');
      expect(await run(script, signal)).toEqual({ code: null, signal });
      expect(readFileSync(log, 'utf8')).toBe('processes mounts ');
    });
  }

  it('runs them once at a plain exit, whose code stands', async () => {
    const { script, log } = child('exit', 'exit');
    expect(await run(script)).toEqual({ code: 3, signal: null });
    expect(readFileSync(log, 'utf8')).toBe('processes mounts ');
  });
});
