import { describe, expect, it } from 'vitest';
import { bannedImports, staticImports } from '../helpers/static-imports.js';

// What a process loads before its first line runs is paid at every start: each `weir` command
// a person types, and each executor a worker starts or replaces after a crash. These specs
// keep the heavy libraries of one kind of process out of the others (each cost 20–120 ms to
// load here; the CLI loaded all of them and took 0.8 s to print its help).
describe('what each process loads at start', () => {
  it('a weir command other than master, worker or dev loads no server, database or schema library', () => {
    expect(
      bannedImports('src/client/cli.ts', [
        'fastify',
        '@fastify/swagger',
        '@fastify/swagger-ui',
        '@fastify/static',
        '@fastify/websocket',
        'better-sqlite3',
        'prom-client',
        '@sinclair/typebox',
        'pino',
        'pino-pretty',
        'ws',
        'msgpackr',
      ]),
    ).toEqual([]);
  });

  it('an executor loads neither the schema library nor anything of the worker that starts it', () => {
    expect(
      bannedImports('src/worker/executor-main.ts', [
        '@sinclair/typebox',
        'fastify',
        'undici',
        'ws',
        'pino',
        'better-sqlite3',
        'prom-client',
        'jose',
      ]),
    ).toEqual([]);
  });

  it('loads a node’s code when its command runs: a worker none of the master’s, a master none of the worker’s', () => {
    const files = staticImports('src/client/servers.ts').files;
    expect(files.has('src/master/master-node.ts')).toBe(false);
    expect(files.has('src/worker/worker-node.ts')).toBe(false);
    expect(bannedImports('src/client/servers.ts', ['fastify', 'better-sqlite3', 'ws', 'undici'])).toEqual([]);
  });

  it('names the chain of files that loads a banned library', () => {
    expect(bannedImports('src/master/master-node.ts', ['fastify'])[0]).toMatch(
      /^fastify via src\/master\/master-node\.ts/,
    );
  });
});
