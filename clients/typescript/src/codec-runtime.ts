// Conversions the generated codecs (generated/codec.ts) call for each field kind: UUID
// strings <-> the 16-byte Uuid struct, JSON values <-> JSON text, checked numbers and
// enum names. Kept here so the generated code stays one line per field.
import * as flatbuffers from 'flatbuffers';

import { invalidArgument } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface MemoryHit<M> {
  memory: M;
  /** Vector distance (cosine: 1 - cos; l2: squared distance). */
  distance: number;
  /** Similarity, or the fused RRF score for hybrid search. */
  score: number;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
// Hex digit values by char code (-1: not a hex digit); parsing a UUID is on every call's path.
const HEXVAL = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEXVAL['0123456789abcdef'.charCodeAt(i)] = i;
  HEXVAL['0123456789ABCDEF'.charCodeAt(i)] = i;
}
const scratch = new Uint8Array(16);

// Parses the canonical 8-4-4-4-12 form into out; false if s is not one.
function parseUuid(s: unknown, out: Uint8Array): boolean {
  if (typeof s !== 'string' || s.length !== 36) return false;
  let j = 0;
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (s.charCodeAt(i) !== 45) return false;  // '-'
      continue;
    }
    const c1 = s.charCodeAt(i), c2 = s.charCodeAt(i + 1);
    const hi = c1 < 128 ? HEXVAL[c1] : -1, lo = c2 < 128 ? HEXVAL[c2] : -1;
    if (hi < 0 || lo < 0) return false;
    out[j++] = (hi << 4) | lo;
    i++;
  }
  return true;
}

/** The 16 bytes of a UUID string, or an invalid_argument error. */
export function uuidBytes(s: unknown, label = 'id'): Uint8Array {
  const out = new Uint8Array(16);
  if (!parseUuid(s, out)) throw invalidArgument(`${label}: not a UUID: ${String(s)}`);
  return out;
}

export function uuidString(bytes: Uint8Array, at: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    s += HEX[bytes[at + i]];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += '-';
  }
  return s;
}

// The flatbuffers runtime's ByteBuffer, made cheap to read many small frames with:
// - reusable (reset): its constructor makes a TextDecoder, which costs more than decoding a
//   small record, so the client keeps one per connection and one for records;
// - 64-bit fields below 2^53 (timestamps, ids, money) become a bigint in one step instead
//   of four bigint operations;
// - strings through Buffer's UTF-8 decoding (same result as the runtime's TextDecoder,
//   except that a leading U+FEFF is kept instead of dropped), short ASCII ones in JS.
export class ReadBuffer extends flatbuffers.ByteBuffer {
  constructor() {
    super(new Uint8Array(0));
  }

  reset(bytes: Uint8Array): this {
    (this as unknown as { bytes_: Uint8Array }).bytes_ = bytes;
    this.setPosition(0);
    return this;
  }

  override readInt64(offset: number): bigint {
    const hi = this.readInt32(offset + 4);
    if (hi >= -0x200000 && hi < 0x200000) return BigInt(hi * 4294967296 + this.readUint32(offset));
    return super.readInt64(offset);
  }

  override readUint64(offset: number): bigint {
    const hi = this.readUint32(offset + 4);
    if (hi < 0x200000) return BigInt(hi * 4294967296 + this.readUint32(offset));
    return super.readUint64(offset);
  }

  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    offset += this.readInt32(offset);
    const length = this.readInt32(offset);
    offset += 4;
    const bytes = this.bytes();
    if (encoding === flatbuffers.Encoding.UTF8_BYTES) return bytes.subarray(offset, offset + length);
    if (length <= 16) {
      let s = '';
      let i = 0;
      for (; i < length; i++) {
        const c = bytes[offset + i];
        if (c > 127) break;
        s += String.fromCharCode(c);
      }
      if (i === length) return s;
    }
    return utf8Slice.call(bytes, offset, offset + length);
  }
}
// Buffer's UTF-8 decoder (what buf.toString() calls) applied to any Uint8Array, without
// making a Buffer object per string; TextDecoder if a runtime lacks it.
type Slice = (this: Uint8Array, start: number, end: number) => string;
const textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Slice: Slice = (Buffer.prototype as unknown as { utf8Slice?: Slice }).utf8Slice ??
  function (this: Uint8Array, start: number, end: number) { return textDecoder.decode(this.subarray(start, end)); };

// One ReadBuffer for the generated record readers (read<Record>(bytes)): each decodes its
// record completely, synchronously and without calling another reader, so one suffices.
const recordBuffer = new ReadBuffer();
export function recordBytes(bytes: Uint8Array): flatbuffers.ByteBuffer {
  return recordBuffer.reset(bytes);
}

