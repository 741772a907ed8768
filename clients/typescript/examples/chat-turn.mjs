// One chat turn of an agent app, as an Express or Next.js route handler would run it:
// rate-limit check -> user -> user_agent -> memory top-5 -> last 20 messages ->
// append two messages -> track_agent_usage. The four reads go out together on one
// connection (pipelined); the README shows it inside a route handler. Used by the
// package's install test and by benchmarks/node (the same code is measured).
import { nowMicros } from '@agentstore/client';

export async function chatTurn(db, { userId, agentId, chatId, text, embedding, reply }) {
  const limit = await db.limitCheck({ user: userId, agent: agentId });
  if (!limit.allowed) return { status: 429, retryAtMicros: limit.reset_at };

  const started = nowMicros();
  const [user, userAgent, memories, history] = await Promise.all([
    db.userGet({ id: userId }),
    db.userAgentGet({ a: userId, b: agentId }),
    db.memorySearch({ user: userId, vector: embedding, k: 5 }),
    db.messageList({ owner: chatId, limit: 20 }),
  ]);

  // ... call the model with user.preferences, userAgent.custom_system_prompt,
  // memories[i].memory.memory_value and history.items ...
  const answer = reply ?? `echo: ${text}`;

  const [asked, answered] = await Promise.all([
    db.messageAppend({ chat_id: chatId, role: 'user', parts: [{ type: 'text', text }] }),
    db.messageAppend({ chat_id: chatId, role: 'assistant', parts: [{ type: 'text', text: answer }],
      model_used: 'gpt-4o', input_tokens: 300n, output_tokens: 120n, cost: 2100n }),
  ]);
  const usage = await db.trackAgentUsage({
    call: { user_id: userId, agent_id: agentId, chat_id: chatId, provider: 'openai', model: 'gpt-4o',
      input_tokens: 300n, output_tokens: 120n, input_cost: 900n, output_cost: 1200n,
      request_ts: started, response_ts: nowMicros() },
    messages: 2,
  });
  return {
    status: 200, user, userAgent, memories, history: history.items,
    messages: [asked.message, answered.message], usage,
  };
}
