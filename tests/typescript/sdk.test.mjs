// The official TypeScript SDK (@anthropic-ai/sdk, pinned in package-lock.json) against a real
// `managed-agents serve` on 127.0.0.1:0, once per storage backend: create an agent, an
// environment and a session; send; list with auto-pagination (`for await`); stream.
//
// Run: MANAGED_AGENTS_BIN=/path/to/managed-agents node --test   (from tests/typescript)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import Anthropic from '@anthropic-ai/sdk';

const SAFETY_MS = 30_000;

function binary() {
  const candidates = [
    process.env.MANAGED_AGENTS_BIN,
    join(process.env.CARGO_TARGET_DIR ?? '/var/cache/managed-agents/target', 'debug', 'managed-agents'),
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`managed-agents binary not found (looked at ${candidates.join(', ')}); set MANAGED_AGENTS_BIN`);
  return found;
}

/** Starts a server and resolves with {url, key, stop}. */
function startServer(storage) {
  const dataDir = mkdtempSync(join(tmpdir(), `ma-ts-${storage}-`));
  const key = `sk-test-${randomBytes(18).toString('base64url')}`;
  const child = spawn(binary(), ['serve', '--listen', '127.0.0.1:0', '--storage', storage, '--data-dir', dataDir], {
    env: { ...process.env, MANAGED_AGENTS_BOOTSTRAP_KEY: key, MANAGED_AGENTS_PING_SECONDS: '1', MANAGED_AGENTS_RUNNER: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-8000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), SAFETY_MS);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/^listening on (http:\/\/\S+)/);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1],
        key,
        stop: () =>
          new Promise((done) => {
            child.removeAllListeners('exit');
            child.on('exit', (code, signal) => {
              rmSync(dataDir, { recursive: true, force: true });
              done({ code, signal });
            });
            child.kill('SIGTERM');
          }),
      });
    });
  });
}

const unique = (prefix) => `${prefix}-${randomBytes(6).toString('hex')}`;
const userMessage = (text) => ({ type: 'user.message', content: [{ type: 'text', text }] });

for (const storage of ['rocksdb', 'memory']) {
  describe(`@anthropic-ai/sdk against ${storage} storage`, () => {
    let server;
    let client;

    before(async () => {
      server = await startServer(storage);
      client = new Anthropic({ baseURL: server.url, apiKey: server.key });
    });

    after(async () => {
      if (server) {
        const { code } = await server.stop();
        assert.equal(code, 0, 'server exits cleanly on SIGTERM');
      }
    });

    test('create agent, environment and session; send; list; stream', async () => {
      const agent = await client.beta.agents.create({
        name: unique('ts-agent'),
        model: 'claude-sonnet-4-6',
        tools: [{ type: 'agent_toolset_20260401' }],
      });
      assert.equal(agent.type, 'agent');
      assert.match(agent.id, /^agent_/);
      assert.equal(agent.version, 1);
      assert.equal(agent.model.id, 'claude-sonnet-4-6');
      assert.equal(agent.tools[0].type, 'agent_toolset_20260401');

      const environment = await client.beta.environments.create({ name: unique('ts-env') });
      assert.equal(environment.type, 'environment');
      assert.equal(environment.config.type, 'cloud');

      const session = await client.beta.sessions.create({
        agent: agent.id,
        environment_id: environment.id,
        title: 'from typescript',
      });
      assert.equal(session.type, 'session');
      assert.equal(session.status, 'idle');
      assert.equal(session.agent.id, agent.id);
      assert.equal(session.title, 'from typescript');

      // Open the stream first, then send: the echo and status_running arrive on it.
      const stream = await client.beta.sessions.events.stream(session.id);
      const sent = await client.beta.sessions.events.send(session.id, {
        events: [userMessage('hello from node')],
      });
      assert.equal(sent.data.length, 1);
      assert.equal(sent.data[0].type, 'user.message');
      assert.match(sent.data[0].id, /^sevt_/);

      const watchdog = setTimeout(() => stream.controller.abort(), SAFETY_MS);
      const streamed = [];
      try {
        for await (const event of stream) {
          streamed.push(event);
          if (event.type === 'session.status_running') break;
        }
      } finally {
        clearTimeout(watchdog);
      }
      assert.deepEqual(
        streamed.map((e) => e.type),
        ['user.message', 'session.status_running'],
      );
      assert.equal(streamed[0].id, sent.data[0].id);
      assert.equal(streamed[0].content[0].text, 'hello from node');

      // More events, then list them with small pages and auto-pagination.
      for (let i = 0; i < 4; i++) {
        await client.beta.sessions.events.send(session.id, { events: [userMessage(`m${i}`)] });
      }
      const listed = [];
      for await (const event of client.beta.sessions.events.list(session.id, { limit: 2 })) {
        listed.push(event);
      }
      assert.deepEqual(
        listed.map((e) => e.type),
        ['user.message', 'session.status_running', 'user.message', 'user.message', 'user.message', 'user.message'],
      );
      assert.deepEqual(
        listed.slice(0, 2).map((e) => e.id),
        streamed.map((e) => e.id),
      );
      const firstPage = await client.beta.sessions.events.list(session.id, { limit: 2 });
      assert.equal(firstPage.data.length, 2);
      assert.ok(firstPage.hasNextPage());

      const retrieved = await client.beta.sessions.retrieve(session.id);
      assert.equal(retrieved.status, 'running');
    });

    test('lists auto-paginate agents, environments and sessions', async () => {
      const agent = await client.beta.agents.create({ name: unique('ts-agent'), model: 'claude-sonnet-4-6' });
      const environment = await client.beta.environments.create({ name: unique('ts-env') });
      const made = [];
      for (let i = 0; i < 5; i++) {
        made.push(await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id }));
      }
      const sessions = [];
      for await (const s of client.beta.sessions.list({ agent_id: agent.id, limit: 2 })) sessions.push(s.id);
      assert.deepEqual(sessions, made.map((s) => s.id).reverse(), 'newest first, every page');

      const agents = [];
      for await (const a of client.beta.agents.list({ limit: 1 })) agents.push(a.id);
      assert.ok(agents.includes(agent.id));
      assert.equal(new Set(agents).size, agents.length);

      const environments = [];
      for await (const e of client.beta.environments.list({ limit: 1 })) environments.push(e.id);
      assert.ok(environments.includes(environment.id));
    });

    test('errors map to SDK error classes', async () => {
      await assert.rejects(client.beta.agents.retrieve('agent_01doesnotexist000000000'), Anthropic.NotFoundError);
      const bad = new Anthropic({ baseURL: server.url, apiKey: 'sk-test-wrong-key-000000000000' });
      await assert.rejects(bad.beta.agents.list(), Anthropic.AuthenticationError);
      const agent = await client.beta.agents.create({ name: unique('ts-agent'), model: 'claude-sonnet-4-6' });
      await client.beta.agents.update(agent.id, { system: 'two', version: 1 });
      await assert.rejects(client.beta.agents.update(agent.id, { system: 'stale', version: 1 }), (err) => {
        assert.ok(err instanceof Anthropic.ConflictError);
        assert.match(err.message, /stale/);
        return true;
      });
    });
  });
}
