// Node.js app-server benchmark (issue 17): get_user and the chat turn from Node through
// the TypeScript client against agentstored, and the same work through node-postgres
// against PostgreSQL. The PostgreSQL schema and statements are read from the C++
// harness (benchmarks/harness/postgres_driver.cc) so both benchmarks do the same SQL.
// Run through benchmarks/node/run.sh, which starts both servers.
//
//   node bench.mjs --system agentstore|postgres --port N [--key K] [--connections 8]
//        [--workers 8] [--seconds 10] [--warmup 2] [--users 1000]
//        [--workloads get_user,chat_turn,chat_turn_parallel] [--server-pid PID]
//        [--dist DIR] [--pipeline N]
// Each result line also gives the CPU this Node process used over the measured seconds
// (node_cpu: cores, node_us_per_op) and, with --server-pid, the server's (that process
// and its children, e.g. PostgreSQL's backends: server_cpu, server_us_per_op): which side
// bounds the rate on this machine. --dist: another build of the TypeScript client (A/B);
// --pipeline: the Pool's `pipeline` option (1: no same-tick calls share a connection).
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const tsdir = path.join(repo, 'clients/typescript');
const require = createRequire(path.join(tsdir, 'package.json'));

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const system = args.system;
const port = Number(args.port);
const connections = Number(args.connections ?? 8);
const workers = Number(args.workers ?? connections);
const seconds = Number(args.seconds ?? 10);
const warmup = Number(args.warmup ?? 2);
const nUsers = Number(args.users ?? 1000);
const workloads = (args.workloads ?? 'get_user,chat_turn,chat_turn_parallel').split(',');
const serverPid = args['server-pid'] ? Number(args['server-pid']) : null;
const dist = path.resolve(args.dist ?? path.join(tsdir, 'dist'));
const DIM = 384;
const RUN = Date.now().toString(36);  // emails unique per run: several runs may share a server
const MEMS = 20;
const MSGS = 20;

// Deterministic pseudo-random numbers (the same dataset for both systems).
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
const vector = () => {
  const v = new Float32Array(DIM);
  let n = 0;
  for (let i = 0; i < DIM; i++) { v[i] = rnd() - 0.5; n += v[i] * v[i]; }
  n = Math.sqrt(n);
  for (let i = 0; i < DIM; i++) v[i] /= n;
  return v;
};
const uuid = () => randomUUID();
const QUERIES = Array.from({ length: 64 }, vector);

