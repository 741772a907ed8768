// The connection's behaviour against a real agentstored: pipelining, error codes, bad
// input, a user key's confinement, timeouts and aborts, reconnect after a restart, pool.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { AgentstoreError, Client, ErrorCodeNames, Pool } from '../dist/index.js';
import { Server } from './server.mjs';

const code = (c) => (e) => {
  assert.ok(e instanceof AgentstoreError, `not an AgentstoreError: ${e}`);
  assert.equal(e.code, c, e.message);
  return true;
};

describe('one server', () => {
  let server;
  let svc;
  let ada;
  let bob;
  let agent;

  before(async () => {
    server = await new Server().start();
    svc = await Client.connect({ port: server.port, key: server.key('service') });
    ada = await svc.userCreate({ email: 'ada@example.com' });
    bob = await svc.userCreate({ email: 'bob@example.com' });
    agent = await svc.agentCreate({ name: 'Writer', is_public: true });
  });
  after(async () => {
    await svc?.close();
    await server?.dispose();
  });

  test('1000 pipelined calls on one connection are answered, each to its caller, in order', async () => {
    const chat = await svc.chatCreate({ user_id: ada.id, agent_id: agent.id });
    const calls = [];
    for (let i = 0; i < 1000; i++) {
      calls.push(i % 2 ? svc.userGet({ id: i % 4 === 1 ? ada.id : bob.id })
        : svc.messageAppend({ chat_id: chat.id, role: 'user', parts: [{ text: `m${i}` }] }));
    }
    assert.equal(svc.pendingCalls, 1000);
    const results = await Promise.all(calls);
    for (let i = 0; i < 1000; i++) {
      if (i % 2) assert.equal(results[i].id, i % 4 === 1 ? ada.id : bob.id);
      else assert.deepEqual(results[i].message.parts, [{ text: `m${i}` }]);
    }
    // the appends were applied in the order issued
    const page = await svc.messageList({ owner: chat.id, limit: 1000, from_end: false });
    assert.deepEqual(page.items.map((m) => m.parts[0].text),
      Array.from({ length: 500 }, (_, k) => `m${2 * k}`));
  });

  test('each error code the server can be made to answer', async () => {
    const missing = '01890000-0000-7000-8000-00000000dead';
    await assert.rejects(svc.userGet({ id: missing }), (e) => code('not_found')(e) && e.status === 1);
    await assert.rejects(svc.userCreate({ email: 'ada@example.com' }), (e) => code('already_exists')(e) && e.status === 3);
    await assert.rejects(svc.rateAgent({ user: ada.id, agent: agent.id, rating: 9 }), (e) => code('invalid_argument')(e) && e.status === 2);
    const user = await Client.connect({ port: server.port, key: (await svc.keyCreate({ role: 'user', user_id: ada.id })).secret });
    try {
      await assert.rejects(user.userList({}), (e) => code('permission_denied')(e) && e.status === 4);
    } finally {
      await user.close();
    }
    // io_error: a checkpoint the server cannot write (the parent exists, so the request is
    // valid; /proc refuses the new directory)
    await assert.rejects(svc.backupCreate({ dir: '/proc/agentstore-backup' }),
      (e) => code('io_error')(e) && e.status === 8);
    // invalid_argument for a backup whose parent directory is missing
    await assert.rejects(svc.backupCreate({ dir: '/proc/no/such/dir' }),
      (e) => code('invalid_argument')(e) && e.status === 2);
    // unavailable (6), corruption (7) and not_implemented (9) cannot be provoked on a healthy
    // server whose every operation is built; their names come from protocol.fbs like the rest.
    assert.deepEqual([6, 7, 9].map((n) => ErrorCodeNames[n]), ['unavailable', 'corruption', 'not_implemented']);
    // resource_exhausted: a second server allowing one connection refuses the next one
    const small = await new Server(['--max-connections', '1']).start();
    try {
      const first = await Client.connect({ port: small.port, key: small.key('service') });
      await assert.rejects(Client.connect({ port: small.port, key: small.key('service') }),
        (e) => code('resource_exhausted')(e) && e.status === 5);
      await first.close();
    } finally {
      await small.dispose();
    }
  });

  test('bad input is refused with the server\'s message and changes nothing', async () => {
    const before = await svc.userGet({ id: ada.id });
    await assert.rejects(svc.userUpdate({ id: ada.id, patch: { no_such_field: 1 } }),
      (e) => code('invalid_argument')(e) && /unknown field 'no_such_field'/.test(e.message));
    await assert.rejects(svc.userUpdate({ id: ada.id, patch: { preferences: [1, 2] } }),
      (e) => code('invalid_argument')(e) && e.status === 2 && /preferences/.test(e.message));
    await assert.rejects(svc.memoryUpsert({ user_id: ada.id, memory_key: 'k', embedding: [1, 2] }),
      (e) => code('invalid_argument')(e) && e.status === 2 && /dimension/.test(e.message));
    await assert.rejects(svc.messageAppend({ chat_id: ada.id, role: 'user', parts: [] }),
      (e) => e instanceof AgentstoreError && e.status !== undefined);
    assert.deepEqual(await svc.userGet({ id: ada.id }), before);
    // what the client itself can tell is wrong never reaches the wire
    await assert.rejects(svc.userGet({ id: 'not-a-uuid' }), (e) => code('invalid_argument')(e) && e.status === undefined);
    await assert.rejects(svc.userCreate({ email: 'x@y.z', bogus: 1 }), code('invalid_argument'));
    await assert.rejects(svc.chatCreate({ user_id: ada.id, visibility: 'sideways' }), code('invalid_argument'));
    await assert.rejects(svc.messageAppend({ chat_id: ada.id, input_tokens: 1.5 }), code('invalid_argument'));
    await assert.rejects(svc.agentCreate({ name: 'x', system_prompt: 'p'.repeat(17 << 20) }),
      (e) => code('invalid_argument')(e) && /maxRequestBytes/.test(e.message));
    assert.equal((await svc.userGet({ id: ada.id })).id, ada.id);  // the connection is fine
  });

  test('a user key is confined to its own records', async () => {
    const { secret } = await svc.keyCreate({ role: 'user', user_id: ada.id });
    const asAda = await Client.connect({ port: server.port, key: secret });
    try {
      assert.equal(asAda.role, 'user');
      assert.equal(asAda.userId, ada.id);
      assert.equal((await asAda.userGet({ id: ada.id })).email, 'ada@example.com');
      await assert.rejects(asAda.userGet({ id: bob.id }), code('not_found'));  // invisible = missing
      const bobChat = await svc.chatCreate({ user_id: bob.id, agent_id: agent.id, title: 'secret' });
      await assert.rejects(asAda.chatGet({ id: bobChat.id }), code('not_found'));
      const listed = await asAda.chatList({ owner: bob.id }).catch((e) => e);
      assert.ok(listed instanceof AgentstoreError || listed.items.length === 0, 'bob\'s chats listed to ada');
      await assert.rejects(asAda.messageAppend({ chat_id: bobChat.id, role: 'user', parts: [{ text: 'x' }] }),
        (e) => e.code === 'not_found' || e.code === 'permission_denied');
      await assert.rejects(asAda.userUpdate({ id: bob.id, patch: { full_name: 'x' } }),
        (e) => e.code === 'not_found' || e.code === 'permission_denied');
      await assert.rejects(asAda.userGet({ id: ada.id }, { actAs: bob.id }), code('permission_denied'));
      const own = await asAda.chatCreate({ user_id: ada.id, agent_id: agent.id });
      assert.equal(own.user_id, ada.id);
      // a service key acting as a user gets that user's rules
      await assert.rejects(svc.chatGet({ id: bobChat.id }, { actAs: ada.id }), code('not_found'));
      assert.equal((await svc.chatGet({ id: own.id }, { actAs: ada.id })).id, own.id);
    } finally {
      await asAda.close();
    }
  });

  test('per-call timeout and AbortSignal', async () => {
    await server.pause();
    try {
      await assert.rejects(svc.userGet({ id: ada.id }, { timeoutMs: 100 }), code('timeout'));
      const ac = new AbortController();
      const p = svc.userGet({ id: ada.id }, { signal: ac.signal, timeoutMs: 0 });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(p, code('aborted'));
      await assert.rejects(svc.userGet({ id: ada.id }, { signal: AbortSignal.abort() }), code('aborted'));
    } finally {
      server.resume();
    }
    // late answers to abandoned calls are dropped; the connection keeps working
    assert.equal((await svc.userGet({ id: ada.id })).id, ada.id);
    assert.equal(svc.pendingCalls, 0);
  });

  test('the default timeout: one sweep per connection fails calls past it, a little late at most', async () => {
    const c = await Client.connect({ port: server.port, key: server.key('service'), timeoutMs: 320 });
    try {
      await server.pause();
      try {
        const t0 = performance.now();
        const calls = [c.userGet({ id: ada.id }), c.userGet({ id: bob.id }), c.status()];
        for (const p of calls) await assert.rejects(p, (e) => code('timeout')(e) && /within 320 ms/.test(e.message));
        const waited = performance.now() - t0;
        assert.ok(waited >= 320, `failed after ${waited} ms`);
        assert.ok(waited < 320 + 1000, `failed only after ${waited} ms`);  // sweep: 10 ms; slack for a loaded machine
      } finally {
        server.resume();
      }
      assert.equal((await c.userGet({ id: ada.id })).id, ada.id);
      assert.equal(c.pendingCalls, 0);
    } finally {
      await c.close();
    }
  });

  test('answers split anywhere (down to single bytes) or longer than one read are read whole', async () => {
    // A proxy that hands the server's bytes on in pieces of 1-7 bytes, each its own write.
    const sockets = new Set();
    const proxy = net.createServer((down) => {
      const up = net.connect(server.port, '127.0.0.1');
      sockets.add(down).add(up);
      down.pipe(up);
      let queue = Promise.resolve();
      let step = 0;
      up.on('data', (chunk) => {
        queue = queue.then(async () => {
          for (let i = 0; i < chunk.length;) {
            const n = 1 + (step++ % 7);
            down.write(chunk.subarray(i, i + n));
            i += n;
            await new Promise((r) => setImmediate(r));
          }
        });
      });
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const c = await Client.connect({ port: proxy.address().port, key: server.key('service'), reconnect: false });
    try {
      const got = await Promise.all([c.userGet({ id: ada.id }), c.userGet({ id: bob.id }), c.status(),
        c.userGet({ id: ada.id })]);
      assert.deepEqual(got.map((u) => u.id), [ada.id, bob.id, undefined, ada.id]);
      assert.deepEqual(got[0], await svc.userGet({ id: ada.id }));
    } finally {
      await c.close();
      for (const s of sockets) s.destroy();
      proxy.close();
    }
    // one answer of ~400 KB: several reads of the 64 KB receive buffer
    const chat = await svc.chatCreate({ user_id: bob.id, agent_id: agent.id });
    const parts = Array.from({ length: 8 }, (_, i) => [{ text: `${i}` + 'é'.repeat(10000) + 'x'.repeat(30000) }]);
    await Promise.all(parts.map((p) => svc.messageAppend({ chat_id: chat.id, role: 'user', parts: p })));
    const page = await svc.messageList({ owner: chat.id, limit: 8, from_end: false });
    assert.deepEqual(page.items.map((m) => m.parts).sort((a, b) => a[0].text[0] - b[0].text[0]), parts);
  });

  test('calls made in one tick share a pooled connection, up to `pipeline` of them', async () => {
    for (const [pipeline, expected] of [[4, [4, 4, 2]], [1, [4, 3, 3]]]) {
      const pool = await Pool.connect({ port: server.port, key: server.key('service'), size: 3, pipeline });
      try {
        const before = pool.clients.map((c) => c.sent);
        const got = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.userGet({ id: i % 2 ? ada.id : bob.id })));
        assert.deepEqual(got.map((u) => u.id), Array.from({ length: 10 }, (_, i) => (i % 2 ? ada.id : bob.id)));
        assert.deepEqual(pool.clients.map((c, i) => c.sent - before[i]), expected, `pipeline ${pipeline}`);
      } finally {
        await pool.close();
      }
    }
  });

  test('a pool spreads calls over its connections', async () => {
    const pool = await Pool.connect({ port: server.port, key: server.key('service'), size: 3 });
    try {
      const got = await Promise.all(Array.from({ length: 300 }, () => pool.userGet({ id: ada.id })));
      assert.ok(got.every((u) => u.id === ada.id));
      assert.equal(pool.clients.length, 3);
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.userGet({ id: ada.id }), code('closed'));
  });
});

