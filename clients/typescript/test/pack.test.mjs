// `npm pack` makes an installable tarball: install it into an empty project (offline:
// its one dependency comes from this package's node_modules cache) and run the README's
// chat turn there against a real agentstored.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { Server } from './server.mjs';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('npm pack installs into an empty project and runs the chat turn', { timeout: 180000 }, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'agentstore-pack-'));
  const server = await new Server().start();
  try {
    const out = execFileSync('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: pkg, encoding: 'utf8' });
    const tarball = path.join(work, out.trim().split('\n').pop());
    assert.ok(fs.existsSync(tarball), `no tarball: ${out}`);
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // --prefer-offline: flatbuffers is normally in npm's cache already (setup installed it)
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent', tarball], { cwd: app, encoding: 'utf8' });
    fs.copyFileSync(path.join(pkg, 'examples/chat-turn.mjs'), path.join(app, 'chat-turn.mjs'));
    fs.writeFileSync(path.join(app, 'main.mjs'), `
import { Client } from '@agentstore/client';
import { chatTurn } from './chat-turn.mjs';
const db = await Client.connect({ port: Number(process.argv[2]), key: process.argv[3] });
const user = await db.userCreate({ email: 'ada@example.com' });
const agent = await db.agentCreate({ name: 'Writer', is_public: true });
await db.userAgentCreate({ user_id: user.id, agent_id: agent.id });
const chat = await db.chatCreate({ user_id: user.id, agent_id: agent.id });
await db.memoryUpsert({ user_id: user.id, memory_key: 'diet', memory_value: { content: 'vegetarian' }, embedding: [1, 0, 0, 0] });
const r = await chatTurn(db, { userId: user.id, agentId: agent.id, chatId: chat.id, text: 'hello',
  embedding: new Float32Array([1, 0, 0, 0]) });
const again = await chatTurn(db, { userId: user.id, agentId: agent.id, chatId: chat.id, text: 'again',
  embedding: new Float32Array([1, 0, 0, 0]) });
console.log(JSON.stringify({ status: r.status, memories: r.memories.length, history: again.history.length,
  usage: String(again.usage.user_agent.usage_count), chatMessages: String(again.usage.log.total_tokens) }));
await db.close();
`);
    const res = JSON.parse(execFileSync('node', ['main.mjs', String(server.port), server.key('service')], { cwd: app, encoding: 'utf8' }));
    assert.deepEqual(res, { status: 200, memories: 1, history: 2, usage: '2', chatMessages: '420' });
    // the tarball carries the compiled code and types, not the sources or tests
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' });
    assert.match(files, /package\/dist\/index\.d\.ts/);
    assert.doesNotMatch(files, /package\/test\//);
  } finally {
    await server.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
