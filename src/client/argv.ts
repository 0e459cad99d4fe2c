import { looksLikeAddress } from '../common/address.js';

const COMMANDS = new Set([
  'master',
  'worker',
  'dev',
  'submit',
  'status',
  'wait',
  'results',
  'cancel',
  'delete',
  'jobs',
  'workers',
  'cluster',
  'token',
  'help',
]);

export interface GlobalArgs {
  /** `--master` wherever it stood, or the seed's address-first form. */
  master?: string;
  /** `--tls-ca FILE` wherever it stood: the CA the cluster's certificates are verified against. */
  tlsCa?: string;
  /** `--retry-for DURATION` wherever it stood: how long to keep trying while no master answers. */
  retryFor?: string;
  json: boolean;
  rest: string[];
}

/**
 * Pulls the options that may stand anywhere (`--master URL`, `--tls-ca FILE`, `--retry-for
 * DURATION`, `--json`) out
 * of the argument list, and turns the seed's `weir HOST:PORT submit …` into `--master HOST:PORT`.
 */
export function extractGlobalArgs(argv: readonly string[]): GlobalArgs {
  const rest: string[] = [];
  let master: string | undefined;
  let tlsCa: string | undefined;
  let retryFor: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--master') {
      master = argv[++i];
      if (master === undefined) throw new Error('--master needs a URL, e.g. --master http://127.0.0.1:8080');
    } else if (a.startsWith('--master=')) {
      master = a.slice('--master='.length);
    } else if (a === '--tls-ca') {
      tlsCa = argv[++i];
      if (tlsCa === undefined) throw new Error("--tls-ca needs a file: the CA of the cluster's certificates");
    } else if (a.startsWith('--tls-ca=')) {
      tlsCa = a.slice('--tls-ca='.length);
    } else if (a === '--retry-for') {
      retryFor = argv[++i];
      if (retryFor === undefined) throw new Error('--retry-for needs a duration, e.g. --retry-for 5s');
    } else if (a.startsWith('--retry-for=')) {
      retryFor = a.slice('--retry-for='.length);
    } else if (a === '--json') {
      json = true;
    } else {
      rest.push(a);
    }
  }
  const first = rest[0];
  if (first && !COMMANDS.has(first) && looksLikeAddress(first)) {
    master ??= first;
    rest.shift();
  }
  return {
    ...(master !== undefined ? { master } : {}),
    ...(tlsCa !== undefined ? { tlsCa } : {}),
    ...(retryFor !== undefined ? { retryFor } : {}),
    json,
    rest,
  };
}
