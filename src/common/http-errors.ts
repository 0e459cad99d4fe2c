import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Type } from '@fastify/type-provider-typebox';
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyServerOptions,
  preParsingHookHandler,
} from 'fastify';
import type { WebSocket } from 'ws';
import { isDiskFull } from './disk-errors.js';
import { ERROR_CODES, WeirError, badRequest, noSpace } from './errors.js';
import { refusedFrames, SOCKET_ROUTES } from '../protocol/checked-decode.js';

export const BODY_LIMIT = 16 * 1024 * 1024;
/** Bodies larger than the limit are still read (and dropped) up to this, so the 413 arrives. */
const MAX_DRAIN = 256 * 1024 * 1024;

/**
 * For an onRequest hook: answers `refusal` without handing the request on, once its body is in
 * — read and dropped, none of it kept — since a client still sending would otherwise see its
 * connection reset instead of the answer. A body past MAX_DRAIN resets the connection.
 */
export function refuseOnceBodyIsIn(
  req: FastifyRequest,
  reply: FastifyReply,
  refusal: WeirError,
  done: (err?: Error) => void,
): void {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody || req.raw.readableEnded) return done(refusal);
  let seen = 0;
  req.raw.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > MAX_DRAIN) req.raw.destroy();
  });
  req.raw.on('end', () => void reply.code(refusal.status).send(refusal.toJSON()));
}

/** Which server answers; an internal error's message names it, so the client knows whose log to read. */
export type NodeKind = 'master' | 'worker';

/** The shape of every refusal, for routes' response schemas. */
export const ErrorReply = Type.Object({
  error: Type.Object({
    code: Type.Unsafe<(typeof ERROR_CODES)[number]>({ type: 'string', enum: [...ERROR_CODES] }),
    message: Type.String(),
  }),
});

/** Response schemas of every refusal a route can give. */
export const ERROR_REPLIES = { '4xx': ErrorReply, '5xx': ErrorReply } as const;

type ValidationIssue = NonNullable<FastifyError['validation']>[number];

