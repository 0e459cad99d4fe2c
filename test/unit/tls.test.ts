import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { HttpClient, UntrustedServerError } from '../../src/common/http-client.js';
import { ReconnectingSocket, wsUrl } from '../../src/common/reconnecting-socket.js';
import {
  isUntrustedCertificate,
  loadClientCa,
  loadNodeTls,
  refuseUnverifiedClients,
  schemeOf,
  type NodeTls,
  type TlsConnect,
} from '../../src/common/tls.js';
import { makeTestCertificates, node, type TestCertificates } from '../helpers/tls.js';

let dir: string;
let certs: TestCertificates;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-tls-'));
  certs = makeTestCertificates(dir, [node('a', '127.0.0.1'), node('b', '127.0.0.1')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = (name: string, ca = certs.ca) => ({ cert: certs.nodes[name]!.cert, key: certs.nodes[name]!.key, ca });

describe('a node’s TLS files', () => {
  it('are optional: no flags, no TLS, and URLs stay http', () => {
    expect(loadNodeTls({})).toBeUndefined();
    expect(schemeOf(undefined)).toBe('http');
  });

  it('with a CA: the server asks for client certificates without requiring one, and connections present this node’s', () => {
    const tls = loadNodeTls(files('a'))!;
    expect(schemeOf(tls)).toBe('https');
    expect(tls.server).toMatchObject({ requestCert: true, rejectUnauthorized: false });
    expect(tls.server.ca).toContain('BEGIN CERTIFICATE');
    expect(Object.keys(tls.connect).sort()).toEqual(['ca', 'cert', 'key']);
    expect(tls.ca).toBe(tls.connect.ca);
  });

  it('without a CA: https with the default trust store, and no client certificate', () => {
    const tls = loadNodeTls({ cert: certs.nodes.a!.cert, key: certs.nodes.a!.key })!;
    expect(tls.server.requestCert).toBe(false);
    expect(tls.connect).toEqual({});
    expect(tls.ca).toBeUndefined();
  });

  it('refuse a certificate without its key, a key without its certificate, a CA alone', () => {
    expect(() => loadNodeTls({ cert: certs.nodes.a!.cert })).toThrow(/--tls-cert needs --tls-key/);
    expect(() => loadNodeTls({ key: certs.nodes.a!.key })).toThrow(/--tls-key needs --tls-cert/);
    expect(() => loadNodeTls({ ca: certs.ca })).toThrow(/--tls-ca needs --tls-cert and --tls-key/);
  });

  it('name the flag and the file that cannot be read or is not PEM', () => {
    const missing = join(dir, 'nope.pem');
    expect(() => loadNodeTls({ ...files('a'), cert: missing })).toThrow(`cannot read --tls-cert '${missing}'`);
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    expect(() => loadNodeTls({ ...files('a'), cert: junk })).toThrow(`--tls-cert '${junk}' holds no PEM certificate`);
    expect(() => loadNodeTls({ ...files('a'), key: junk })).toThrow(`--tls-key '${junk}' is not an unencrypted PEM`);
    expect(() => loadNodeTls({ ...files('a'), ca: junk })).toThrow(`--tls-ca '${junk}' holds no PEM certificate`);
    expect(() => loadClientCa(junk, 'WEIR_TLS_CA')).toThrow(`WEIR_TLS_CA '${junk}' holds no PEM certificate`);
  });

  it('refuse a key that is not the certificate’s, and a certificate the CA did not sign', () => {
    expect(() => loadNodeTls({ ...files('a'), key: certs.nodes.b!.key })).toThrow(
      /is not the private key of --tls-cert/,
    );
    expect(() => loadNodeTls(files('a', certs.foreign.ca))).toThrow(/is not signed by --tls-ca/);
  });
});

describe('a server that asks for client certificates', () => {
  let server: Server;
  let url: string;
  let refused: string[];
  const agents: Agent[] = [];

  beforeAll(async () => {
    const tls: NodeTls = loadNodeTls(files('a'))!;
    server = createServer(tls.server, (_req, res) => res.end('ok'));
    refused = [];
    refuseUnverifiedClients(server, (why) => refused.push(why));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.close()));
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const get = (connect: TlsConnect) => {
    const dispatcher = new Agent({ connect });
    agents.push(dispatcher);
    return request(url, { dispatcher }).then(
      (r) => r.body.text(),
      (err: Error) => err,
    );
  };

  it('serves a client that presents none (its token decides) and a node with a certificate from the CA', async () => {
    expect(await get(loadClientCa(certs.ca, '--tls-ca'))).toBe('ok');
    expect(await get(loadNodeTls(files('b'))!.connect)).toBe('ok');
  });

  it('closes a connection whose client certificate another CA signed, before any request', async () => {
    const { ca } = loadClientCa(certs.ca, '--tls-ca');
    const foreign = certs.foreign.nodes.b!;
    const answer = await get({ ca, cert: readFileSync(foreign.cert, 'utf8'), key: readFileSync(foreign.key, 'utf8') });
    expect(answer).toBeInstanceOf(Error);
    expect(refused).toEqual([expect.stringMatching(/^UNABLE_TO_|SELF_SIGNED/)]);
  });

  it('is not trusted by a client that verifies against another CA, and the error says so', async () => {
    const err = await get(loadClientCa(certs.foreign.ca, '--tls-ca'));
    expect(err).toBeInstanceOf(Error);
    expect(isUntrustedCertificate(err)).toBe(true);
    expect(isUntrustedCertificate(new Error('ECONNREFUSED'))).toBe(false);
  });
});

describe('what a node connects to other nodes with', () => {
  let server: Server;
  let wss: WebSocketServer;
  let origin: string;

  beforeAll(async () => {
    // Stricter than a node's own server: no certificate, no connection.
    const a = loadNodeTls(files('a'))!;
    server = createServer({ ...a.server, rejectUnauthorized: true }, (_req, res) => res.end('{"ok":true}'));
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.send('hello'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => server.close(r));
  });

  const tokens = { header: () => Promise.resolve(undefined) };

  it('presents its certificate over https (the HTTP client) and wss (the reconnecting socket)', async () => {
    const connect = loadNodeTls(files('b'))!.connect;
    const client = new HttpClient({ urls: [origin], tls: connect, retryForMs: 0 });
    try {
      expect(await client.get('/')).toEqual({ ok: true });
    } finally {
      await client.close();
    }
    const heard = new Promise<string>((resolve) => {
      const socket = new ReconnectingSocket({
        url: () => wsUrl(origin, '/'),
        tokens,
        tls: connect,
        maxPayload: 1024,
        onMessage: (data) => {
          socket.close();
          resolve(data.toString());
        },
      });
    });
    expect(await heard).toBe('hello');
  });

  it('gives up at once on a server no master’s certificate passes, and says whose', async () => {
    const client = new HttpClient({ urls: [origin], tls: loadClientCa(certs.foreign.ca, '--tls-ca') });
    const t0 = Date.now();
    try {
      await expect(client.get('/')).rejects.toThrow(UntrustedServerError);
      await expect(client.get('/')).rejects.toThrow(`cannot verify the certificate of ${origin}`);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await client.close();
    }
  });
});
