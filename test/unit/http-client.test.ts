// The client every CLI command and worker uses to reach the masters (HttpClient): a master that
// does not answer is skipped for the next, within a retry window.
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient, UnreachableError } from '../../src/common/http-client.js';
import { freePort } from '../helpers/cluster.js';

const HOST = '127.0.0.37';
let server: Server | undefined;
let client: HttpClient | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** A master that answers every request with `{"ok": true}` (or with a 503 no_leader). */
async function answering(leaderless = false): Promise<string> {
  const port = await freePort(HOST);
  server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    if (!leaderless) return res.end('{"ok":true}');
    res.statusCode = 503;
    res.end('{"error":{"code":"no_leader","message":"no leader is known yet (an election is under way); retry"}}');
  });
  await new Promise<void>((r) => server!.listen(port, HOST, r));
  return `http://${HOST}:${port}`;
}

describe('HttpClient', () => {
  it('asks every master once however short its retry window: the one listening answers', async () => {
    const down = `http://${HOST}:${await freePort(HOST)}`;
    client = new HttpClient({ urls: [down, await answering()], retryForMs: 1 });
    expect(await client.get('/anything')).toEqual({ ok: true });
  });

  it('gives up once the window has passed and every master was asked, naming them', async () => {
    const a = `http://${HOST}:${await freePort(HOST)}`;
    const b = `http://${HOST}:${await freePort(HOST)}`;
    client = new HttpClient({ urls: [a, b], retryForMs: 1 });
    await expect(client.get('/anything')).rejects.toThrow(UnreachableError);
    await expect(client.get('/anything')).rejects.toThrow(`no master answered (${a}, ${b})`);
  });

  // With most masters down, the one left answered no_leader: "no master answered" sent the
  // reader to look for a network fault rather than for the quorum the cluster had lost.
  it('says so when a master answered but none could serve: no leader, and which masters did not answer', async () => {
    const down = `http://${HOST}:${await freePort(HOST)}`;
    const up = await answering(true);
    client = new HttpClient({ urls: [down, up], retryForMs: 1 });
    const err = await client.get('/anything').catch((e: Error) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toBe(
      `no master could serve this: ${up} answered that there is no leader (is a majority of the masters up?), and ${down} did not answer; last: ${up}: no leader is known yet (an election is under way); retry`,
    );
  });
});
