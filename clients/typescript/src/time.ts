// Timestamps are int64 microseconds since the Unix epoch (UTC) on the wire and bigint
// here; these convert to and from Date (which keeps milliseconds).

export function toDate(micros: bigint): Date {
  return new Date(Number(micros / 1000n));
}

export function fromDate(d: Date): bigint {
  return BigInt(d.getTime()) * 1000n;
}

export function nowMicros(): bigint {
  return BigInt(Date.now()) * 1000n;
}

/** Money is int64 micro-USD: 1_000_000n is one dollar. */
export function microUsd(dollars: number): bigint {
  return BigInt(Math.round(dollars * 1e6));
}