/** One schema failure as a sentence naming the field and what it must be. */
function describeIssue(where: string, issue: ValidationIssue): string {
  const path = issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const params = issue.params as Record<string, unknown>;
  const field = (name: string) => (name ? `${where}.${name}` : where);
  switch (issue.keyword) {
    case 'required':
      return `${field(path ? `${path}.${String(params.missingProperty)}` : String(params.missingProperty))} is required`;
    case 'enum':
      return `${field(path)} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'type':
      return `${field(path)} must be ${/^[aeiou]/.test(String(params.type)) ? 'an' : 'a'} ${String(params.type)}`;
    default:
      return `${field(path)} ${issue.message ?? 'is not valid'}`;
  }
}

const internal = (node: NodeKind): WeirError =>
  new WeirError('internal', `the ${node} hit an internal error; see its log`);

/**
 * Maps any error to the catalogue, with a status a client can act on. An internal error's
 * own text stays in the log: it may carry paths, addresses or stack details.
 */
export function toHttpError(err: FastifyError | Error, node: NodeKind): WeirError {
  if (err instanceof WeirError) return err.code === 'internal' ? internal(node) : err;
  // A write the disk refused for want of space, whatever layer met it, is the no_space refusal.
  if (isDiskFull(err) || isDiskFull((err as { cause?: unknown }).cause)) {
    return noSpace(`the ${node}'s disk is full: a write to its data dir failed`);
  }
  const e = err as FastifyError;
  if (e.validation) {
    const where = e.validationContext ?? 'request';
    const first = e.validation[0];
    return new WeirError('validation_failed', `invalid ${where}: ${first ? describeIssue(where, first) : e.message}`);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new WeirError('invalid_json', `the body is not valid JSON: ${e.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return badRequest('send the body as application/json');
    case 'FST_ERR_BAD_URL':
      return badRequest('the path cannot be decoded: percent-encode it as UTF-8');
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return badRequest(e.message);
  return internal(node);
}

export const tooLarge = (): WeirError =>
  new WeirError('payload_too_large', `the body is over the ${BODY_LIMIT / 1024 / 1024} MiB limit`);

function reply(node: NodeKind, err: FastifyError | Error, req: FastifyRequest, res: FastifyReply): void {
  const e = toHttpError(err, node);
  if (e.code === 'internal') req.log.error({ err }, 'request failed');
  void res.code(e.status).send(e.toJSON());
}

/**
 * The constructor option for errors Fastify meets before it routes a request (a path that
 * cannot be decoded, a path parameter too long): they skip the error handler otherwise.
 */
export const frameworkErrors = (node: NodeKind): FastifyServerOptions['frameworkErrors'] =>
  ((err, req, res) => reply(node, err, req, res)) as FastifyServerOptions['frameworkErrors'];

/** Connections already answered as unparsable: the parser fails again on every later chunk. */
const answered = new WeakSet<Socket>();
/** How long an answered connection is kept reading what the client still sends. */
const LINGER_MS = 2_000;

/**
 * The constructor option for requests Node cannot parse (a bad request line or header, headers
 * over its 16 KiB, a request that did not arrive in time): they never reach Fastify's error
 * handler, and its own answer to them is not in the catalogue's shape. The connection closes
 * as it would after any refusal of a body still on the way: half-closed after the answer, and
 * what arrives meanwhile read and dropped (up to MAX_DRAIN, for LINGER_MS of silence), since
 * closing a socket with unread data resets it and the client never reads the answer.
 */
export function clientErrors(err: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  const e =
    err instanceof WeirError
      ? err
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new WeirError('payload_too_large', 'the request line and headers are over 16 KiB; send less in them', 431)
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? badRequest('the request did not arrive whole in time; send it again')
          : badRequest('the bytes sent are not an HTTP/1.1 request (a malformed request line, header or body framing)');
  const body = JSON.stringify(e.toJSON());
  if (!socket.writable) return void socket.destroy(err);
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  let drained = 0;
  socket.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > MAX_DRAIN) socket.destroy();
  });
  socket.setTimeout(LINGER_MS, () => socket.destroy());
}

/** How long after its headers a request's body must be whole (a streamed upload's excepted). */
export const BODY_DEADLINE_MS = 60_000;

/**
 * A preParsing hook: a body not whole `ms` after its headers is answered 408 and its
 * connection closed. Fastify sets no request timeout (uploads take their time, and keep an
 * idle limit of their own), so a client that sent headers and half a JSON body held its
 * connection, a file descriptor and a parser for ever: enough of them and a master takes no
 * connection at all. A deadline, not an idle limit: reading chunks to time them would cost
 * every request a stream of its own, and a body here is at most 16 MiB.
 */
export function bodyDeadline(ms = BODY_DEADLINE_MS): preParsingHookHandler {
  return (req, reply, payload, done) => {
    const sent = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
    if (!sent || req.routeOptions.bodyLimit > BODY_LIMIT) return done(null, payload);
    const raw = req.raw;
    const timer = setTimeout(() => {
      if (raw.complete || reply.raw.headersSent) return;
      req.log.info({ ms }, 'a request body did not arrive in time; its connection closes');
      clientErrors(
        new WeirError(
          'bad_request',
          `the body did not arrive within ${ms / 1000} s of its headers; send it again`,
          408,
        ),
        raw.socket,
      );
    }, ms);
    raw.once('end', () => clearTimeout(timer));
    done(null, payload);
  };
}

/**
 * The websocket plugin's error handler. A frame ws itself cannot read (text that is not UTF-8,
 * a frame over maxPayload, a bad opcode) has made ws close the socket already, with the code
 * that says why (1007, 1009, 1002); the plugin's own handler would destroy the connection
 * before that close frame went out, and log the sender's fault as the node's error.
 */
export function socketErrors(err: Error & { code?: string }, socket: WebSocket, req: FastifyRequest): void {
  if (err.code?.startsWith('WS_ERR_')) {
    const counted = SOCKET_ROUTES[req.routeOptions.url ?? ''];
    if (counted) refusedFrames[counted]++;
    req.log.warn({ why: err.message }, 'a frame ws could not read; its socket closes');
    return;
  }
  req.log.error({ err }, 'a socket handler failed');
  socket.close(1011, 'internal error');
}

/** A WebSocket route's answer to a request that asks for no upgrade. */
async function notAnUpgrade(req: FastifyRequest): Promise<never> {
  throw badRequest(`${req.routeOptions.url} opens a WebSocket: send the request as an upgrade (Upgrade: websocket)`);
}

/**
 * One error handler and one not-found handler: every refusal, a 404 included, is `{error:
 * {code, message}}`. Installed before the websocket plugin, so that a WebSocket route's plain
 * requests get `notAnUpgrade` rather than the plugin's bare 404.
 */
export function installErrorHandlers(
  app: Pick<FastifyInstance, 'setErrorHandler' | 'setNotFoundHandler' | 'addHook'>,
  node: NodeKind,
  o: { bodyDeadlineMs?: number } = {},
): void {
  app.addHook('onRoute', (route) => {
    if (!route.websocket) return;
    route.wsHandler = route.handler as unknown as typeof route.wsHandler;
    route.handler = notAnUpgrade;
    route.websocket = false;
  });
  // Routes with a limit of their own (uploads) refuse while they stream.
  app.addHook('onRequest', (req, res, done) => {
    if (!(Number(req.headers['content-length']) > BODY_LIMIT) || req.routeOptions.bodyLimit > BODY_LIMIT) return done();
    refuseOnceBodyIsIn(req, res, tooLarge(), done);
  });
  app.addHook('preParsing', bodyDeadline(o.bodyDeadlineMs));
  app.setErrorHandler((err: FastifyError, req, res) => reply(node, err, req, res));
  app.setNotFoundHandler((req, res) => {
    const path = req.url.split('?')[0];
    void res
      .code(404)
      .send(
        new WeirError(
          'not_found',
          `no route ${req.method} ${path} on this ${node}; see the README's API section`,
        ).toJSON(),
      );
  });
}
