// One connection to agentstored: frames (4-byte LE length + a FlatBuffers Request /
// Response, docs/protocol.md), any number of calls in flight matched by request id,
// API-key authentication, reconnect with back-off and re-authentication, per-call
// timeout and AbortSignal. Encoding and decoding are the generated codecs. Change-feed
// push frames (kind event/end) go to the subscription that asked for them (feed.ts).
// Per call it costs little (issue 17): no timer per call (one sweep per connection for the
// default timeout), calls made in one tick leave in one write, and answers are read with
// net's `onread` into one reused buffer and decoded in place, without stream events or a
// copy per frame.
import net from 'node:net';

import * as flatbuffers from 'flatbuffers';

import { AgentstoreError, invalidArgument } from './errors.js';
import type { FeedPosition, SubscribeArgsInput } from './generated/codec.js';
import {
  argShapes, decodeChanges, decodeFeedPosition, ErrorCodeNames, recordReaders, resultTags,
} from './generated/codec.js';
import { Subscription } from './feed.js';
import type { FeedSink, FeedTransport, SubscribeFilter, SubscribeOptions } from './feed.js';
import type { OperationInfo } from './generated/ops.js';
import { Operations, operations } from './generated/ops.js';
import * as fb from './generated/fb/all.js';
import { ReadBuffer, uuidStruct } from './codec-runtime.js';
import { decodeResult } from './results.js';
import type { CallOptions, ClientOptions } from './options.js';

interface Call {
  id: number;
  op: OperationInfo;
  frame: Uint8Array;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;      // a timeout other than the connection's default
  deadline: number;                        // performance.now() by which the sweep fails it; 0: none
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

const RECV_BYTES = 64 * 1024;  // one read's worth; longer answers are assembled across reads

const AUTHENTICATE = operations.find((o) => o.name === 'authenticate')!;
const SUBSCRIBE = operations.find((o) => o.name === 'subscribe')!;
const UNSUBSCRIBE = operations.find((o) => o.name === 'unsubscribe')!;
const FRAME_EVENT = 1;  // protocol.fbs FrameKind
const FRAME_END = 2;

export class Client extends Operations {
  /** Connects and authenticates; rejects if either fails. */
  static async connect(options: ClientOptions): Promise<Client> {
    const c = new Client(options);
    await c.ready;
    return c;
  }

  /** The key's role ('service' | 'admin' | 'user') and, for a user key, its user id. */
  role: string | null = null;
  userId: string | null = null;

  private readonly opts: Required<Omit<ClientOptions, 'backoff'>> & { minMs: number; maxMs: number };
  private socket: net.Socket | null = null;
  private authed = false;
  private closed = false;
  private closeError: AgentstoreError | null = null;
  private nextId = 1;
  private readonly inflight = new Map<number, Call>();
  private waiting: Call[] = [];          // issued while (re)connecting
  private out: Uint8Array[] = [];
  private flushQueued = false;
  private readonly flushBound = () => this.flush();
  // Reading: `recv` is what net reads into; a frame longer than what is left of one read is
  // assembled in `partial` (its length from `head`, which may itself be split).
  private readonly recv = Buffer.allocUnsafe(RECV_BYTES);
  private readonly head = new Uint8Array(4);
  private headFill = 0;
  private partial: Uint8Array | null = null;
  private partialFill = 0;
  private readonly rbuf = new ReadBuffer();
  private readonly response = new fb.Response();
  // The default timeout's one timer: every sweepMs it fails the calls past their deadline.
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;
  private readonly sweepBound = () => this.sweep();
  private delay: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly builder = new flatbuffers.Builder(1024);
  private readonly ready: Promise<void>;
  private readyResolve!: () => void;
  private readyReject!: (e: unknown) => void;
  private everReady = false;
  /** Reconnects done after a lost connection (for tests and metrics). */
  reconnects = 0;
  /** Calls sent on this connection so far (for tests and metrics). */
  sent = 0;
  // Open subscriptions on this connection by the id of their subscribe request.
  private readonly feeds = new Map<number, FeedSink>();
  private readonly feedTransport: FeedTransport = {
    openFeed: (args, sink) => this.openFeed(args, sink),
    isClosed: () => this.closed,
    closeFeed: async (id) => {
      if (!this.feeds.has(id) || this.closed) return;
      await this.invoke(UNSUBSCRIBE, { subscription: BigInt(id) }).catch(() => {});
    },
  };

