// @agentstore/client: a typed, pipelined client for agentstored (docs/protocol.md).
export { Client } from './client.js';
export { Pool } from './pool.js';
export { AgentstoreError } from './errors.js';
export { Subscription } from './feed.js';
export type { ChangeEvent, CollectionChangeEvent, RecordChangeEvent, SubscribeFilter, SubscribeOptions } from './feed.js';
export { COLLECTION_RECORD_TYPE } from './feed.js';
export type { ErrorCodeName } from './errors.js';
export type { CallOptions, ClientOptions, PoolOptions } from './options.js';
export type { Json, Page, MemoryHit } from './codec-runtime.js';
export { uuidBytes, uuidString } from './codec-runtime.js';
export { toDate, fromDate, nowMicros, microUsd } from './time.js';
export { operations } from './generated/ops.js';
export type { OperationInfo } from './generated/ops.js';
export * from './generated/codec.js';
