// Options of a connection, a pool and one call.

export interface CallOptions {
  /** Fail with code 'timeout' if no answer comes within this many ms (0: never). */
  timeoutMs?: number;
  /** Fail with code 'aborted' when this fires (the server may still apply a write). */
  signal?: AbortSignal;
  /** Service keys only: run the call under this user's rules (a user id). */
  actAs?: string;
}

export interface ClientOptions {
  host?: string;          // default 127.0.0.1
  port?: number;          // default 7420
  /** An API key secret (ask_...): authenticates the connection, and again after a reconnect. */
  key: string;
  /** Default per-call timeout in ms (default 30000; 0: none). One timer per connection
   * checks it, so such a call fails up to 1/32 of it (at most 1 s) late; a call's own
   * `timeoutMs`, when different, gets a timer of its own. */
  timeoutMs?: number;
  /** Reconnect after the connection drops (default true). */
  reconnect?: boolean;
  /** Back-off between reconnect attempts: doubles from minMs to maxMs, with jitter. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Give up the initial connect after this many ms (default 10000). */
  connectTimeoutMs?: number;
  /** Largest response frame accepted (default 64 MiB). */
  maxFrameBytes?: number;
  /** Largest request sent (default 16 MiB, the server's default --max-frame-bytes). */
  maxRequestBytes?: number;
}

export interface PoolOptions extends ClientOptions {
  /** Connections in the pool (default 4). Each call goes to the least busy one, unless
   * calls made in the same tick are already queued on one (see `pipeline`). */
  size?: number;
  /** Calls made in the same tick share a connection (one write, one read for their
   * answers) while it has fewer than this many pending (default 16; 1: never share). */
  pipeline?: number;
}
