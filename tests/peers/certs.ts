/**
 * Throwaway TLS material for the wss:// tests, made with the `openssl` command line in a directory
 * the caller owns (and removes): a CA, a server certificate for localhost/127.0.0.1 and one for
 * another host name, both signed by the CA (RSA 2048, valid 2 days). Never use these elsewhere.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCertificates {
  /** CA certificate (PEM) that signed both leaves. */
  ca: string;
  /** Leaf for DNS:localhost and IP:127.0.0.1, and its unencrypted key. */
  cert: string;
  key: string;
  /** Leaf for DNS:other.example only (a host name mismatch for localhost), and its key. */
  otherCert: string;
  otherKey: string;
}

export function makeTestCertificates(dir: string): TestCertificates {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Osprey Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const [name, san] of [['server', 'DNS:localhost,IP:127.0.0.1'], ['other', 'DNS:other.example']]) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  return {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
    otherCert: join(dir, 'other.pem'),
    otherKey: join(dir, 'other.key'),
  };
}
