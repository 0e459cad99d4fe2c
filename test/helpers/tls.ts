// Certificates for TLS specs, made with the `openssl` command as `weir dev --tls` makes its
// own: the cluster's CA with one certificate per node, and a foreign CA whose certificates
// the cluster must not trust.
import { join } from 'node:path';
import { makeCertificates, type CertifiedNode } from '../../src/client/dev-certs.js';

export interface TestCertificates {
  /** The cluster's CA certificate. */
  ca: string;
  /** Per node name: its certificate and key, signed by `ca`. */
  nodes: Record<string, { cert: string; key: string }>;
  /** Another CA, and certificates it signed for the same names and hosts. */
  foreign: { ca: string; nodes: Record<string, { cert: string; key: string }> };
}

/** Node `name` on `host` (and localhost), for `makeTestCertificates`. */
export const node = (name: string, host: string): CertifiedNode => ({ name, hosts: [host, 'localhost'] });

export function makeTestCertificates(dir: string, nodes: readonly CertifiedNode[]): TestCertificates {
  const own = makeCertificates(join(dir, 'tls'), nodes);
  const foreign = makeCertificates(join(dir, 'tls-foreign'), nodes);
  return { ca: own.ca, nodes: own.nodes, foreign: { ca: foreign.ca, nodes: foreign.nodes } };
}

/** The `--tls-cert/--tls-key/--tls-ca` flags of node `name`. */
export function tlsArgs(
  certs: { ca: string; nodes: TestCertificates['nodes'] },
  name: string,
  withCa = true,
): string[] {
  const n = certs.nodes[name];
  if (!n) throw new Error(`no certificate was made for '${name}'`);
  return ['--tls-cert', n.cert, '--tls-key', n.key, ...(withCa ? ['--tls-ca', certs.ca] : [])];
}
