import { open } from 'node:fs/promises';
import { inputSources, readSplitRecords, type Read } from '../../ops/input-split.js';
import type { InputSpec, TaskTls } from '../../protocol/task-spec.js';
import { clusterFetch, type Fetch } from './cluster-fetch.js';
import { namedError, netAllowed, PERMISSION_DENIED } from '../executor-rules.js';

const sameOrigin = (a: string, b: string): boolean => {
  try {
    return new URL(a).host === new URL(b).host;
  } catch {
    return false;
  }
};

interface OpenInput {
  size: number;
  read: Read;
  close(): Promise<void>;
}

/** How long an input URL has to answer HEAD before the next copy is tried. */
const HEAD_TIMEOUT_MS = 5_000;

/** Opens a file or a URL for positioned reads; `masters` are where uploads have copies. */
async function openInput(
  input: InputSpec,
  masters?: readonly string[],
  tls?: TaskTls,
  allowNet?: readonly string[],
): Promise<OpenInput> {
  if (input.path !== undefined) {
    const file = await open(input.path, 'r');
    const { size } = await file.stat();
    return {
      size,
      read: async (position, length) => {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await file.read(buf, 0, length, position);
        return buf.subarray(0, bytesRead);
      },
      close: () => file.close(),
    };
  }
  return openUrl(input.url, masters, tls, allowNet);
}

/**
 * The fetch for each source: the masters are verified against the cluster's CA (when it has
 * one), any other server against the default trust store.
 */
function fetchesFor(sources: readonly string[], masters: readonly string[] = [], tls?: TaskTls): Fetch[] {
  if (tls?.ca === undefined) return sources.map(() => fetch);
  const ours = new Set(masters.map((m) => new URL(m).origin));
  return sources.map((s) => (ours.has(new URL(s).origin) ? clusterFetch(tls) : fetch));
}

/** An input URL, read from the first of its sources that answers (see inputSources). */
async function openUrl(
  url: string,
  masters?: readonly string[],
  tls?: TaskTls,
  allowNet?: readonly string[],
): Promise<OpenInput> {
  // The masters serve uploads: their copies are always in reach.
  if (!netAllowed(url, allowNet) && !masters?.some((m) => sameOrigin(m, url))) {
    throw namedError(PERMISSION_DENIED, `${PERMISSION_DENIED}: ${url} is outside --allow-net`);
  }
  const sources = inputSources(url, masters);
  const fetches = fetchesFor(sources, masters, tls);
  const failed: string[] = [];
  /** The input's size from the first source that answers; reads go there first. */
  let at = -1;
  let size = NaN;
  for (const [i, src] of sources.entries()) {
    // A master that is down may not refuse connections: give up on it soon, try the next.
    const head = await fetches[i]!(src, { method: 'HEAD', signal: AbortSignal.timeout(HEAD_TIMEOUT_MS) }).catch(
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    if (!(head instanceof Error) && head.ok) {
      at = i;
      size = Number(head.headers.get('content-length'));
      break;
    }
    failed.push(
      `${src} ${head instanceof Error ? `unreachable (${head.message})` : `answered HEAD with ${head.status}`}`,
    );
  }
  if (at < 0) throw new Error(`input ${url}: ${failed.join('; ')}`);
  if (!Number.isFinite(size)) throw new Error(`input ${sources[at]}: the server sends no Content-Length`);
  const readFrom = async (i: number, position: number, last: number): Promise<Buffer> => {
    const src = sources[i]!;
    const res = await fetches[i]!(src, { headers: { range: `bytes=${position}-${last}` } });
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new Error(`input ${src}: a range request answered ${res.status}; the server must support ranges`);
    }
    return Buffer.from(await res.arrayBuffer());
  };
  return {
    size,
    read: async (position, length) => {
      if (position >= size) return Buffer.alloc(0);
      const last = Math.min(size, position + length) - 1;
      // The source that answered last first, then the others: a master may die mid-task.
      let firstErr: unknown;
      for (let k = 0; k < sources.length; k++) {
        const i = (at + k) % sources.length;
        try {
          const buf = await readFrom(i, position, last);
          at = i;
          return buf;
        } catch (err) {
          firstErr ??= err;
        }
      }
      throw firstErr;
    },
    close: async () => {},
  };
}

/**
 * Reads split `idx` of `count` of an input, a file or a URL, and parses its records (see
 * readSplitRecords for `sample`). `masters`: where an uploaded input has copies besides the
 * master in its URL; `tls`: how to verify them when the cluster serves https.
 */
export async function readInputSplit(
  input: InputSpec,
  count: number,
  idx: number,
  sample?: { windows: number; bytes: number },
  masters?: readonly string[],
  tls?: TaskTls,
  allowNet?: readonly string[],
): Promise<unknown[]> {
  const f = await openInput(input, masters, tls, allowNet);
  try {
    return await readSplitRecords(f.read, f.size, input, count, idx, sample);
  } finally {
    await f.close();
  }
}