// ---- the PostgreSQL side: schema and statements as the C++ harness has them ----
function harnessSql() {
  const src = fs.readFileSync(path.join(repo, 'benchmarks/harness/postgres_driver.cc'), 'utf8');
  const schema = /R"SQL\(([\s\S]*?)\)SQL"/.exec(src)[1];
  const stmts = {};
  const re = /\{Op::k\w+, "(\w+)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}/g;
  let m;
  while ((m = re.exec(src)) !== null)
    stmts[m[1]] = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1].replace(/\\"/g, '"')).join('');
  return { schema, stmts };
}

async function setupPostgres() {
  const pg = require('pg');
  const pool = new pg.Pool({ host: '127.0.0.1', port, user: args['pg-user'] ?? 'postgres',
    database: args['pg-database'] ?? 'bench', max: connections });
  const { schema, stmts } = harnessSql();
  await pool.query(schema);
  const tenant = uuid();
  const agent = uuid();
  await pool.query('INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $3)', [tenant, 'Acme', 'acme']);
  await pool.query("INSERT INTO agents (id, name, type, is_public) VALUES ($1, 'Writer', 'chat', true)", [agent]);
  await pool.query(`INSERT INTO quota_tracking (tenant_id, quota_type, quota_limit, period_start, period_end)
    VALUES ($1, 'tokens', 1000000000000, date_trunc('month', now()), date_trunc('month', now()) + interval '1 month'),
           ($1, 'api_calls', 1000000000000, date_trunc('month', now()), date_trunc('month', now()) + interval '1 month')`, [tenant]);
  const users = dataset(tenant, agent);
  for (const u of users) {
    await pool.query('INSERT INTO user_profiles (id, tenant_id, email, full_name, preferences) VALUES ($1,$2,$3,$4,$5)',
      [u.id, tenant, u.email, u.name, JSON.stringify(u.preferences)]);
    await pool.query('INSERT INTO user_agents (id, user_id, agent_id) VALUES ($1, $2, $3)', [uuid(), u.id, agent]);
    await pool.query("INSERT INTO chat (id, user_id, agent_id, title) VALUES ($1, $2, $3, 'chat')", [u.chat, u.id, agent]);
    const msgs = u.messages.map((m, i) => `('${uuid()}', '${u.chat}', '${m.role}', '${JSON.stringify(m.parts)}', now() + interval '${i} ms')`);
    await pool.query(`INSERT INTO "Message_v2" (id, chatId, role, parts, createdAt) VALUES ${msgs.join(',')}`);
    const mems = u.memories.map((m) => `('${uuid()}', '${u.id}', 'fact', '${m.key}', '${JSON.stringify(m.value)}', 0.5, '{${Array.from(m.vector).join(',')}}')`);
    await pool.query(`INSERT INTO user_memory (id, user_id, memory_type, memory_key, memory_value, importance_score, embedding) VALUES ${mems.join(',')}`);
  }
  await pool.query('ANALYZE');
  const q = (name, params) => pool.query({ name, text: stmts[name], values: params });
  const vec = (v) => `{${Array.from(v).join(',')}}`;
  let seq = 0;
  return {
    users,
    close: () => pool.end(),
    get_user: async (u) => {
      const r = await q('get_user', [u.id]);
      if (r.rows.length !== 1) throw new Error('get_user: no row');
    },
    chat_turn: async (u, qv) => {
      const s = seq++;
      await q('rate_limit_check', [u.id, 'chat']);
      await q('get_user', [u.id]);
      await q('get_user_agent', [u.id, agent]);
      await q('memory_top5_touch', [u.id, vec(qv)]);
      await q('last_20_messages', [u.chat]);
      await q('append_message', [u.chat, 'user', '[{"type":"text","text":"hello"}]', '', 120, 0, 0]);
      await q('append_message', [u.chat, 'assistant', '[{"type":"text","text":"hi there"}]', 'gpt-4o', 300, 120, 2100]);
      await q('track_agent_usage', [u.id, agent, u.chat, tenant, 300, 120, 900, 1200, 'gpt-4o', 'openai', 'chat', 300 + (s % 5000)]);
    },
    // The README's form: independent steps together (here: on several pooled connections).
    chat_turn_parallel: async (u, qv) => {
      const s = seq++;
      await q('rate_limit_check', [u.id, 'chat']);
      await Promise.all([q('get_user', [u.id]), q('get_user_agent', [u.id, agent]),
        q('memory_top5_touch', [u.id, vec(qv)]), q('last_20_messages', [u.chat])]);
      await Promise.all([
        q('append_message', [u.chat, 'user', '[{"type":"text","text":"hello"}]', '', 120, 0, 0]),
        q('append_message', [u.chat, 'assistant', '[{"type":"text","text":"hi there"}]', 'gpt-4o', 300, 120, 2100])]);
      await q('track_agent_usage', [u.id, agent, u.chat, tenant, 300, 120, 900, 1200, 'gpt-4o', 'openai', 'chat', 300 + (s % 5000)]);
    },
  };
}

function dataset(tenant, agent) {
  seed = 42;
  return Array.from({ length: nUsers }, (_, i) => ({
    id: uuid(), email: `user${i}.${RUN}@example.com`, name: `User ${i}`, chat: uuid(),
    preferences: { theme: i % 2 ? 'dark' : 'light', language: 'en' },
    messages: Array.from({ length: MSGS }, (_, k) => ({ role: k % 2 ? 'assistant' : 'user',
      parts: [{ type: 'text', text: `message ${k} of user ${i}` }] })),
    memories: Array.from({ length: MEMS }, (_, k) => ({ key: `m${k}`, value: { content: `fact ${k} about user ${i}` }, vector: vector() })),
  }));
}

// ---- the agentstore side: the same records through the TypeScript client ----
async function setupAgentstore() {
  const { Pool, nowMicros } = await import(path.join(dist, 'index.js'));
  const db = await Pool.connect({ port, key: args.key, size: connections,
    ...(args.pipeline ? { pipeline: Number(args.pipeline) } : {}) });
  const tenant = (await db.tenantCreate({ name: 'Acme', slug: `acme-${Date.now()}` })).id;
  const agent = (await db.agentCreate({ name: 'Writer', type: 'chat', is_public: true })).id;
  const users = dataset(tenant, agent);
  for (let i = 0; i < users.length; i += 50) {
    await Promise.all(users.slice(i, i + 50).map(async (u) => {
      const created = await db.userCreate({ id: u.id, tenant_id: tenant, email: u.email, full_name: u.name, preferences: u.preferences });
      u.id = created.id;
      await db.userAgentCreate({ user_id: u.id, agent_id: agent });
      u.chat = (await db.chatCreate({ user_id: u.id, agent_id: agent, title: 'chat' })).id;
      for (const m of u.messages) await db.messageAppend({ chat_id: u.chat, role: m.role, parts: m.parts });
      await Promise.all(u.memories.map((m) => db.memoryUpsert({ user_id: u.id, memory_key: m.key,
        memory_type: 'fact', memory_value: m.value, embedding: m.vector })));
    }));
  }
  let seq = 0;
  return {
    users,
    close: () => db.close(),
    // Calls each pooled connection has carried (the pool may join same-tick calls on one).
    sentPerConnection: () => db.clients.map((c) => c.sent ?? 0),
    get_user: async (u) => {
      await db.userGet({ id: u.id });
    },
    chat_turn: async (u, qv) => {
      const s = seq++;
      const started = nowMicros();
      const lim = await db.limitCheck({ user: u.id, agent });
      if (!lim.allowed) throw new Error('rate limited');
      await db.userGet({ id: u.id });
      await db.userAgentGet({ a: u.id, b: agent });
      const hits = await db.memorySearch({ user: u.id, vector: qv, k: 5, touch: true });
      if (hits.length !== 5) throw new Error(`memory_search: ${hits.length} hits`);
      await db.messageList({ owner: u.chat, limit: 20 });
      await db.messageAppend({ chat_id: u.chat, role: 'user', parts: [{ type: 'text', text: 'hello' }], input_tokens: 120n });
      await db.messageAppend({ chat_id: u.chat, role: 'assistant', parts: [{ type: 'text', text: 'hi there' }],
        model_used: 'gpt-4o', input_tokens: 300n, output_tokens: 120n, cost: 2100n });
      await db.trackAgentUsage({ call: { user_id: u.id, agent_id: agent, chat_id: u.chat, provider: 'openai',
        model: 'gpt-4o', input_tokens: 300n, output_tokens: 120n, input_cost: 900n, output_cost: 1200n,
        request_ts: started - BigInt(300 + (s % 5000)) * 1000n, response_ts: started }, messages: 2 });
    },
    // The README's form: independent steps together (pipelined on one connection).
    chat_turn_parallel: async (u, qv) => {
      const s = seq++;
      const started = nowMicros();
      const lim = await db.limitCheck({ user: u.id, agent });
      if (!lim.allowed) throw new Error('rate limited');
      const [, , hits] = await Promise.all([db.userGet({ id: u.id }), db.userAgentGet({ a: u.id, b: agent }),
        db.memorySearch({ user: u.id, vector: qv, k: 5, touch: true }), db.messageList({ owner: u.chat, limit: 20 })]);
      if (hits.length !== 5) throw new Error(`memory_search: ${hits.length} hits`);
      await Promise.all([
        db.messageAppend({ chat_id: u.chat, role: 'user', parts: [{ type: 'text', text: 'hello' }], input_tokens: 120n }),
        db.messageAppend({ chat_id: u.chat, role: 'assistant', parts: [{ type: 'text', text: 'hi there' }],
          model_used: 'gpt-4o', input_tokens: 300n, output_tokens: 120n, cost: 2100n })]);
      await db.trackAgentUsage({ call: { user_id: u.id, agent_id: agent, chat_id: u.chat, provider: 'openai',
        model: 'gpt-4o', input_tokens: 300n, output_tokens: 120n, input_cost: 900n, output_cost: 1200n,
        request_ts: started - BigInt(300 + (s % 5000)) * 1000n, response_ts: started }, messages: 2 });
    },
  };
}

// CPU seconds used so far by a process and its children (Linux /proc; null elsewhere).
const TICK = 100;  // USER_HZ: clock ticks per second in /proc/<pid>/stat on Linux
function statOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');  // fields from 3 (state) on
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICK };
  } catch {
    return null;
  }
}
function treeCpu(pid) {
  if (pid === null) return null;
  const self = statOf(pid);
  if (!self) return null;
  let cpu = self.cpu;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = statOf(e);
    if (st && st.ppid === pid) cpu += st.cpu;
  }
  return cpu;
}

