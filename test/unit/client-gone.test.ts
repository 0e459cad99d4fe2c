import Fastify, { type FastifyReply } from 'fastify';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { clientDeparture, clientGone } from '../../src/master/client-gone.js';
import { waitFor } from '../helpers/wait.js';

/** How a request follows its client: whether it has left now, and `left` as it was told of the leaving. */
interface Following {
  leftNow: () => boolean;
  told: Promise<boolean>;
}

describe.each([
  {
    what: 'a forwarded request’s signal (clientGone)',
    follow: (reply: FastifyReply): Following => {
      const gone = clientGone(reply);
      const told = new Promise<boolean>((resolve) =>
        gone.addEventListener('abort', () => resolve(gone.aborted), { once: true }),
      );
      return { leftNow: () => gone.aborted, told };
    },
  },
  {
    what: 'a long poll’s departure (clientDeparture)',
    follow: (reply: FastifyReply): Following => {
      const departure = clientDeparture(reply);
      const told = new Promise<boolean>((resolve) => departure.onLeave(() => resolve(departure.left)));
      return { leftNow: () => departure.left, told };
    },
  },
])('$what', ({ follow }) => {
  /** Each request's following, whether it was told, and when its response closed (after the answer, or the client leaving). */
  const seen: { following: Following; told: boolean; leftThen?: boolean; closed: Promise<void> }[] = [];
  const track = (reply: FastifyReply) => {
    const closed = new Promise<void>((resolve) => reply.raw.once('close', resolve));
    const entry = { following: follow(reply), told: false, leftThen: undefined as boolean | undefined, closed };
    void entry.following.told.then((left) => {
      entry.told = true;
      entry.leftThen = left;
    });
    seen.push(entry);
    return entry.following;
  };
  const app = Fastify();
  app.get('/now', async (_req, reply) => {
    track(reply);
    return { ok: true };
  });
  app.get('/never', async (_req, reply) => {
    await track(reply).told;
    return { ok: false };
  });
  afterAll(() => app.close());

  it('is not told of a leaving once the client was answered (the response closes after every answer)', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const answered = await fetch(`http://127.0.0.1:${port}/now`);
    expect(answered.status).toBe(200);
    await answered.text();
    await seen[0]!.closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen[0]!.following.leftNow()).toBe(false);
    expect(seen[0]!.told).toBe(false);
  });

  it('is told, and has left then, when its client closes the connection before the answer', async () => {
    const { port } = app.server.address() as { port: number };
    const before = seen.length;
    const socket = connect(port, '127.0.0.1');
    socket.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the request to arrive', () => seen.length > before, 5_000);
    socket.destroy();
    await waitFor('the leaving to be told', () => seen[before]!.told, 5_000);
    expect(seen[before]!.leftThen).toBe(true);
  });
});