  private constructor(options: ClientOptions) {
    super();
    if (!options || typeof options.key !== 'string') throw invalidArgument('ClientOptions.key is required');
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 7420,
      key: options.key,
      timeoutMs: options.timeoutMs ?? 30000,
      reconnect: options.reconnect ?? true,
      connectTimeoutMs: options.connectTimeoutMs ?? 10000,
      maxFrameBytes: options.maxFrameBytes ?? 64 << 20,
      maxRequestBytes: options.maxRequestBytes ?? 16 << 20,
      minMs: options.backoff?.minMs ?? 50,
      maxMs: options.backoff?.maxMs ?? 5000,
    };
    this.delay = this.opts.minMs;
    // A call with the default timeout fails at most 1/32 of it (and at most 1 s) late.
    this.sweepMs = Math.min(1000, Math.max(5, Math.ceil(this.opts.timeoutMs / 32)));
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    this.open();
  }

  /** Calls sent or waiting for an answer. */
  get pendingCalls(): number {
    return this.inflight.size + this.waiting.length;
  }

  /** True while calls made in this tick wait to leave in one write (Pool joins them). */
  get writeQueued(): boolean {
    return this.flushQueued;
  }

  /** Closes the connection; calls still pending fail with code 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeError = new AgentstoreError('closed', 'client closed');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.failAll(this.closeError, true);
    this.dropFeeds(this.closeError);
    const s = this.socket;
    this.socket = null;
    if (s && !s.destroyed) {
      await new Promise<void>((res) => {
        s.once('close', () => res());
        s.end();
        setTimeout(() => s.destroy(), 1000).unref();
      });
    }
  }

  /**
   * Follows the changes that pass `filter`, in commit order, as an async iterator of typed
   * events (docs/protocol.md, "Change feed"). It resumes by itself after a dropped
   * connection, a server restart or a server-side cut-off, from the last change it
   * received, so no change is skipped or repeated. Ends with an AgentstoreError for a
   * refusal (out_of_range: `fromSequence` is older than the server keeps; permission_denied:
   * the key was revoked or the user deleted). Break out of the loop (or close()) to stop.
   */
  subscribe(filter: SubscribeFilter = {}, opts: SubscribeOptions = {}): Subscription {
    if (this.closed) throw this.closeError;
    return new Subscription(this.feedTransport, filter, opts);
  }

  private openFeed(args: SubscribeArgsInput, sink: FeedSink): Promise<{ id: number; position: FeedPosition }> {
    if (this.closed) return Promise.reject(this.closeError);
    const id = this.nextId++;
    let frame: Uint8Array;
    try {
      frame = this.encode(id, SUBSCRIBE, args);
    } catch (e) {
      return Promise.reject(e);
    }
    // Registered before it is sent: pushes may follow the answer in the same read.
    this.feeds.set(id, sink);
    return new Promise((resolve, reject) => {
      const call = newCall(id, SUBSCRIBE, frame,
        (v) => resolve({ id, position: v as FeedPosition }),
        (e) => {
          this.feeds.delete(id);
          reject(e);
        });
      if (this.opts.timeoutMs > 0) this.setTimeout(call, this.opts.timeoutMs);
      if (this.authed) this.send(call);
      else this.waiting.push(call);
    });
  }

