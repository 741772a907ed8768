// Several connections behind the same typed methods. Calls made in the same tick travel
// together on one connection (one write; the server answers them with one write, read
// once), up to `pipeline` pending on it; any other call goes to the connection with the
// fewest calls pending. For app servers that want more than one socket's worth of
// concurrency; one Client already pipelines any number of calls.
import { Client } from './client.js';
import { Operations } from './generated/ops.js';
import type { OperationInfo } from './generated/ops.js';
import type { CallOptions, PoolOptions } from './options.js';
import type { Subscription, SubscribeFilter, SubscribeOptions } from './feed.js';

export class Pool extends Operations {
  static async connect(options: PoolOptions): Promise<Pool> {
    const n = options.size ?? 4;
    const settled = await Promise.allSettled(Array.from({ length: n }, () => Client.connect(options)));
    const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
    const ok = settled.filter((s): s is PromiseFulfilledResult<Client> => s.status === 'fulfilled').map((s) => s.value);
    if (failed) {
      await Promise.all(ok.map((c) => c.close()));
      throw failed.reason;
    }
    return new Pool(ok, Math.max(1, options.pipeline ?? 16));
  }

  private constructor(readonly clients: Client[], private readonly pipeline: number) {
    super();
  }

  protected invoke(op: OperationInfo, args: unknown, opts?: CallOptions): Promise<unknown> {
    let best = this.clients[0];
    for (const c of this.clients) {
      if (c.writeQueued && c.pendingCalls < this.pipeline) {
        best = c;
        break;
      }
      if (c.pendingCalls < best.pendingCalls) best = c;
    }
    return (best as unknown as { invoke: Pool['invoke'] }).invoke(op, args, opts);
  }

  /** Client.subscribe() on the least busy connection. */
  subscribe(filter: SubscribeFilter = {}, opts: SubscribeOptions = {}): Subscription {
    let best = this.clients[0];
    for (const c of this.clients) if (c.pendingCalls < best.pendingCalls) best = c;
    return best.subscribe(filter, opts);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}
