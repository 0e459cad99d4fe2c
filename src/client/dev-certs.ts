import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A node to certify: its files are `NAME.pem` and `NAME-key.pem`, valid for `hosts`. */
export interface CertifiedNode {
  name: string;
  /** IPv4 addresses and DNS names the certificate is valid for. */
  hosts: string[];
}

export interface Certificates {
  dir: string;
  /** The CA's certificate; its key is gone once the nodes' are signed. */
  ca: string;
  nodes: Record<string, { cert: string; key: string }>;
}

const DAYS = '30';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new Error(
        "making certificates needs the 'openssl' command, which is not on PATH: install it (Debian/Ubuntu: apt-get install openssl)",
      );
    }
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

const altNames = (hosts: readonly string[]) =>
  hosts.map((h, i) => (/^\d{1,3}(\.\d{1,3}){3}$/.test(h) ? `IP.${i + 1} = ${h}` : `DNS.${i + 1} = ${h}`)).join('\n');

/**
 * A throwaway CA and one certificate per node, signed by it (EC P-256, valid 30 days, for
 * both server and client use), made with the `openssl` command in `dir`. The CA's private
 * key is deleted once the nodes are signed, so nothing can be certified by it afterwards;
 * private keys are readable by their owner alone.
 */
export function makeCertificates(dir: string, nodes: readonly CertifiedNode[]): Certificates {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = Weir throwaway CA',
      '[ext]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  const caKey = 'ca-key.pem';
  try {
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        caKey,
        '-out',
        'ca.pem',
        '-days',
        DAYS,
        '-config',
        'ca.cnf',
        '-extensions',
        'ext',
      ],
      dir,
    );
    const out: Certificates = { dir, ca: join(dir, 'ca.pem'), nodes: {} };
    for (const n of nodes) {
      if (!/^[A-Za-z0-9_.-]+$/.test(n.name))
        throw new Error(`a certificate's name is a plain file name; got '${n.name}'`);
      const cnf = `${n.name}.cnf`;
      writeFileSync(
        join(dir, cnf),
        [
          '[req]',
          'distinguished_name = dn',
          'prompt = no',
          '[dn]',
          `CN = ${n.hosts[0] ?? n.name}`,
          '[ext]',
          'basicConstraints = critical,CA:FALSE',
          'keyUsage = critical,digitalSignature,keyEncipherment',
          'extendedKeyUsage = serverAuth,clientAuth',
          'subjectAltName = @alt',
          'subjectKeyIdentifier = hash',
          'authorityKeyIdentifier = keyid,issuer',
          '[alt]',
          altNames(n.hosts),
          '',
        ].join('\n'),
      );
      const key = `${n.name}-key.pem`;
      openssl(['req', '-new', ...ec, '-keyout', key, '-out', `${n.name}.csr`, '-config', cnf], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${n.name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          caKey,
          '-set_serial',
          `0x${randomBytes(12).toString('hex')}`,
          '-days',
          DAYS,
          '-extfile',
          cnf,
          '-extensions',
          'ext',
          '-out',
          `${n.name}.pem`,
        ],
        dir,
      );
      chmodSync(join(dir, key), 0o600);
      rmSync(join(dir, `${n.name}.csr`));
      rmSync(join(dir, cnf));
      out.nodes[n.name] = { cert: join(dir, `${n.name}.pem`), key: join(dir, key) };
    }
    return out;
  } finally {
    rmSync(join(dir, caKey), { force: true });
    rmSync(join(dir, 'ca.cnf'), { force: true });
  }
}
