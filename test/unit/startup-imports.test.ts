import { execFile, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// What a process loads is paid at every start: each `weir` command a person types, and each
// executor a worker starts or replaces after a crash. The CLI loaded a master's and a worker's
// code for every command (0.8–1.2 s to print its help here), an executor the schema library
// (0.1 s of each start). These specs run the built processes (the bundle in dist/bundle/, as
// `weir` runs them) with a tracer preloaded (helpers/loaded-packages.mjs) and read which
// packages they loaded: ES modules, CommonJS, and the sources of each file of the bundle.

const ROOT = resolve(import.meta.dirname, '../..');
const TRACER = join(ROOT, 'test/helpers/loaded-packages.mjs');
const dir = mkdtempSync(join(tmpdir(), 'weir-loaded-'));
let runs = 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node's, a database's or a schema's library: none is a client command's or a task's to load. */
const NODE_LIBRARIES = [
  'fastify',
  '@fastify/swagger',
  '@fastify/swagger-ui',
  '@fastify/static',
  '@fastify/websocket',
  '@fastify/type-provider-typebox',
  '@sinclair/typebox',
  'ajv',
  'better-sqlite3',
  'prom-client',
  'pino',
  'pino-pretty',
  'ws',
];

function traced(): { env: NodeJS.ProcessEnv; loaded: () => string[] } {
  const file = join(dir, `run-${runs++}`);
  return {
    env: { ...process.env, WEIR_TRACE_PACKAGES: file },
    loaded: () => [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))].sort(),
  };
}

/** The packages `weir ARGS` loads, run to its end. */
async function packagesOfCli(args: string[]): Promise<string[]> {
  const t = traced();
  await promisify(execFile)(process.execPath, ['--import', TRACER, join(ROOT, 'bin/weir.js'), ...args], {
    env: t.env,
  }).catch((err: { code?: number }) => {
    if (typeof err.code !== 'number') throw err; // a command that exits non-zero still ran
  });
  return t.loaded();
}

describe('what each process loads at start', () => {
  it('`weir --help` loads no node, database or schema library', async () => {
    const loaded = await packagesOfCli(['--help']);
    expect(loaded).toContain('commander'); // the tracer sees what loads
    expect(loaded.filter((p) => NODE_LIBRARIES.includes(p))).toEqual([]);
  });

  it('a client command that asks a master loads none either', async () => {
    const loaded = await packagesOfCli(['status', 'job-x', '--master', 'http://127.0.0.1:9', '--retry-for', '1ms']);
    expect(loaded).toContain('undici');
    expect(loaded.filter((p) => NODE_LIBRARIES.includes(p))).toEqual([]);
  });

  it('an executor, ready for its first task, has loaded none, nor the HTTP client', async () => {
    const t = traced();
    const ex = fork(join(ROOT, 'dist/bundle/executor-main.js'), [], {
      execArgv: ['--import', TRACER],
      env: t.env,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    await new Promise<void>((ready, fail) => {
      ex.once('message', () => ready());
      ex.once('exit', (code) => fail(new Error(`the executor exited (${code}) before it was ready`)));
    });
    const exited = new Promise((r) => ex.once('exit', r));
    ex.disconnect(); // an orphaned executor exits (executor-main.ts)
    await exited;
    const loaded = t.loaded();
    expect(loaded).toContain('msgpackr');
    expect(loaded.filter((p) => [...NODE_LIBRARIES, 'undici', 'jose'].includes(p))).toEqual([]);
  });

  it('a node whose code cannot load (a broken install) makes `weir master` say so in one line and exit 1', async () => {
    // Loaded now when the command runs, a failure to load is the command's error, not a crash.
    const failing = `data:text/javascript,${encodeURIComponent(`
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(\`
        export async function resolve(specifier, context, next) {
          if (specifier.includes('master-node')) throw new Error('cannot load ' + specifier);
          return next(specifier, context);
        }\`));
    `)}`;
    const data = mkdtempSync(join(dir, 'master-'));
    const r = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        failing,
        join(ROOT, 'bin/weir.js'),
        'master',
        '--host',
        '127.0.0.1',
        '--port',
        '9',
        '--data-dir',
        data,
      ],
      { timeout: 30_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^weir: cannot load .*master-node[-\w]*\.js$/)]);
  });

  it('a master loads them: the tracer tells them apart', async () => {
    // The bundle's file that holds the master's code, imported as `weir master` imports it.
    const meta = JSON.parse(readFileSync(join(ROOT, 'dist/bundle/meta.json'), 'utf8')) as {
      outputs: Record<string, { entryPoint?: string }>;
    };
    const master = Object.entries(meta.outputs).find(([, o]) => o.entryPoint?.endsWith('master/master-node.js'))?.[0];
    expect(master).toBeDefined();
    const t = traced();
    await promisify(execFile)(
      process.execPath,
      ['--import', TRACER, '--input-type=module', '-e', `await import(${JSON.stringify(join(ROOT, master!))})`],
      { env: t.env },
    );
    expect(t.loaded()).toEqual(expect.arrayContaining(['fastify', 'better-sqlite3', '@sinclair/typebox', 'ws']));
  });
});
