// The change feed (docs/protocol.md, "Change feed") as an async iterator: Client.subscribe()
// returns a Subscription that yields typed change events in commit order and resumes by
// itself, from the last sequence it received, after a dropped connection, a server
// restart or a server-side cut-off, so the caller sees every change once.
import { AgentstoreError } from './errors.js';
import type { Change, ChangeOp, FeedPosition, RecordsByType, RecordTypeName, SubscribeArgsInput } from './generated/codec.js';
import { recordTypes } from './generated/codec.js';

/** Change.type of a change to a collection's record (every collection shares it). */
export const COLLECTION_RECORD_TYPE = 113;

/**
 * What to watch; unset is any. A user key always sees only what its user may read (its own
 * records; of collections, what collGet answers it).
 */
export interface SubscribeFilter {
  /**
   * Record types by name ('messages') or number, and 'collections' for every collection's
   * records. With neither `types` nor `collections`: everything the feed carries.
   */
  types?: (RecordTypeName | 'collections' | number)[];
  /** Records of these collections (declared ones: an unknown name is refused, not_found). */
  collections?: string[];
  /** Only records owned by this user (service/admin keys). */
  user?: string;
  /** Only records of this tenant (service/admin keys). */
  tenant?: string;
}

export interface SubscribeOptions {
  /**
   * Deliver the changes after this sequence (the `sequence` of the last event a previous
   * run handled). Unset: from the latest durable change on.
   */
  fromSequence?: bigint | number;
  /**
   * Events held for a consumer that is slower than the feed. Past it the subscription is
   * paused on the server (unsubscribed) and resumed from the last event received once the
   * consumer has read half of them: memory stays bounded and nothing is lost. Default 10000.
   */
  maxBuffered?: number;
  /** Ends the iteration (without an error) when it fires. */
  signal?: AbortSignal;
  /** Back-off between re-subscribe attempts after a drop: doubles from minMs to maxMs. */
  backoff?: { minMs?: number; maxMs?: number };
}

interface ChangeEventBase {
  /** The change's sequence number: resume after it with `fromSequence`. */
  sequence: bigint;
  /** When it was committed, microseconds since the Unix epoch. */
  commit_time: bigint;
  op: ChangeOp;
  /** The record's id (a vote: its message's; admin_config and quotas: null). */
  id: string | null;
  user_id: string | null;
  tenant_id: string | null;
  /** The record's storage key (identifies a hard-deleted record). */
  key: Uint8Array;
}

/** A change to a built-in record; `record` is the record after the change, null for a delete. */
export type RecordChangeEvent = {
  [K in RecordTypeName]: ChangeEventBase & { type: K; record: RecordsByType[K] | null };
}[RecordTypeName];

/**
 * A change to a collection's record: `record` is the record after the change as collGet
 * answers it (null for a hard delete), `record_key` the key collGet / collDelete take.
 */
export type CollectionChangeEvent = ChangeEventBase & {
  type: 'collection';
  collection: string;
  record_key: Record<string, unknown>;
  record: Record<string, unknown> | null;
};

/** One change; narrow by `type` ('collection' for a collection's records). */
export type ChangeEvent = RecordChangeEvent | CollectionChangeEvent;

/** What the Client does for a Subscription (src/client.ts). */
export interface FeedTransport {
  openFeed(args: SubscribeArgsInput, sink: FeedSink): Promise<{ id: number; position: FeedPosition }>;
  /** Unsubscribes (errors ignored: a gone connection took the subscription along). */
  closeFeed(id: number): Promise<void>;
  /** The client is closed for good (close(), a refused key, reconnect off). */
  isClosed(): boolean;
}

/** Push frames of one subscribe request, routed by the Client. */
export interface FeedSink {
  changes(items: Change[]): void;
  end(error: AgentstoreError | null, position: FeedPosition | null): void;
  /** The connection went away (or the client was closed: code 'closed'). */
  drop(error: AgentstoreError): void;
}

// Errors after which subscribing again can succeed (the connection or server comes back).
const RETRY = new Set(['disconnected', 'unavailable', 'timeout', 'resource_exhausted']);

