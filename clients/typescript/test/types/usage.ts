// Compiled (not run) by types.test.mjs against dist/*.d.ts: the declarations type the
// README's usage, and misuse fails to compile (the @ts-expect-error lines).
import { AgentstoreError, Client, Pool, toDate, type User, type Page, type Message } from '@agentstore/client';

export async function usage(db: Client, pool: Pool): Promise<void> {
  const u: User = await db.userGet({ id: 'x' });
  const email: string | null = u.email;
  const created: Date = toDate(u.created_at);
  const prefs = u.preferences;  // Json
  const page: Page<Message> = await db.messageList({ owner: u.id!, limit: 20 });
  const hits = await pool.memorySearch({ user: u.id!, vector: new Float32Array(4), k: 5 });
  const v: Float32Array | null = hits[0].memory.embedding;
  const { message, chat } = await db.messageAppend({ chat_id: 'c', role: 'assistant', parts: [{ text: 'hi' }] });
  const total: bigint = chat.total_cost;
  const role: 'user' | 'assistant' | 'system' | 'tool' = message.role;
  const n: bigint = await db.memoryPrune({ user: 'u', keep: 3 });
  try {
    await db.status({ timeoutMs: 100, signal: AbortSignal.timeout(50) });
  } catch (e) {
    if (e instanceof AgentstoreError && e.code === 'timeout') return;
  }
  // @ts-expect-error: unknown enum name
  await db.messageAppend({ chat_id: 'c', role: 'robot' });
  // @ts-expect-error: a user has no field `nickname`
  await db.userCreate({ email: 'a@b.c', nickname: 'x' });
  // @ts-expect-error: user_get takes IdArgs or KeyArgs
  await db.userGet({ owner: 'x' });
  // Change events narrow by type: a collection's record is JSON, a built-in one typed.
  for await (const ev of db.subscribe({ types: ['messages', 'collections'], collections: ['goals'] })) {
    if (ev.type === 'collection') {
      const name: string = ev.collection;
      const rec: Record<string, unknown> | null = ev.record;
      const key: Record<string, unknown> = ev.record_key;
      void [name, rec, key];
    } else if (ev.type === 'messages') {
      const text: string | null | undefined = ev.record?.role;
      void text;
    }
    break;
  }
  // @ts-expect-error: collections are named by string
  db.subscribe({ collections: [1] });
  void [email, created, prefs, page, v, total, role, n];
}
