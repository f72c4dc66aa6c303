// Makes the throw-away PKI of the HTTPS end-to-end test with the openssl CLI: a CA ("ca.pem",
// which the test trusts through NODE_EXTRA_CA_CERTS) and a certificate it signs for localhost
// and 127.0.0.1 ("server.pem", "server.key"), served by both moat and the test upstream.
// Usage: node make-test-pki.mjs <dir>
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node make-test-pki.mjs <dir>');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const f = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2',
  '-subj', '/CN=moat e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
  '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
openssl('req', '-new', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
writeFileSync(f('server.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' +
  'extendedKeyUsage=serverAuth\n');
openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
  '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', f('server.pem'), '-days', '2',
  '-extfile', f('server.ext'));
for (const key of ['ca.key', 'server.key']) chmodSync(f(key), 0o600);