test('reconnect with re-authentication after a server restart', async () => {
  const server = await new Server().start();
  const c = await Client.connect({ port: server.port, key: server.key('service'), backoff: { minMs: 20, maxMs: 200 } });
  try {
    const u = await c.userCreate({ email: 'kept@example.com' });
    await server.stop();
    // a call issued while the server is down waits for the reconnect
    const during = c.userGet({ id: u.id }, { timeoutMs: 20000 });
    await new Promise((r) => setTimeout(r, 300));
    await server.start();
    assert.equal((await during).email, 'kept@example.com');
    assert.ok(c.reconnects >= 1);
    assert.equal((await c.userGet({ key: 'kept@example.com' })).id, u.id);
    // a call in flight when the connection drops fails as disconnected
    await server.pause();
    const inflight = c.userList({ limit: 10 }, { timeoutMs: 20000 });
    await new Promise((r) => setTimeout(r, 50));
    process.kill(server.proc.pid, 'SIGKILL');
    await assert.rejects(inflight, code('disconnected'));
    server.proc = null;
    await server.start();
    assert.equal((await c.userGet({ id: u.id }, { timeoutMs: 20000 })).id, u.id);
  } finally {
    await c.close();
    await server.dispose();
  }
});

test('a refused key fails connect, and a closed client refuses calls', async () => {
  const server = await new Server().start();
  try {
    await assert.rejects(Client.connect({ port: server.port, key: 'ask_00_00' }), code('permission_denied'));
    const c = await Client.connect({ port: server.port, key: server.key('admin') });
    await c.close();
    await assert.rejects(c.status(), code('closed'));
  } finally {
    await server.dispose();
  }
});