export class Subscription implements AsyncIterableIterator<ChangeEvent> {
  /** The sequence of the last event this iterator yielded (resume a later run after it). */
  lastSequence: bigint | null;
  /** Re-subscriptions made after drops, restarts and cut-offs (for tests and metrics). */
  resumes = 0;
  /**
   * Resolves with the sequence the subscription starts after, once the server has
   * accepted it: changes committed after this resolves are delivered even without
   * `fromSequence` (with it, everything after it is). Rejects as the iteration would.
   */
  readonly ready: Promise<bigint>;
  private readyResolve!: (seq: bigint) => void;
  private readyReject!: (e: unknown) => void;

  private readonly filter: SubscribeArgsInput;
  private readonly maxBuffered: number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private cursor: bigint | null;  // the last sequence received (null: from now, not yet known)
  private readonly queue: ChangeEvent[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<ChangeEvent>) => void; reject: (e: unknown) => void } | null = null;
  private activeId: number | null = null;
  private opening = false;
  private paused = false;  // unsubscribed because the consumer is behind
  private closed = false;
  private error: unknown = null;
  private delay: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly sink: FeedSink;

  constructor(private readonly transport: FeedTransport, filter: SubscribeFilter = {}, opts: SubscribeOptions = {}) {
    const types = (filter.types ?? []).map((t) => {
      if (typeof t === 'number') return t;
      if (t === 'collections') return COLLECTION_RECORD_TYPE;
      const n = Object.entries(recordTypes).find(([, v]) => v.name === t);
      if (!n) throw new AgentstoreError('invalid_argument', `subscribe: unknown record type '${t}'`);
      return Number(n[0]);
    });
    this.filter = {};
    if (types.length) this.filter.types = types;
    if (filter.collections?.length) this.filter.collections = [...filter.collections];
    if (filter.user !== undefined) this.filter.user = filter.user;
    if (filter.tenant !== undefined) this.filter.tenant = filter.tenant;
    if (opts.fromSequence !== undefined && BigInt(opts.fromSequence) < 0n)
      throw new AgentstoreError('invalid_argument', 'subscribe: fromSequence must be >= 0');
    this.cursor = opts.fromSequence === undefined ? null : BigInt(opts.fromSequence);
    this.lastSequence = this.cursor;
    this.maxBuffered = Math.max(1, opts.maxBuffered ?? 10000);
    this.minMs = opts.backoff?.minMs ?? 50;
    this.maxMs = opts.backoff?.maxMs ?? 2000;
    this.delay = this.minMs;
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    const self = this;
    this.sink = {
      changes: (items) => self.onChanges(items),
      end: (error, position) => self.onEnd(error, position),
      drop: (error) => self.onDrop(error),
    };
    if (opts.signal) {
      if (opts.signal.aborted) this.closed = true;
      else opts.signal.addEventListener('abort', () => void this.close(), { once: true });
    }
    this.open();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ChangeEvent> {
    return this;
  }

  next(): Promise<IteratorResult<ChangeEvent>> {
    if (this.head < this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.error) {
      const e = this.error;
      this.error = null;
      return Promise.reject(e);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  /** Ends the subscription (for-await's break calls this). */
  async return(): Promise<IteratorResult<ChangeEvent>> {
    await this.close();
    return { value: undefined, done: true };
  }

  /** Ends the subscription; events already received are dropped. */
  async close(): Promise<void> {
    if (this.closed && !this.waiter) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const id = this.activeId;
    this.activeId = null;
    this.queue.length = 0;
    this.head = 0;
    this.readyReject(new AgentstoreError('closed', 'subscription closed'));
    this.wake();
    if (id !== null) await this.transport.closeFeed(id);
  }

  // ---- the server side ----

  private open(): void {
    if (this.closed || this.opening || this.activeId !== null) return;
    this.opening = true;
    const args: SubscribeArgsInput = { ...this.filter };
    if (this.cursor === null) args.from_now = true;
    else args.after = this.cursor;
    this.transport.openFeed(args, this.sink).then(({ id, position }) => {
      this.opening = false;
      if (this.closed || this.paused) {
        void this.transport.closeFeed(id);
        return;
      }
      this.activeId = id;
      if (this.cursor === null) this.cursor = position.sequence;
      if (this.lastSequence === null) this.lastSequence = this.cursor;
      this.delay = this.minMs;
      this.readyResolve(position.sequence);
    }, (e) => {
      this.opening = false;
      this.failOrRetry(e);
    });
  }

  private failOrRetry(e: unknown): void {
    if (this.closed) return;
    const code = e instanceof AgentstoreError ? e.code : '';
    if (code === 'closed') {  // the client was closed: the iteration ends
      this.closed = true;
      this.readyReject(e);
      this.wake();
      return;
    }
    if (!RETRY.has(code) || this.transport.isClosed()) {  // a client that gave up: no retry
      this.fail(e);
      return;
    }
    const wait = this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, this.maxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.resumes++;
      this.open();
    }, wait);
  }

  private onChanges(items: Change[]): void {
    if (this.closed) return;
    for (const c of items) {
      // A re-subscription starts strictly after the cursor; this guards the invariant.
      if (this.cursor !== null && c.sequence <= this.cursor) continue;
      this.cursor = c.sequence;
      if (c.type === COLLECTION_RECORD_TYPE) {
        this.queue.push({
          sequence: c.sequence, commit_time: c.commit_time, op: c.op, type: 'collection',
          id: c.id, user_id: c.user_id, tenant_id: c.tenant_id, key: c.key ?? new Uint8Array(0),
          collection: c.collection ?? '',
          record_key: c.record_key ? JSON.parse(c.record_key) : {},
          record: c.json ? JSON.parse(c.json) : null,
        });
        continue;
      }
      const t = recordTypes[c.type];
      const record = c.record && t?.read ? t.read(c.record) : null;
      this.queue.push({
        sequence: c.sequence, commit_time: c.commit_time, op: c.op,
        type: (t?.name ?? String(c.type)) as RecordTypeName,
        id: c.id, user_id: c.user_id, tenant_id: c.tenant_id, key: c.key ?? new Uint8Array(0),
        record: record as never,
      } as ChangeEvent);
    }
    if (!this.paused && this.activeId !== null && this.queue.length - this.head >= this.maxBuffered) {
      // The consumer is behind: stop the server's pushes; take() resumes.
      this.paused = true;
      void this.transport.closeFeed(this.activeId);
    }
    this.wake();
  }

  private onEnd(error: AgentstoreError | null, position: FeedPosition | null): void {
    this.activeId = null;
    if (this.closed) return;
    // Every change up to the resume point that passes the filter came before this frame.
    if (position && (this.cursor === null || position.sequence > this.cursor)) this.cursor = position.sequence;
    if (!error) {
      if (this.paused) return this.maybeResume();  // or take() does, once the consumer caught up
      this.closed = true;  // unsubscribed by someone else: the iteration ends
      this.wake();
      return;
    }
    this.failOrRetry(error);
  }

  private onDrop(error: AgentstoreError): void {
    this.activeId = null;
    if (this.paused) return this.maybeResume();
    this.failOrRetry(error);
  }

  private fail(e: unknown): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.activeId !== null) void this.transport.closeFeed(this.activeId);
    this.activeId = null;
    this.error = e;
    this.closed = true;  // events already received still come first
    this.readyReject(e);
    this.wake();
  }

  // ---- the consumer side ----

  private take(): ChangeEvent {
    const ev = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.lastSequence = ev.sequence;
    this.maybeResume();
    return ev;
  }

  // Paused and the consumer has read half the backlog: subscribe again after the cursor.
  private maybeResume(): void {
    if (!this.paused || this.closed || this.activeId !== null) return;
    if (this.queue.length - this.head > this.maxBuffered / 2) return;
    this.paused = false;
    this.resumes++;
    this.open();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.head < this.queue.length) {
      this.waiter = null;
      w.resolve({ value: this.take(), done: false });
    } else if (this.error) {
      const e = this.error;
      this.error = null;
      this.waiter = null;
      w.reject(e);
    } else if (this.closed) {
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
  }
}
