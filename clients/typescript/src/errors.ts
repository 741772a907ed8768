// The one error type of the client: a server status (code names and numbers from
// protocol.fbs's ErrorCode) or a client-side condition (timeout, abort, lost connection).

/** Server codes (protocol.fbs ErrorCode) plus the client's own. */
export type ErrorCodeName =
  | 'ok' | 'not_found' | 'invalid_argument' | 'already_exists' | 'permission_denied'
  | 'resource_exhausted' | 'unavailable' | 'corruption' | 'io_error' | 'not_implemented'
  | 'out_of_range'
  // client-side: no answer in time / the caller's AbortSignal fired / the connection
  // dropped with the call in flight (it may or may not have been applied) / close() was
  // called / the server answered something this client cannot read.
  | 'timeout' | 'aborted' | 'disconnected' | 'closed' | 'protocol';

export class AgentstoreError extends Error {
  /** Match on this, not on the message. */
  readonly code: ErrorCodeName;
  /** The server's numeric ErrorCode, when the server answered. */
  readonly status: number | undefined;
  /** The operation the call was, when known. */
  readonly op: string | undefined;

  constructor(code: ErrorCodeName, message: string, opts: { status?: number; op?: string } = {}) {
    super(opts.op ? `${opts.op}: ${message}` : message);
    this.name = 'AgentstoreError';
    this.code = code;
    this.status = opts.status;
    this.op = opts.op;
  }
}

export function invalidArgument(message: string): AgentstoreError {
  return new AgentstoreError('invalid_argument', message);
}
