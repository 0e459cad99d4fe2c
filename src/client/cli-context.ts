import { readFileSync } from 'node:fs';
import { splitUrls } from '../common/address.js';
import { parseDuration } from '../common/duration.js';
import { loadClientCa, type TlsConnect } from '../common/tls.js';
import type { GlobalArgs } from './argv.js';
import { WeirClient } from './sdk.js';

/** Exit codes of `wait`; other commands use 1 for errors, 3 for an unreachable cluster. */
export const EXIT = { ok: 0, failed: 1, cancelled: 2, unreachable: 3 } as const;

/** A failure the person at the terminal can act on: its message is the whole story. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const out = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
export const note = (text: string): void => void process.stderr.write(`${text}\n`);

/** What every command shares: the global options, one client, and the exit code to return. */
export class CliContext {
  exitCode = 0;
  private client: WeirClient | undefined;

  constructor(readonly global: GlobalArgs) {}

  /**
   * The masters: `--master`, else WEIR_MASTER, else 127.0.0.1:8080. An address without a
   * scheme is https when a CA was given (`--tls-ca`, WEIR_TLS_CA), else `scheme`.
   */
  masterUrls(scheme: 'http' | 'https' = this.caPath() ? 'https' : 'http'): string[] {
    return splitUrls(this.global.master ?? process.env.WEIR_MASTER ?? '127.0.0.1:8080', scheme);
  }

  /** The CA the CLI verifies the masters against: `--tls-ca`, else WEIR_TLS_CA. */
  caPath(): string | undefined {
    return this.global.tlsCa ?? (process.env.WEIR_TLS_CA || undefined);
  }

  /** Which of `--tls-ca` and WEIR_TLS_CA gave the CA (for messages). */
  caSource(): string {
    return this.global.tlsCa !== undefined ? '--tls-ca' : 'WEIR_TLS_CA';
  }

  /**
   * How long a call keeps trying while no master answers (an election, a restart): `--retry-for`,
   * else WEIR_RETRY_FOR, else the client's 30 s. A script that would rather fail fast says less.
   */
  retryForMs(): number | undefined {
    const [text, source] =
      this.global.retryFor !== undefined
        ? [this.global.retryFor, '--retry-for']
        : [process.env.WEIR_RETRY_FOR || undefined, 'WEIR_RETRY_FOR'];
    if (text === undefined) return undefined;
    try {
      return parseDuration(text);
    } catch (err) {
      throw new CliError(`${source}: ${(err as Error).message}`);
    }
  }

  sdk(): WeirClient {
    if (this.client) return this.client;
    const retryForMs = this.retryForMs();
    const ca = this.caPath();
    let tls: TlsConnect | undefined;
    try {
      tls = ca === undefined ? undefined : loadClientCa(ca, this.caSource());
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    return (this.client = new WeirClient({
      masters: this.masterUrls(),
      ...(tls ? { tls } : {}),
      ...(retryForMs !== undefined ? { retryForMs } : {}),
    }));
  }

  /** The REST body with --json, else the human form. */
  print(json: unknown, human: () => string): void {
    out(this.global.json ? JSON.stringify(json, null, 2) : human());
  }

  async close(): Promise<void> {
    await this.client?.close();
  }
}

/** A config argument: JSON when it starts with `{`, else the path of a JSON file. */
export function readConfig(arg: string | undefined): Record<string, unknown> | undefined {
  if (arg === undefined) return undefined;
  let text = arg;
  if (!arg.trimStart().startsWith('{')) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch {
      throw new CliError(`cannot read config file '${arg}' (a config starting with '{' is read as JSON)`);
    }
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`the config is not a JSON object: ${(err as Error).message}`);
  }
}

export function readTextFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`cannot read ${what} '${path}'`);
  }
}
