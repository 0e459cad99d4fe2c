import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { AtMostEvery } from './at-most-every.js';

/**
 * What an outgoing connection to another node is given: undici's Agent takes it as `connect`,
 * `ws` as options of its own. `ca` replaces the default trust store; `cert` and `key` are the
 * client certificate presented.
 */
export interface TlsConnect {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Node's https server options (Fastify's `https`). */
export interface TlsServerOptions {
  cert: string;
  key: string;
  ca?: string;
  requestCert: boolean;
  /** Clients without a certificate (the CLI, a browser) are served and authorised by their token. */
  rejectUnauthorized: false;
}

/**
 * A node's TLS, read once at start from `--tls-cert`, `--tls-key` and `--tls-ca`: it serves
 * https/wss only. With a CA, it verifies the nodes it connects to against that CA alone and
 * presents its own certificate to them; without one, it trusts the default store (and
 * NODE_EXTRA_CA_CERTS) and presents none.
 */
export interface NodeTls {
  readonly server: TlsServerOptions;
  readonly connect: TlsConnect;
  /** The CA in PEM, when one was given (a task thread verifies other nodes against it). */
  readonly ca: string | undefined;
}

export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

export type Scheme = 'http' | 'https';

/** `https` for a node that serves TLS, `http` otherwise: the scheme of every URL it builds. */
export const schemeOf = (tls: NodeTls | undefined): Scheme => (tls ? 'https' : 'http');

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${flag} '${path}': ${(err as Error).message}`);
  }
}

/** Every certificate in a PEM file, parsed: a bundle, or a leaf followed by its chain. */
function certificates(flag: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error(`${flag} '${path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new Error(`${flag} '${path}': certificate ${i + 1} is not valid PEM: ${(err as Error).message}`);
    }
  });
}

function privateKey(path: string, pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new Error(
      `--tls-key '${path}' is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----): ${(err as Error).message}`,
    );
  }
}

/** Whether one of `cas` signed a certificate of `chain` (or is one of them). */
function anchored(chain: readonly X509Certificate[], cas: readonly X509Certificate[]): boolean {
  return chain.some((c) =>
    cas.some((ca) => ca.fingerprint256 === c.fingerprint256 || (c.checkIssued(ca) && c.verify(ca.publicKey))),
  );
}

/**
 * Reads and checks a node's TLS files; undefined when none is given. Every mistake that
 * would otherwise show up as failed handshakes later fails here, naming the flag and file:
 * one of cert and key without the other, a CA without them, a file that cannot be read or is
 * not PEM, a key that is not the certificate's, a certificate the CA did not sign.
 */
export function loadNodeTls(files: TlsFiles): NodeTls | undefined {
  const { cert: certPath, key: keyPath, ca: caPath } = files;
  if (certPath === undefined && keyPath === undefined) {
    if (caPath !== undefined) {
      throw new Error('--tls-ca needs --tls-cert and --tls-key: a node verifies others only when it serves TLS itself');
    }
    return undefined;
  }
  if (certPath === undefined) throw new Error('--tls-key needs --tls-cert: the certificate that key belongs to');
  if (keyPath === undefined) throw new Error('--tls-cert needs --tls-key: the private key of that certificate');
  const cert = readPem('--tls-cert', certPath);
  const key = readPem('--tls-key', keyPath);
  const chain = certificates('--tls-cert', certPath, cert);
  if (!chain[0]!.checkPrivateKey(privateKey(keyPath, key))) {
    throw new Error(`--tls-key '${keyPath}' is not the private key of --tls-cert '${certPath}'`);
  }
  if (caPath === undefined) {
    return { server: { cert, key, requestCert: false, rejectUnauthorized: false }, connect: {}, ca: undefined };
  }
  const ca = readPem('--tls-ca', caPath);
  if (!anchored(chain, certificates('--tls-ca', caPath, ca))) {
    throw new Error(
      `--tls-cert '${certPath}' is not signed by --tls-ca '${caPath}': the other nodes would refuse this one`,
    );
  }
  return { server: { cert, key, ca, requestCert: true, rejectUnauthorized: false }, connect: { ca, cert, key }, ca };
}

/** The CLI's `--tls-ca FILE` (or WEIR_TLS_CA): the servers it talks to are verified against it. */
export function loadClientCa(path: string, flag: string): TlsConnect {
  const ca = readPem(flag, path);
  certificates(flag, path, ca);
  return { ca };
}

/** What a server's event hook is handed for each TLS connection. */
interface SecureServer {
  on(event: 'secureConnection', listener: (socket: TLSSocket) => void): unknown;
}

/** Refusals are reported at most this often, so a peer retrying every second cannot flood the log. */
const REPORT_EVERY_MS = 10_000;

/**
 * A server that asks for client certificates (`requestCert`) without requiring one still
 * completes the handshake of a client whose certificate failed verification: this closes such
 * a connection before it carries a request. Clients that present none go on to the token check.
 * `onRefused` hears of the first refusal, then at most one per 10 s with how many it stands for.
 */
export function refuseUnverifiedClients(
  server: SecureServer,
  onRefused: (why: string, remote: string | undefined, count: number) => void,
): void {
  const refusals = new AtMostEvery(REPORT_EVERY_MS);
  server.on('secureConnection', (socket) => {
    if (socket.authorized) return;
    const presented = Object.keys(socket.getPeerCertificate()).length > 0;
    if (!presented) return;
    socket.destroy();
    // This refusal and those held back since the last one said.
    refusals.say((heldBack) =>
      onRefused(String(socket.authorizationError ?? 'unverified'), socket.remoteAddress, heldBack + 1),
    );
  });
}

/** OpenSSL's verification failures, as Node names them on the error's `code`. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Whether a connection failed because the server's certificate could not be trusted. */
export function isUntrustedCertificate(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && VERIFY_CODES.has(code)) return true;
  }
  return false;
}
