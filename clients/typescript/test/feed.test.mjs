// Client.subscribe() against a real agentstored: events in commit order with typed
// records, a user key confined to its own changes, collection records (named, as JSON,
// under the read rules), resume across a server restart (and a dropped connection) with
// nothing lost or repeated, out_of_range as an AgentstoreError.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AgentstoreError, Client } from '../dist/index.js';
import { Server } from './server.mjs';

// Takes `n` events from a subscription's iterator, failing after `ms`.
async function take(it, n, ms = 15000) {
  const out = [];
  const deadline = Date.now() + ms;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`only ${out.length} of ${n} events within ${ms} ms`);
    let timer;
    const r = await Promise.race([
      it.next(),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`only ${out.length} of ${n} events within ${ms} ms`)), left); }),
    ]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error(`the subscription ended after ${out.length} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

// True when nothing more arrives within `ms`.
async function quiet(it, ms) {
  let timer;
  const r = await Promise.race([it.next().then(() => 'event', () => 'error'),
    new Promise((res) => { timer = setTimeout(() => res('quiet'), ms); })]);
  clearTimeout(timer);
  return r === 'quiet';
}

describe('change feed', () => {
  let server;
  let svc;

  before(async () => {
    server = await new Server().start();
    svc = await Client.connect({ port: server.port, key: server.key('service') });
  });
  after(async () => {
    await svc?.close();
    await server?.dispose();
  });

  test('events arrive in commit order, typed, with the record after the change', async () => {
    const ada = await svc.userCreate({ email: 'order@example.com' });
    const sub = svc.subscribe({ types: ['chats', 'messages'], user: ada.id });
    const chat = await svc.chatCreate({ user_id: ada.id, title: 'first' });
    const appended = [];
    // Pipelined: they commit in the order issued.
    for (let i = 0; i < 200; i++)
      appended.push(svc.messageAppend({ chat_id: chat.id, role: 'user', parts: [{ text: `m${i}` }] }));
    await Promise.all(appended);
    await svc.chatUpdate({ id: chat.id, patch: { title: 'renamed' } });
    // Each append also updates the chat's totals: 1 create + 200 x (message + chat) + 1 update.
    const events = await take(sub, 1 + 400 + 1);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].sequence > events[i - 1].sequence, 'increasing sequences');
    assert.equal(events[0].type, 'chats');
    assert.equal(events[0].op, 'created');
    assert.equal(events[0].record.title, 'first');
    const messages = events.filter((e) => e.type === 'messages');
    assert.deepEqual(messages.map((e) => e.record.parts[0].text), Array.from({ length: 200 }, (_, i) => `m${i}`));
    assert.ok(messages.every((e) => e.op === 'created' && e.user_id === ada.id && typeof e.commit_time === 'bigint'));
    const last = events[events.length - 1];
    assert.equal(last.type, 'chats');
    assert.equal(last.op, 'updated');
    assert.equal(last.record.title, 'renamed');
    assert.equal(sub.lastSequence, last.sequence);
    // A hard delete: the record is gone, the event names it.
    await svc.chatDelete({ id: chat.id, mode: 'hard' });
    const [del] = await take(sub, 1);
    assert.equal(del.op, 'deleted');
    assert.equal(del.record, null);
    await sub.close();
    assert.deepEqual(await sub.next(), { value: undefined, done: true });
  });

  test('a user key sees only its own changes, whatever it asks for', async () => {
    const ada = await svc.userCreate({ email: 'mine@example.com' });
    const bob = await svc.userCreate({ email: 'theirs@example.com' });
    const user = await Client.connect({ port: server.port, key: (await svc.keyCreate({ role: 'user', user_id: ada.id })).secret });
    try {
      const sub = user.subscribe();  // no filter: narrowed to ada by the server
      await sub.ready;  // "from now" is from here: the writes below come after
      // Interleaved writes of both users; only ada's may come through.
      for (let i = 0; i < 20; i++) {
        const owner = i % 2 ? bob : ada;
        await svc.memoryUpsert({ user_id: owner.id, memory_key: `k${i}`, memory_value: { i }, embedding: [1, 0, 0, i] });
      }
      await svc.chatCreate({ user_id: bob.id, title: 'bob only' });
      await svc.chatCreate({ user_id: ada.id, title: 'ada last' });
      const events = await take(sub, 11);
      assert.ok(events.every((e) => e.user_id === ada.id), 'only ada\'s records');
      assert.deepEqual(events.slice(0, 10).map((e) => e.record.memory_key), ['k0', 'k2', 'k4', 'k6', 'k8', 'k10', 'k12', 'k14', 'k16', 'k18']);
      assert.equal(events[10].record.title, 'ada last');
      assert.ok(await quiet(sub, 300), 'nothing of bob\'s follows');
      await sub.close();
      // Asking for another user is refused outright.
      const other = user.subscribe({ user: bob.id });
      await assert.rejects(other.next(), (e) => e instanceof AgentstoreError && e.code === 'permission_denied');
    } finally {
      await user.close();
    }
  });

  test('collection records: named, as collGet answers them, filtered by name, under the read rules', async () => {
    await svc.collDeclare({ json: JSON.stringify({ name: 'ts_notes', owner: 'user', fields: [{ name: 'text', type: 'string' }] }) });
    await svc.collDeclare({ json: JSON.stringify({ name: 'ts_news', owner: 'none', fields: [{ name: 'title', type: 'string' }] }) });
    const ada = await svc.userCreate({ email: 'coll-ada@example.com' });
    const bob = await svc.userCreate({ email: 'coll-bob@example.com' });
    const user = await Client.connect({ port: server.port, key: (await svc.keyCreate({ role: 'user', user_id: ada.id })).secret });
    try {
      const notes = svc.subscribe({ collections: ['ts_notes'] });
      const mine = user.subscribe({ types: ['collections'] });
      await Promise.all([notes.ready, mine.ready]);
      const put = await svc.collPut({ collection: 'ts_notes', json: JSON.stringify({ user_id: ada.id, text: 'first' }) });
      await svc.collPut({ collection: 'ts_notes', json: JSON.stringify({ user_id: bob.id, text: 'bob' }) });
      const patched = await svc.collUpdate({ collection: 'ts_notes', key: put.id, json: '{"text":"second"}' });
      const news = await svc.collPut({ collection: 'ts_news', json: '{"title":"hello"}' });
      await svc.userUpdate({ id: ada.id, patch: { full_name: 'not a collection' } });
      await svc.collDelete({ collection: 'ts_notes', key: put.id, mode: 'hard' });

      const n = await take(notes, 4);
      assert.deepEqual(n.map((e) => [e.type, e.op]), [['collection', 'created'], ['collection', 'created'], ['collection', 'updated'], ['collection', 'deleted']]);
      assert.ok(n.every((e) => e.type === 'collection' && e.collection === 'ts_notes'));
      const first = n[0];
      assert.equal(first.type, 'collection');
      if (first.type === 'collection') {
        assert.deepEqual(first.record, put);
        assert.deepEqual(first.record_key, { id: put.id });
        assert.equal(first.user_id, ada.id);
      }
      assert.deepEqual(n[2].record, patched);
      assert.equal(n[3].record, null, 'a hard delete carries the key only');
      assert.deepEqual(n[3].record_key, { id: put.id });
      assert.equal(n[3].user_id, ada.id);
      assert.ok(await quiet(notes, 300), 'no news, no user change');

      // Ada's key: her notes and the unowned news, never bob's note.
      const m = await take(mine, 4);
      assert.deepEqual(m.map((e) => `${e.collection}:${e.op}`), ['ts_notes:created', 'ts_notes:updated', 'ts_news:created', 'ts_notes:deleted']);
      assert.deepEqual(m[2].record, news);
      assert.ok(await quiet(mine, 300), 'nothing of bob\'s follows');
      await notes.close();
      await mine.close();
      // An unknown collection is refused.
      const typo = svc.subscribe({ collections: ['ts_nope'] });
      await assert.rejects(typo.next(), (e) => e instanceof AgentstoreError && e.code === 'not_found' && /ts_nope/.test(e.message));
    } finally {
      await user.close();
    }
  });

  test('out_of_range for a sequence older than the server keeps is an AgentstoreError', async () => {
    const s = await new Server(['--feed-retention-seconds', '0', '--feed-retention-mb', '0']).start();
    let c = await Client.connect({ port: s.port, key: s.key('service') });
    try {
      const u = await c.userCreate({ email: 'old@example.com' });
      for (let i = 0; i < 10; i++) await c.userUpdate({ id: u.id, patch: { full_name: `n${i}` } });
      await c.close();
      await s.stop();  // a clean stop flushes: the old log is no longer kept
      await s.start();
      c = await Client.connect({ port: s.port, key: s.key('service') });
      const sub = c.subscribe({}, { fromSequence: 1n });
      await assert.rejects(async () => { for await (const e of sub) assert.fail(`unexpected ${e.type}`); },
        (e) => e instanceof AgentstoreError && e.code === 'out_of_range' && e.status === 10 && /oldest kept is/.test(e.message));
    } finally {
      await c.close();
      await s.dispose();
    }
  });

  test('resumes by itself across a server restart and a dropped connection: nothing lost, nothing twice', async () => {
    const s = await new Server().start();
    const writer = await Client.connect({ port: s.port, key: s.key('service'), backoff: { minMs: 20, maxMs: 200 } });
    const reader = await Client.connect({ port: s.port, key: s.key('service'), backoff: { minMs: 20, maxMs: 200 } });
    try {
      const u = await writer.userCreate({ email: 'resume@example.com' });
      const chat = await writer.chatCreate({ user_id: u.id });
      const sub = reader.subscribe({ types: ['messages'] }, { backoff: { minMs: 20, maxMs: 200 } });
      assert.equal(typeof await sub.ready, 'bigint');
      const written = [];
      const append = async (n) => {
        for (let i = 0; i < n; i++) {
          const text = `t${written.length}`;
          await writer.messageAppend({ chat_id: chat.id, role: 'user', parts: [{ text }] });
          written.push(text);
        }
      };
      await append(30);
      const got = await take(sub, 30);
      // Restart: writes acknowledged before the stop and after the start all arrive.
      await append(20);
      await s.stop();
      await s.start();
      await append(25);
      got.push(...await take(sub, 45, 30000));
      // kill -9 with the reader's connection in use, then more writes.
      await append(10);
      await s.stop('SIGKILL');
      await s.start();
      await append(15);
      got.push(...await take(sub, 25, 30000));
      assert.deepEqual(got.map((e) => e.record.parts[0].text), written);
      for (let i = 1; i < got.length; i++) assert.ok(got[i].sequence > got[i - 1].sequence);
      assert.ok(sub.resumes >= 2, `resumed ${sub.resumes} times`);
      assert.ok(await quiet(sub, 300), 'no duplicates follow');
      await sub.close();
    } finally {
      await writer.close();
      await reader.close();
      await s.dispose();
    }
  });

  test('a consumer slower than the feed keeps bounded memory and still gets every change once', async () => {
    const u = await svc.userCreate({ email: 'slow@example.com' });
    const chat = await svc.chatCreate({ user_id: u.id });
    const sub = svc.subscribe({ types: ['messages'], user: u.id }, { maxBuffered: 50 });
    const n = 400;
    const writes = [];
    for (let i = 0; i < n; i++) writes.push(svc.messageAppend({ chat_id: chat.id, role: 'user', parts: [{ text: `s${i}` }] }));
    await Promise.all(writes);
    const got = [];
    for await (const e of sub) {
      got.push(e.record.parts[0].text);
      if (got.length % 50 === 0) await new Promise((r) => setTimeout(r, 20));
      if (got.length === n) break;
    }
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => `s${i}`));
    assert.ok(sub.resumes >= 1, 'it paused and resumed at least once');
  });

  test('a subscription from a sequence replays what came after it, then follows', async () => {
    const u = await svc.userCreate({ email: 'replay@example.com' });
    const first = await svc.memoryUpsert({ user_id: u.id, memory_key: 'a', memory_value: {}, embedding: [1, 0, 0, 0] });
    const live = svc.subscribe({ types: ['user_memory'], user: u.id });
    await svc.memoryUpsert({ user_id: u.id, memory_key: 'b', memory_value: {}, embedding: [0, 1, 0, 0] });
    const [b] = await take(live, 1);
    await live.close();
    await svc.memoryUpsert({ user_id: u.id, memory_key: 'c', memory_value: {}, embedding: [0, 0, 1, 0] });
    // From before b: b again, then c, then what follows.
    const again = svc.subscribe({ types: ['user_memory'], user: u.id }, { fromSequence: b.sequence - 1n });
    await svc.memoryUpsert({ user_id: u.id, memory_key: 'd', memory_value: {}, embedding: [0, 0, 0, 1] });
    const events = await take(again, 3);
    assert.deepEqual(events.map((e) => e.record.memory_key), ['b', 'c', 'd']);
    assert.equal(events[0].sequence, b.sequence);
    assert.ok(first.id);
    await again.close();
  });
});