  protected invoke(op: OperationInfo, args: unknown, opts: CallOptions = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closeError);
    let frame: Uint8Array;
    const id = this.nextId++;
    try {
      frame = this.encode(id, op, args, opts.actAs);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const call = newCall(id, op, frame, resolve, reject);
      const timeoutMs = opts.timeoutMs ?? this.opts.timeoutMs;
      if (timeoutMs > 0) this.setTimeout(call, timeoutMs);
      if (opts.signal) {
        if (opts.signal.aborted) {
          this.settle(call, new AgentstoreError('aborted', 'aborted by the caller', { op: op.name }));
          return;
        }
        call.signal = opts.signal;
        call.onAbort = () => this.settle(call, new AgentstoreError('aborted', 'aborted by the caller', { op: op.name }));
        opts.signal.addEventListener('abort', call.onAbort, { once: true });
      }
      if (this.authed) this.send(call);
      else this.waiting.push(call);
    });
  }

  // The default timeout goes to the sweep (a deadline, no timer of its own); another one
  // gets its own timer, exact.
  private setTimeout(call: Call, timeoutMs: number): void {
    if (timeoutMs === this.opts.timeoutMs) {
      call.deadline = performance.now() + timeoutMs;
      if (this.sweepTimer === null) this.sweepTimer = setTimeout(this.sweepBound, this.sweepMs);
      return;
    }
    call.timer = setTimeout(() => this.settle(call, timeoutError(call.op, timeoutMs)), timeoutMs);
  }

  private sweep(): void {
    this.sweepTimer = null;
    const now = performance.now();
    const expired: Call[] = [];
    let more = false;
    for (const c of this.inflight.values()) {
      if (c.deadline === 0) continue;
      if (c.deadline <= now) expired.push(c);
      else more = true;
    }
    for (const c of this.waiting) {
      if (c.deadline === 0 || c.settled) continue;
      if (c.deadline <= now) expired.push(c);
      else more = true;
    }
    for (const c of expired) this.settle(c, timeoutError(c.op, this.opts.timeoutMs));
    if (more && !this.closed) this.sweepTimer = setTimeout(this.sweepBound, this.sweepMs);
  }

  // ---- encoding ----

  private encode(id: number, op: OperationInfo, args: unknown, actAs?: string): Uint8Array {
    const b = this.builder;
    b.clear();
    let tag = 0;
    let argsOff = 0;
    if (op.args.length) {
      if (args === undefined) args = {};
      const shape = pickShape(op, args);
      argsOff = argShapes[shape].encode(b, args);
      tag = argShapes[shape].tag;
    } else if (args !== undefined) {
      throw invalidArgument(`${op.name} takes no arguments`);
    }
    fb.Request.startRequest(b);
    fb.Request.addId(b, BigInt(id));
    fb.Request.addOp(b, op.op);
    if (actAs !== undefined) fb.Request.addActAs(b, uuidStruct(b, actAs, 'actAs'));
    if (tag) {
      fb.Request.addArgsType(b, tag);
      fb.Request.addArgs(b, argsOff);
    }
    b.finish(fb.Request.endRequest(b));
    const body = b.asUint8Array();
    // The server would answer an oversized frame by closing the connection (and failing
    // every call on it); refuse it here instead.
    if (body.length > this.opts.maxRequestBytes)
      throw invalidArgument(`${op.name}: request of ${body.length} bytes exceeds maxRequestBytes (${this.opts.maxRequestBytes})`);
    // A copy (the builder is reused by the next call); small ones come from Node's pool.
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32LE(body.length, 0);
    frame.set(body, 4);
    return frame;
  }

  // ---- connection ----

  private open(): void {
    const s: net.Socket = net.connect({
      host: this.opts.host, port: this.opts.port,
      onread: { buffer: this.recv, callback: (n: number, buf: Uint8Array) => this.onRead(s, buf, n) },
    });
    this.socket = s;
    s.setNoDelay(true);
    const connectTimer = setTimeout(() => s.destroy(new Error('connect timeout')), this.opts.connectTimeoutMs);
    let lastError: Error | null = null;
    s.on('connect', () => {
      clearTimeout(connectTimer);
      this.sendAuthentication(s);
    });
    s.on('error', (e) => { lastError = e; });
    s.on('close', () => {
      clearTimeout(connectTimer);
      this.onClose(s, lastError);
    });
  }

  private sendAuthentication(s: net.Socket): void {
    const id = this.nextId++;
    const call = newCall(id, AUTHENTICATE, this.encode(id, AUTHENTICATE, { key: this.opts.key }),
      (v) => {
        const a = v as { role: string; user_id: string | null };
        this.role = a.role;
        this.userId = a.user_id;
        this.authed = true;
        this.delay = this.opts.minMs;
        this.everReady = true;
        this.readyResolve();
        const waiting = this.waiting;
        this.waiting = [];
        for (const c of waiting) if (!c.settled) this.send(c);
      },
      (e) => {
        // A refused key will not get better by retrying: fail everything and stop.
        this.closed = true;
        this.closeError = e as AgentstoreError;
        this.failAll(this.closeError, true);
        this.readyReject(e);
        s.destroy();
      });
    this.inflight.set(id, call);
    this.write(call.frame);
  }

  private send(call: Call): void {
    this.sent++;
    this.inflight.set(call.id, call);
    if (this.socket) this.write(call.frame);
  }

  // Frames written in one tick leave in one write: pipelined calls cost one syscall.
  private write(frame: Uint8Array): void {
    this.out.push(frame);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushBound);
  }

  private flush(): void {
    this.flushQueued = false;
    const frames = this.out;
    if (frames.length === 0) return;
    this.out = [];
    const s = this.socket;
    if (s === null || s.destroyed) return;
    s.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  // net's onread callback: `buf` holds n new bytes and is overwritten by the next read, so
  // a frame wholly inside it is decoded in place (decoding copies out everything it keeps),
  // and only a frame that continues in a later read is copied, once, into its own buffer.
  private onRead(s: net.Socket, buf: Uint8Array, n: number): boolean {
    if (s !== this.socket) return true;
    let at = 0;
    while (at < n) {
      if (this.partial !== null) {
        const p = this.partial;
        const take = Math.min(p.length - this.partialFill, n - at);
        p.set(buf.subarray(at, at + take), this.partialFill);
        this.partialFill += take;
        at += take;
        if (this.partialFill < p.length) break;
        this.partial = null;
        if (!this.onFrame(s, p)) return true;
        continue;
      }
      let len: number;
      if (this.headFill > 0 || n - at < 4) {
        const h = this.head;
        while (this.headFill < 4 && at < n) h[this.headFill++] = buf[at++];
        if (this.headFill < 4) break;
        this.headFill = 0;
        len = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
      } else {
        len = (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0;
        at += 4;
      }
      if (len > this.opts.maxFrameBytes) {
        s.destroy(new Error(`response frame of ${len} bytes exceeds maxFrameBytes`));
        return true;
      }
      if (n - at >= len) {
        const ok = this.onFrame(s, buf.subarray(at, at + len));
        at += len;
        if (!ok) return true;
      } else {
        this.partial = new Uint8Array(len);
        this.partialFill = 0;
      }
    }
    return true;
  }

  // One answer (or push); false once the connection is no longer this one to read from.
  private onFrame(s: net.Socket, frame: Uint8Array): boolean {
    this.dispatch(s, frame);
    return s === this.socket && !s.destroyed;
  }

  private dispatch(s: net.Socket, frame: Uint8Array): void {
    let r: fb.Response;
    let id: number;
    try {
      r = fb.Response.getRootAsResponse(this.rbuf.reset(frame), this.response);
      id = Number(r.id());
    } catch {
      s.destroy(new Error('unreadable response frame'));
      return;
    }
    if (id === 0) {
      // About the connection (oversized frame, too many connections): the server closes next.
      this.connError = new AgentstoreError(codeName(r.code()), (r.message() as string) ?? '', { status: r.code() });
      return;
    }
    const kind = r.kind();
    if (kind === FRAME_EVENT || kind === FRAME_END) {
      this.onPush(id, kind, r);
      return;
    }
    const call = this.inflight.get(id);
    if (!call) return;  // timed out or aborted earlier
    this.inflight.delete(id);
    const code = r.code();
    if (code !== 0) {
      this.settle(call, new AgentstoreError(codeName(code), (r.message() as string) ?? '', { status: code, op: call.op.name }));
      return;
    }
    let value: unknown;
    try {
      value = decodeResult(call.op, r);
    } catch (e) {
      this.settle(call, e instanceof AgentstoreError ? e
        : new AgentstoreError('protocol', `cannot read the answer: ${(e as Error).message}`, { op: call.op.name }));
      return;
    }
    this.settle(call, null, value);
  }

  private connError: AgentstoreError | null = null;

  private onPush(id: number, kind: number, r: fb.Response): void {
    const sink = this.feeds.get(id);
    if (!sink) return;  // unsubscribed earlier
    try {
      if (kind === FRAME_EVENT) {
        sink.changes(decodeChanges(r.result(new fb.Changes()) as fb.Changes).items);
        return;
      }
      this.feeds.delete(id);
      const code = r.code();
      const pos = r.resultType() === resultTags.FeedPosition
        ? decodeFeedPosition(r.result(new fb.FeedPosition()) as fb.FeedPosition) : null;
      sink.end(code === 0 ? null : new AgentstoreError(codeName(code), (r.message() as string) ?? '',
        { status: code, op: SUBSCRIBE.name }), pos);
    } catch (e) {
      this.feeds.delete(id);
      sink.drop(new AgentstoreError('protocol', `cannot read a push frame: ${(e as Error).message}`));
    }
  }

  // The connection went: subscriptions it carried are gone with it. A subscribe not sent
  // yet (queued until the connection is back) keeps its sink, unless the client closed.
  private dropFeeds(why: AgentstoreError): void {
    const queued = new Set(this.closed ? [] : this.waiting.map((c) => c.id));
    const sinks: FeedSink[] = [];
    for (const [id, sink] of this.feeds) {
      if (queued.has(id)) continue;
      this.feeds.delete(id);
      sinks.push(sink);
    }
    for (const s of sinks) s.drop(why);
  }

  private onClose(s: net.Socket, err: Error | null): void {
    if (s !== this.socket && this.socket !== null) return;
    this.socket = null;
    this.authed = false;
    this.headFill = 0;
    this.partial = null;
    this.out = [];
    const why = this.connError ?? new AgentstoreError('disconnected',
      `connection to ${this.opts.host}:${this.opts.port} lost${err ? ` (${err.message})` : ''}; ` +
      'a call in flight may or may not have been applied');
    this.connError = null;
    // Sent calls cannot be known to have run or not; they fail. Waiting ones stay queued.
    this.failAll(why, false);
    // Subscriptions subscribe again (queued until the connection is back) or end.
    this.dropFeeds(this.closed && this.closeError ? this.closeError : why);
    if (this.closed) return;
    if (!this.everReady) {
      this.closed = true;
      this.closeError = why;
      this.failAll(why, true);
      this.readyReject(why);
      return;
    }
    if (!this.opts.reconnect) {
      this.closed = true;
      this.closeError = why;
      this.failAll(why, true);
      return;
    }
    const wait = this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, this.opts.maxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.closed) return;
      this.reconnects++;
      this.open();
    }, wait);
  }

  private failAll(err: AgentstoreError, includingWaiting: boolean): void {
    const sent = [...this.inflight.values()];
    this.inflight.clear();
    for (const c of sent) this.settle(c, err);
    if (includingWaiting) {
      const w = this.waiting;
      this.waiting = [];
      for (const c of w) this.settle(c, err);
    }
  }

  private settle(call: Call, err: unknown, value?: unknown): void {
    if (call.settled) return;
    call.settled = true;
    this.inflight.delete(call.id);
    if (call.timer) clearTimeout(call.timer);
    if (call.signal && call.onAbort) call.signal.removeEventListener('abort', call.onAbort);
    if (err) call.reject(err);
    else call.resolve(value);
  }
}