// ---- the closed loop: `workers` callers, each one operation after another ----
async function measure(sys, name) {
  const fn = sys[name];
  const lat = [];
  let stop = false;
  let recording = false;
  const worker = async (w) => {
    let i = w;
    while (!stop) {
      const u = sys.users[(i * 7919) % sys.users.length];
      const t0 = process.hrtime.bigint();
      await fn(u, QUERIES[i % QUERIES.length]);
      if (recording) lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      i += workers;
    }
  };
  const all = Array.from({ length: workers }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, warmup * 1000));
  const sent0 = sys.sentPerConnection?.();
  const server0 = treeCpu(serverPid);
  const cpu0 = process.cpuUsage();
  recording = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  recording = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const server1 = treeCpu(serverPid);
  const nodeCpu = (cpu.user + cpu.system) / 1e6;
  const sent1 = sys.sentPerConnection?.();
  stop = true;
  await Promise.all(all);
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
  return { system, workload: name, connections, workers, ops: lat.length, ops_per_s: lat.length / elapsed,
    mean_us: lat.reduce((a, b) => a + b, 0) / lat.length, p50_us: pct(0.5), p99_us: pct(0.99),
    node_cpu: nodeCpu / elapsed, node_us_per_op: (nodeCpu * 1e6) / lat.length,
    ...(server0 !== null && server1 !== null ? { server_cpu: (server1 - server0) / elapsed,
      server_us_per_op: ((server1 - server0) * 1e6) / lat.length } : {}),
    ...(sent0 ? { calls_per_connection: sent1.map((n, i) => n - sent0[i]) } : {}) };
}

const sys = system === 'postgres' ? await setupPostgres() : await setupAgentstore();
for (const w of workloads) console.log(JSON.stringify(await measure(sys, w)));
await sys.close();
