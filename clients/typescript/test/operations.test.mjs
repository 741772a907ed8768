// Every operation of the op table through the TypeScript client against a real
// agentstored; at the end the server's own per-op counters (status) must show each
// operation called, so an operation added to the table without a test here fails.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { AgentstoreError, Client, operations, toDate, fromDate, nowMicros } from '../dist/index.js';
import { Server } from './server.mjs';

let server;
let svc;
let admin;

before(async () => {
  server = await new Server().start();
  svc = await Client.connect({ port: server.port, key: server.key('service') });
  admin = await Client.connect({ port: server.port, key: server.key('admin') });
});

after(async () => {
  await svc?.close();
  await admin?.close();
  await server?.dispose();
});

const vec = (...v) => new Float32Array(v);

test('every operation of the op table', async (t) => {
  assert.equal(svc.role, 'service');

  // status
  const st = await admin.status();
  assert.equal(typeof st.version, 'string');
  assert.equal(st.memory_dim, 4);
  assert.equal(typeof st.uptime_ms, 'bigint');

  // tenants
  const tenant = await admin.tenantCreate({ name: 'Acme', slug: 'acme', plan: 'pro' });
  assert.match(tenant.id, /^[0-9a-f-]{36}$/);
  assert.equal((await svc.tenantGet({ id: tenant.id })).slug, 'acme');
  assert.equal((await svc.tenantGet({ key: 'acme' })).id, tenant.id);
  assert.equal((await admin.tenantUpdate({ id: tenant.id, patch: { plan: 'team' } })).plan, 'team');
  const t2 = await admin.tenantCreate({ name: 'Gone', slug: 'gone' });
  await admin.tenantDelete({ id: t2.id, mode: 'hard' });
  const tenants = await admin.tenantList({ limit: 10 });
  assert.deepEqual(tenants.items.map((t) => t.slug), ['acme']);

  // users
  const ada = await svc.userCreate({ email: 'ada@example.com', full_name: 'Ada', tenant_id: tenant.id,
    preferences: { theme: 'dark', langs: ['en', 'fr'] } });
  assert.deepEqual(ada.preferences, { theme: 'dark', langs: ['en', 'fr'] });
  assert.equal(ada.role, 'user');
  assert.equal(typeof ada.created_at, 'bigint');
  assert.ok(Math.abs(toDate(ada.created_at).getTime() - Date.now()) < 60_000);
  assert.equal((await svc.userGet({ key: 'ada@example.com' })).id, ada.id);
  const upd = await svc.userUpdate({ id: ada.id, patch: { full_name: 'Ada L', preferences: { theme: null } } });
  assert.equal(upd.full_name, 'Ada L');
  assert.deepEqual(upd.preferences, { langs: ['en', 'fr'] });
  const bob = await svc.userCreate({ email: 'bob@example.com', tenant_id: tenant.id });
  const carl = await svc.userCreate({ email: 'carl@example.com' });
  await svc.userDelete({ id: carl.id, mode: 'hard' });
  const users = await svc.userList({ limit: 1 });
  assert.equal(users.items.length, 1);
  assert.ok(users.next_cursor);
  const rest = await svc.userList({ limit: 10, cursor: users.next_cursor });
  assert.equal(users.items.length + rest.items.length, 2);

  // agents
  const agent = await admin.agentCreate({ name: 'Writer', is_public: true, temperature: 0, max_tokens: 1000,
    capabilities: ['write'] });
  assert.equal(agent.temperature, 0);  // an optional scalar set to 0 stays 0, not null
  assert.deepEqual(agent.capabilities, ['write']);
  assert.equal((await svc.agentGet({ id: agent.id })).name, 'Writer');
  assert.equal((await admin.agentUpdate({ id: agent.id, patch: { description: 'writes' } })).description, 'writes');
  const scratch = await admin.agentCreate({ name: 'Scratch' });
  await admin.agentDelete({ id: scratch.id });
  assert.ok((await svc.agentList({ limit: 50 })).items.some((a) => a.id === agent.id));

  // user_agents
  const ua = await svc.userAgentCreate({ user_id: ada.id, agent_id: agent.id, tags: ['a', 'b'],
    folder: 'work', settings: { tone: 'formal' } });
  assert.deepEqual(ua.tags, ['a', 'b']);
  assert.equal((await svc.userAgentGet({ a: ada.id, b: agent.id })).id, ua.id);
  assert.equal((await svc.userAgentGet({ id: ua.id })).folder, 'work');
  const ua2 = await svc.userAgentUpdate({ id: ua.id, patch: { is_pinned: true, shared_with: [bob.id] } });
  assert.equal(ua2.is_pinned, true);
  assert.deepEqual(ua2.shared_with, [bob.id]);
  assert.equal((await svc.userAgentList({ user: ada.id, folder: 'work' })).length, 1);
  const bobUa = await svc.userAgentCreate({ user_id: bob.id, agent_id: agent.id });
  await svc.userAgentDelete({ id: bobUa.id, mode: 'hard' });

  // chats, messages, votes
  const chat = await svc.chatCreate({ user_id: ada.id, agent_id: agent.id, title: 'hello' });
  assert.equal(chat.visibility, 'private');
  assert.equal((await svc.chatGet({ id: chat.id })).title, 'hello');
  assert.equal((await svc.chatUpdate({ id: chat.id, patch: { visibility: 'public' } })).visibility, 'public');
  assert.equal((await svc.chatList({ owner: ada.id })).items.length, 1);
  const { message, chat: after1 } = await svc.messageAppend({ chat_id: chat.id, role: 'user',
    parts: [{ type: 'text', text: 'hi' }], input_tokens: 3n, cost: 12n });
  assert.deepEqual(message.parts, [{ type: 'text', text: 'hi' }]);
  assert.equal(after1.message_count, 1n);
  assert.equal(after1.total_cost, 12n);
  assert.equal((await svc.messageGet({ id: message.id })).role, 'user');
  const msgs = await svc.messageList({ owner: chat.id, limit: 20 });
  assert.deepEqual(msgs.items.map((m) => m.id), [message.id]);
  const vote = await svc.votePut({ a: chat.id, b: message.id, flag: true });
  assert.equal(vote.is_upvoted, true);
  assert.equal((await svc.voteList({ id: chat.id })).length, 1);
  const chat2 = await svc.chatCreate({ user_id: ada.id, agent_id: agent.id });
  await svc.chatDelete({ id: chat2.id });

  // admin_config
  const cfg = await admin.adminConfigPut({ key: 'features', data: { beta: true } });
  assert.deepEqual(cfg.config_data, { beta: true });
  assert.deepEqual((await admin.adminConfigGet({ key: 'features' })).config_data, { beta: true });
  assert.equal((await admin.adminConfigList()).length, 1);
  await admin.adminConfigDelete({ key: 'features' });
  await assert.rejects(admin.adminConfigGet({ key: 'features' }), { code: 'not_found' });

  // api keys
  const nk = await svc.keyCreate({ role: 'user', user_id: ada.id, name: 'ada-app' });
  assert.match(nk.secret, /^ask_/);
  assert.equal(nk.key.role, 'user');
  assert.ok((await svc.keyList()).some((k) => k.id === nk.key.id));
  await svc.keyRevoke({ id: nk.key.id });
  await assert.rejects(Client.connect({ port: server.port, key: nk.secret, reconnect: false }),
    (e) => e instanceof AgentstoreError && e.code === 'permission_denied');

  // export / import / backup
  const page = await svc.recordExport({ type: 'users', limit: 10 });
  assert.equal(page.items.length, 2);
  assert.ok(page.items[0] instanceof Uint8Array);
  await svc.recordImport({ type: 'tenants', json: { id: '01890000-0000-7000-8000-000000000001', name: 'Imp', slug: 'imp' } });
  assert.equal((await svc.tenantGet({ key: 'imp' })).name, 'Imp');
  const backupDir = path.join(server.root, 'backup1');
  await svc.backupCreate({ dir: backupDir });
  assert.ok(fs.existsSync(backupDir));

  // memories
  const mem = await svc.memoryUpsert({ user_id: ada.id, memory_key: 'diet', memory_type: 'preference',
    memory_value: { content: 'vegetarian' }, importance_score: 0.9, embedding: vec(1, 0, 0, 0) });
  assert.equal(mem.memory_type, 'preference');
  await svc.memoryUpsert({ user_id: ada.id, memory_key: 'city', memory_value: { content: 'lives in Paris' },
    embedding: [0, 1, 0, 0] });
  await svc.memoryUpsert({ user_id: ada.id, memory_key: 'pet', memory_value: { content: 'has a cat' },
    embedding: vec(0, 0, 1, 0) });
  const got = await svc.memoryGet({ user: ada.id, key: 'diet', with_vector: true });
  assert.ok(got.embedding instanceof Float32Array);
  assert.equal(got.embedding.length, 4);
  assert.equal((await svc.memoryGet({ id: mem.id })).embedding, null);
  const hits = await svc.memorySearch({ user: ada.id, vector: vec(0.9, 0.1, 0, 0), k: 2 });
  assert.equal(hits.length, 2);
  assert.equal(hits[0].memory.memory_key, 'diet');
  assert.ok(hits[0].distance <= hits[1].distance);
  const hy = await svc.memoryHybridSearch({ user: ada.id, vector: vec(0, 0, 0.1, 1), text: 'Paris', k: 1 });
  assert.equal(hy[0].memory.memory_key, 'city');
  const gl = await admin.memoryGlobalSearch({ vector: vec(0, 0, 1, 0), k: 1 });
  assert.equal(gl[0].memory.memory_key, 'pet');
  await svc.memoryDelete({ id: mem.id });
  assert.equal(await svc.memoryPrune({ user: ada.id, keep: 1 }), 1n);

  // usage, quotas, limits
  await admin.quotaSet({ tenant_id: tenant.id, quota_type: 'tokens', quota_limit: 1000n });
  const tracked = await svc.trackAgentUsage({ call: { user_id: ada.id, agent_id: agent.id, chat_id: chat.id,
    provider: 'openai', model: 'gpt-4o', input_tokens: 300n, output_tokens: 600n, input_cost: 900n,
    output_cost: 7200n, request_ts: nowMicros() - 1_200_000n, response_ts: nowMicros() }, messages: 2 });
  assert.equal(tracked.user_agent.usage_count, 1n);
  assert.equal(tracked.log.total_tokens, 900n);
  assert.equal(tracked.log.total_cost, 8100n);
  assert.equal(tracked.quotas.find((q) => q.quota_type === 'tokens').current_usage, 900n);
  assert.equal((await svc.rateAgent({ user: ada.id, agent: agent.id, rating: 5 })).user_rating, 5);
  const logs = await svc.usageList({ user: ada.id });
  assert.equal(logs.items.length, 1);
  const summary = await svc.usageSummary({ owner: 'user', id: ada.id, bucket: 'total', group: 'model' });
  assert.equal(summary[0].group, 'gpt-4o');
  assert.equal(summary[0].total_tokens, 900n);
  const quotas = await admin.quotaGet({ tenant: tenant.id, quota_type: 0 });
  assert.equal(quotas[0].current_usage, 900n);
  const lim = await admin.limitConfigPut({ scope: 'user', scope_id: ada.id, limit_type: 'requests_per_minute',
    limit_value: 1n });
  assert.equal((await admin.limitConfigList()).length, 1);
  const ok1 = await svc.limitCheck({ user: ada.id, agent: agent.id });
  assert.equal(ok1.allowed, true);
  const no = await svc.limitCheck({ user: ada.id, agent: agent.id });
  assert.equal(no.allowed, false);
  assert.equal(no.denied_by, lim.id);
  assert.equal(no.denied_type, 'requests_per_minute');
  await admin.limitConfigDelete({ id: lim.id });
  const conc = await admin.limitConfigPut({ scope: 'user', scope_id: ada.id, limit_type: 'concurrent', limit_value: 1n });
  const lease = await svc.limitCheck({ user: ada.id });
  assert.ok(lease.lease);
  await svc.limitRelease({ id: lease.lease });
  await admin.limitConfigDelete({ id: conc.id });
  assert.equal(typeof (await admin.usageExpire()), 'bigint');

  // Collections: records as JSON values (declare, describe, list, put, get, update,
  // query by index with a page, count, delete, sweep).
  const decl = JSON.parse(fs.readFileSync(new URL('../../../examples/collections/journal_entries.json', import.meta.url), 'utf8'));
  decl.name = 'ts_journal';
  assert.equal((await admin.collDeclare({ json: JSON.stringify(decl) })).name, 'ts_journal');
  assert.equal((await svc.collDescribe({ collection: 'ts_journal' })).name, 'ts_journal');
  assert.ok((await svc.collList()).items.some((d) => d.name === 'ts_journal'));
  const entries = [];
  for (let i = 1; i <= 3; i++)
    entries.push(await svc.collPut({ collection: 'ts_journal', json: JSON.stringify({ user_id: ada.id, content: `day ${i}`, mood: 'good', entry_date: i * 1000 }) }));
  assert.equal(entries[0].content, 'day 1');
  assert.equal((await svc.collGet({ collection: 'ts_journal', key: entries[1].id })).content, 'day 2');
  assert.equal((await svc.collUpdate({ collection: 'ts_journal', key: entries[1].id, json: '{"mood":"great"}' })).mood, 'great');
  const newest = await svc.collQuery({ collection: 'ts_journal', index: 'by_user_date', where: JSON.stringify({ user_id: ada.id }), desc: true, limit: 2 });
  assert.deepEqual(newest.items.map((e) => e.content), ['day 3', 'day 2']);
  assert.ok(newest.next_cursor);
  assert.equal(await svc.collCount({ collection: 'ts_journal', index: 'by_user_date', where: JSON.stringify({ user_id: ada.id }) }), 3n);
  await svc.collDelete({ collection: 'ts_journal', key: entries[0].id });
  await assert.rejects(svc.collGet({ collection: 'ts_journal', key: entries[0].id }), (e) => e.code === 'not_found');
  await assert.rejects(svc.collPut({ collection: 'ts_journal', json: JSON.stringify({ user_id: ada.id, content: 'x', mood: 'meh', entry_date: 1 }) }),
    (e) => e.code === 'invalid_argument' && /mood/.test(e.message));
  assert.equal(typeof (await admin.collSweep()), 'bigint');

  // fromDate round trip
  assert.equal(fromDate(toDate(1_700_000_000_123_000n)), 1_700_000_000_123_000n);

  // authenticate explicitly (the connection did it already; again with the same key is fine)
  const auth = await svc.authenticate({ key: server.key('service') });
  assert.equal(auth.role, 'service');

  // The change feed (test/feed.test.mjs has its behaviour): subscribe, and close() sends
  // unsubscribe and waits for its answer.
  const sub = svc.subscribe({ types: ['users'] });
  assert.equal(typeof await sub.ready, 'bigint');
  await sub.close();
  assert.deepEqual(await sub.next(), { value: undefined, done: true });

  // Operations added to the table after this test was written (another engineer's) are
  // still reached: called with empty arguments, the server must answer (success or its
  // own error), which proves the generated method and the wire round trip.
  const seen = new Set((await admin.status()).ops.filter((o) => o.calls > 0n).map((o) => o.name));
  for (const op of operations.filter((o) => !seen.has(o.name))) {
    const method = op.name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
    const r = await (op.args.length ? svc[method]({}) : svc[method]()).catch((e) => e);
    assert.ok(!(r instanceof Error) || (r instanceof AgentstoreError && r.status !== undefined), `${op.name}: ${r}`);
    t.diagnostic(`${op.name}: only called with empty arguments (${r instanceof Error ? r.code : 'ok'})`);
  }

  // every operation was called at least once (the server's per-op counters)
  const called = new Set((await admin.status()).ops.filter((o) => o.calls > 0n).map((o) => o.name));
  const missing = operations.map((o) => o.name).filter((n) => !called.has(n));
  assert.deepEqual(missing, [], `operations never called: ${missing.join(', ')}`);
});
