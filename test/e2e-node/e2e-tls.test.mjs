// End-to-end test over HTTPS: the official `openai` npm client talks to moat's TLS listener,
// and moat forwards to the test upstream over https (verifying it against the test CA). The
// client trusts the test CA only through NODE_EXTRA_CA_CERTS, as an operator's clients would.
// Run by CTest after the e2e_tls_pki fixture (make-test-pki.mjs) made the certificates in
// MOAT_TEST_TLS_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const MOAT = process.env.MOAT_BIN;
const UPSTREAM = process.env.MOAT_TEST_UPSTREAM_BIN;
const TLS = process.env.MOAT_TEST_TLS_DIR;
if (!MOAT || !UPSTREAM || !TLS) throw new Error('MOAT_BIN, MOAT_TEST_UPSTREAM_BIN and MOAT_TEST_TLS_DIR must be set');
if (process.env.NODE_EXTRA_CA_CERTS !== path.join(TLS, 'ca.pem')) {
  throw new Error('NODE_EXTRA_CA_CERTS must name the test CA');
}

const dir = mkdtempSync(path.join(tmpdir(), 'moat-e2e-tls-'));
const children = [];

async function waitForFile(file, child, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (text) return Number(text);
    }
    if (child.exitCode !== null) throw new Error(`${child.spawnargs[0]} exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${file}`);
}

function start(bin, args, log) {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  child.on('exit', () => { if (err && child.exitCode) console.error(`${log}: ${err}`); });
  children.push(child);
  return child;
}

let client;
let key;
let httpsPort;

before(async () => {
  const cert = path.join(TLS, 'server.pem');
  const tlsKey = path.join(TLS, 'server.key');
  const up = start(UPSTREAM, ['--port', '0', '--port-file', path.join(dir, 'up.port'),
    '--tls-cert', cert, '--tls-key', tlsKey], 'upstream');
  const upPort = await waitForFile(path.join(dir, 'up.port'), up);
  const config = path.join(dir, 'moat.toml');
  writeFileSync(config, `
[server]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
tls_cert_file = "${cert}"
tls_key_file = "${tlsKey}"
threads = 1
[storage]
data_dir = "${dir}/var"
[[models]]
name = "test-model"
base_url = "https://127.0.0.1:${upPort}/v1"
tls_server_name = "localhost"
tls_ca_file = "${path.join(TLS, 'ca.pem')}"
`);
  execFileSync(MOAT, ['account', 'create', 'e2e-tls', '--tier', 'verified', '--config', config]);
  key = execFileSync(MOAT, ['key', 'create', '--account', 'e2e-tls', '--config', config],
    { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  const moat = start(MOAT, ['serve', '--config', config, '--port-file', path.join(dir, 'moat.port'),
    '--tls-port-file', path.join(dir, 'moat.tls_port')], 'moat');
  await waitForFile(path.join(dir, 'moat.port'), moat);
  httpsPort = await waitForFile(path.join(dir, 'moat.tls_port'), moat);
  client = new OpenAI({ apiKey: key, baseURL: `https://127.0.0.1:${httpsPort}/v1`, maxRetries: 0 });
});

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('chat completion over https both ways', async () => {
  const res = await client.chat.completions.create({
    model: 'test-model',
    messages: [{ role: 'user', content: 'hello over tls' }],
    max_tokens: 6,
  });
  assert.equal(res.choices[0].message.content, 'echo: hello over tls w1 w2');
  assert.equal(res.usage.completion_tokens, 6);
});

test('streaming over https both ways', async () => {
  const stream = await client.chat.completions.create({
    model: 'test-model',
    messages: [{ role: 'user', content: 'stream me' }],
    max_tokens: 5,
    stream: true,
  });
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'echo: stream me w1 w2');
  assert.ok(chunks >= 5, `expected one chunk per token, got ${chunks}`);
});

test('the listener certificate is verified, not trusted blindly', async () => {
  // The same server under a name its certificate does not carry must fail verification.
  const wrongName = new OpenAI({ apiKey: key, baseURL: `https://127.0.0.2:${httpsPort}/v1`, maxRetries: 0 });
  await assert.rejects(wrongName.models.list(), (err) => err instanceof OpenAI.APIConnectionError);
});
