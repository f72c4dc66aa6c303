// End-to-end test: the official `openai` npm client talks to the real moat binary, which
// forwards to the real test upstream (upstream backend) or serves its built-in model.
// Run by CTest (test/e2e-node/CMakeLists.txt) with MOAT_BIN and MOAT_TEST_UPSTREAM_BIN set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const MOAT = process.env.MOAT_BIN;
const UPSTREAM = process.env.MOAT_TEST_UPSTREAM_BIN;
const MODEL_FILE = process.env.MOAT_TEST_MODEL;  // optional: a trained builtin model
if (!MOAT || !UPSTREAM) throw new Error('MOAT_BIN and MOAT_TEST_UPSTREAM_BIN must be set');

const dir = mkdtempSync(path.join(tmpdir(), 'moat-e2e-'));
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
let builtinModel = null;

before(async () => {
  const up = start(UPSTREAM, ['--port', '0', '--port-file', path.join(dir, 'up.port')], 'upstream');
  const upPort = await waitForFile(path.join(dir, 'up.port'), up);
  let models = `
[[models]]
name = "test-model"
backend = "upstream"
base_url = "http://127.0.0.1:${upPort}/v1"
`;
  if (MODEL_FILE && existsSync(MODEL_FILE)) {
    builtinModel = 'moat-mini';
    models += `
[[models]]
name = "moat-mini"
backend = "builtin"
model_path = "${MODEL_FILE}"
generation_threads = 1
`;
  }
  const config = path.join(dir, 'moat.toml');
  writeFileSync(config, `
[server]
listen = "127.0.0.1:0"
threads = 1
[storage]
data_dir = "${dir}/var"
${models}`);
  execFileSync(MOAT, ['account', 'create', 'e2e', '--tier', 'verified', '--config', config]);
  const key = execFileSync(MOAT, ['key', 'create', '--account', 'e2e', '--config', config], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  assert.match(key, /^sk-moat-/);
  const moat = start(MOAT, ['serve', '--config', config, '--port-file', path.join(dir, 'moat.port')], 'moat');
  const port = await waitForFile(path.join(dir, 'moat.port'), moat);
  client = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
});

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('non-streaming chat completion through moat', async () => {
  const res = await client.chat.completions.create({
    model: 'test-model',
    messages: [{ role: 'user', content: 'hello from node' }],
    max_tokens: 6,
  });
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.choices[0].message.content, 'echo: hello from node w1 w2');
  assert.equal(res.usage.completion_tokens, 6);
});

test('streaming chat completion through moat', async () => {
  const stream = await client.chat.completions.create({
    model: 'test-model',
    messages: [{ role: 'user', content: 'stream me' }],
    max_tokens: 5,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'echo: stream me w1 w2');
  assert.ok(chunks >= 5, `expected one chunk per token, got ${chunks}`);
  assert.equal(usage?.completion_tokens, 5);
});

test('legacy completions and models list', async () => {
  const res = await client.completions.create({ model: 'test-model', prompt: 'alpha beta', max_tokens: 4 });
  assert.equal(res.choices[0].text, 'echo: alpha beta w1');
  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === 'test-model'));
});

test('errors surface as OpenAI API errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found');
  const bad = new OpenAI({ apiKey: 'sk-moat-wrong', baseURL: client.baseURL, maxRetries: 0 });
  await assert.rejects(
    bad.chat.completions.create({ model: 'test-model', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.AuthenticationError && err.code === 'invalid_api_key');
});

test('builtin model streams watermarked text', { skip: !MODEL_FILE && 'MOAT_TEST_MODEL not set' }, async () => {
  const stream = await client.chat.completions.create({
    model: builtinModel,
    messages: [{ role: 'user', content: 'Tell me a fortune' }],
    max_tokens: 12,
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.ok(text.length > 0);
});
