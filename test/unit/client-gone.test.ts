import Fastify, { type FastifyReply } from 'fastify';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { clientDeparture, clientGone, type Departure } from '../../src/master/client-gone.js';
import { waitFor } from '../helpers/wait.js';

describe('a request whose client may leave', () => {
  /** Each request's signal, and when its response closed (after the answer, or the client leaving). */
  const seen: { gone: AbortSignal; closed: Promise<void> }[] = [];
  const follow = (reply: FastifyReply) => {
    const closed = new Promise<void>((resolve) => reply.raw.once('close', resolve));
    const gone = clientGone(reply);
    seen.push({ gone, closed });
    return gone;
  };
  const app = Fastify();
  app.get('/now', async (_req, reply) => {
    follow(reply);
    return { ok: true };
  });
  app.get('/never', async (_req, reply) => {
    const gone = follow(reply);
    await new Promise((resolve) => gone.addEventListener('abort', resolve, { once: true }));
    return { ok: false };
  });
  afterAll(() => app.close());

  it('is not aborted once it was answered (the response closes after every answer)', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const answered = await fetch(`http://127.0.0.1:${port}/now`);
    expect(answered.status).toBe(200);
    await answered.text();
    await seen[0]!.closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen[0]!.gone.aborted).toBe(false);
  });

  it('is aborted when its client closes the connection before the answer', async () => {
    const { port } = app.server.address() as { port: number };
    const before = seen.length;
    const socket = connect(port, '127.0.0.1');
    socket.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the request to arrive', () => seen.length > before, 5_000);
    socket.destroy();
    await waitFor('the signal to abort', () => seen[before]!.gone.aborted, 5_000);
  });
});

describe('the departure of a long poll’s client', () => {
  /** Each request's departure, whether it was told (and `left` then), and when its response closed. */
  const seen: { departure: Departure; heard: boolean; leftThen: boolean; closed: Promise<void> }[] = [];
  const follow = (reply: FastifyReply) => {
    const closed = new Promise<void>((resolve) => reply.raw.once('close', resolve));
    const entry = { departure: clientDeparture(reply), heard: false, leftThen: false, closed };
    entry.departure.onLeave(() => {
      entry.heard = true;
      entry.leftThen = entry.departure.left;
    });
    seen.push(entry);
    return entry.departure;
  };
  const app = Fastify();
  app.get('/now', async (_req, reply) => {
    follow(reply);
    return { ok: true };
  });
  app.get('/never', async (_req, reply) => {
    const departure = follow(reply);
    await new Promise<void>((resolve) => departure.onLeave(resolve));
    return { ok: false };
  });
  afterAll(() => app.close());

  it('is not a departure once the client was answered (the response closes after every answer)', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const answered = await fetch(`http://127.0.0.1:${port}/now`);
    expect(answered.status).toBe(200);
    await answered.text();
    await seen[0]!.closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen[0]!.departure.left).toBe(false);
    expect(seen[0]!.heard).toBe(false);
  });

  it('is told, and stays known, when the client closes the connection before the answer', async () => {
    const { port } = app.server.address() as { port: number };
    const before = seen.length;
    const socket = connect(port, '127.0.0.1');
    socket.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the request to arrive', () => seen.length > before, 5_000);
    socket.destroy();
    await waitFor('the departure to be told', () => seen[before]!.heard, 5_000);
    expect(seen[before]!.leftThen).toBe(true);
    // A wait that starts after the client left hears nothing more: it looks at `left` first.
    let heardAgain = false;
    seen[before]!.departure.onLeave(() => (heardAgain = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(heardAgain).toBe(false);
  });
});