function newCall(id: number, op: OperationInfo, frame: Uint8Array, resolve: (v: unknown) => void,
  reject: (e: unknown) => void): Call {
  return { id, op, frame, resolve, reject, timer: undefined, deadline: 0, signal: undefined, onAbort: undefined, settled: false };
}

function timeoutError(op: OperationInfo, timeoutMs: number): AgentstoreError {
  return new AgentstoreError('timeout', `no answer within ${timeoutMs} ms`, { op: op.name });
}

function codeName(code: number): AgentstoreError['code'] {
  return (ErrorCodeNames[code] ?? 'protocol') as AgentstoreError['code'];
}

// An operation taking several argument shapes (user_get: IdArgs or KeyArgs) gets the
// first one whose fields include every field given.
function pickShape(op: OperationInfo, args: unknown): string {
  if (typeof args !== 'object' || args === null) throw invalidArgument(`${op.name}: arguments must be an object`);
  if (op.args.length === 1) return op.args[0];
  const o = args as Record<string, unknown>;
  next: for (const a of op.args) {
    const keys = argShapes[a].keys;
    for (const k of Object.keys(o)) if (o[k] !== undefined && !keys.has(k)) continue next;
    return a;
  }
  const given = Object.keys(args).filter((k) => o[k] !== undefined);
  throw invalidArgument(`${op.name} takes ${op.args.join(' or ')}; no shape has the fields ${given.join(', ')}`);
}

export { recordReaders, resultTags };