// A Uuid struct accessor (bb + bb_pos) -> string; absent (null) stays null.
export function uuidOf(u: { bb: flatbuffers.ByteBuffer | null; bb_pos: number } | null): string | null {
  return u && u.bb ? uuidString(u.bb.bytes(), u.bb_pos) : null;
}

// Writes a Uuid struct inline (exactly what flatc's createUuid does: 16 bytes, align 1).
export function uuidStruct(b: flatbuffers.Builder, s: unknown, label: string): number {
  const bytes = scratch;
  if (!parseUuid(s, bytes)) throw invalidArgument(`${label}: not a UUID: ${String(s)}`);
  b.prep(1, 16);
  for (let i = 15; i >= 0; i--) b.writeInt8(bytes[i]);
  return b.offset();
}

export function uuidVector(b: flatbuffers.Builder, ids: unknown[]): number {
  const all = ids.map((s) => uuidBytes(s, 'uuid list'));
  b.startVector(16, all.length, 1);
  for (let k = all.length - 1; k >= 0; k--) for (let i = 15; i >= 0; i--) b.writeInt8(all[k][i]);
  return b.endVector();
}

export function parseJson(s: string | null): Json {
  if (s === null || s === '') return null;
  return JSON.parse(s) as Json;
}

export function jsonText(v: unknown, label: string): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    throw invalidArgument(`${label}: not JSON-serializable (${(e as Error).message})`);
  }
  if (s === undefined) throw invalidArgument(`${label}: not a JSON value`);
  return s;
}

export function str(v: unknown, label: string): string {
  if (typeof v !== 'string') throw invalidArgument(`${label}: expected a string`);
  return v;
}

export function arr(v: unknown, label: string): unknown[] {
  if (!Array.isArray(v)) throw invalidArgument(`${label}: expected an array`);
  return v;
}

export function nums(v: unknown, label: string): ArrayLike<number> {
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return v as ArrayLike<number>;
  throw invalidArgument(`${label}: expected an array of numbers or a typed array`);
}

export function bool(v: unknown, label: string): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(`${label}: expected a boolean`);
  return v;
}

function int(v: unknown, label: string, lo: number, hi: number): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi)
    throw invalidArgument(`${label}: expected an integer in [${lo}, ${hi}]`);
  return n;
}
export const i8 = (v: unknown, l: string) => int(v, l, -128, 127);
export const u8 = (v: unknown, l: string) => int(v, l, 0, 255);
export const i16 = (v: unknown, l: string) => int(v, l, -32768, 32767);
export const u16 = (v: unknown, l: string) => int(v, l, 0, 65535);
export const i32 = (v: unknown, l: string) => int(v, l, -2147483648, 2147483647);
export const u32 = (v: unknown, l: string) => int(v, l, 0, 4294967295);

function big(v: unknown, label: string, lo: bigint, hi: bigint): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else throw invalidArgument(`${label}: expected a bigint (or a safe integer)`);
  if (n < lo || n > hi) throw invalidArgument(`${label}: out of range`);
  return n;
}
export const i64 = (v: unknown, l: string) => big(v, l, -(1n << 63n), (1n << 63n) - 1n);
export const u64 = (v: unknown, l: string) => big(v, l, 0n, (1n << 64n) - 1n);

export function f64(v: unknown, label: string): number {
  if (typeof v !== 'number') throw invalidArgument(`${label}: expected a number`);
  return v;
}

export function enumValue(values: Record<string, number>, v: unknown, label: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;  // the server checks the range
  if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(values, v)) return values[v];
  throw invalidArgument(`${label}: expected one of ${Object.keys(values).join(', ')}`);
}

// Decoded enum: its name, or the number when this client predates the value.
export function name<T>(names: Record<number, T>, v: number): T {
  return names[v] ?? (v as unknown as T);
}
export function optName<T>(names: Record<number, T>, v: number | null): T | null {
  return v === null ? null : name(names, v);
}

export function opt<A, B>(x: A | null, f: (a: A) => B): B | null {
  return x === null ? null : f(x);
}

export function list<T>(n: number, f: (i: number) => T): T[] {
  const out = new Array<T>(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

// Numeric vectors are copied element by element: a typed-array view over the frame
// could be misaligned, and a copy does not keep the whole response alive.
export function typed<A extends Float32Array | Float64Array | Uint8Array>(
  ctor: { new (n: number): A }, n: number, f: (i: number) => number): A | null {
  if (n === 0) return null;
  const out = new ctor(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

export function checkKeys(o: unknown, keys: Set<string>, table: string): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw invalidArgument(`${table}: expected an object`);
  for (const k in o) if (!keys.has(k)) throw invalidArgument(`${table}: unknown field '${k}'`);
}
